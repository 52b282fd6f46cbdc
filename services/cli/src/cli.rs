//! The command line, as clap derives it. Every flag also reads a `VELLUM_*` variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vellum_models::GenerationDevice;

/// Private document search and summarization, on your own machine.
#[derive(Debug, Parser)]
#[command(name = "vellum", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The data folder (catalog, full-text index, vectors).
    #[arg(
        long,
        global = true,
        env = "VELLUM_DATA_DIR",
        default_value = "vellum-data"
    )]
    pub data_dir: PathBuf,
    /// The folder deploy/fetch-models.sh unpacked the models into.
    #[arg(
        long,
        global = true,
        env = "VELLUM_MODELS_DIR",
        default_value = "models"
    )]
    pub models_dir: PathBuf,
    /// The embedding model: a folder under the models folder, or a path.
    #[arg(
        long,
        global = true,
        env = "VELLUM_EMBEDDING_MODEL",
        default_value = "all-MiniLM-L6-v2"
    )]
    pub embedding_model: PathBuf,
    /// What computes the embeddings: `native` (Vellum's own, from the embedding model's
    /// safetensors, f32), `native-int8` (the same with 8-bit linear layers: faster, vectors
    /// within 0.01 of cosine) or `onnx` (ONNX Runtime through fastembed, from --onnx-model).
    /// Their vectors differ: a collection embedded by one is searched with the same one, or
    /// re-embedded (`vellum reembed`).
    #[arg(
        long,
        global = true,
        env = "VELLUM_EMBEDDER",
        value_enum,
        default_value_t = EmbedderBackend::Native
    )]
    pub embedder: EmbedderBackend,
    /// The ONNX export of the embedding model for `--embedder onnx`: a file under the models
    /// folder, or a path (its tokenizer comes from --embedding-model).
    #[arg(
        long,
        global = true,
        env = "VELLUM_ONNX_MODEL",
        default_value = "all-MiniLM-L6-v2-onnx-int8/model.onnx"
    )]
    pub onnx_model: PathBuf,
    /// ONNX Runtime's shared library for `--embedder onnx` (libonnxruntime.so.*), or the
    /// folder holding it, under the models folder or a path.
    #[arg(
        long,
        global = true,
        env = "VELLUM_ONNXRUNTIME",
        default_value = "onnxruntime"
    )]
    pub onnxruntime: PathBuf,
    /// The generation model: a GGUF file under the models folder, or a path.
    #[arg(
        long,
        global = true,
        env = "VELLUM_GENERATION_MODEL",
        default_value = "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub generation_model: PathBuf,
    /// Where the local GGUF model runs: cpu, or cuda / cuda:N for an NVIDIA GPU (needs a
    /// vellum built with `--features cuda`).
    #[arg(long, global = true, env = "VELLUM_DEVICE", default_value = "cpu")]
    pub device: GenerationDevice,
    /// Do not keep the local GGUF's weights in the kernels' layout under DATA_DIR/panel-cache
    /// (a file the size of the model, written by the first load and memory-mapped by later
    /// ones: faster loads, the weights in the page cache instead of the process's memory).
    #[arg(long, global = true, env = "VELLUM_NO_PANEL_CACHE")]
    pub no_panel_cache: bool,
    /// Generate with an OpenAI-compatible server instead of the local GGUF: its base URL with
    /// the API version, e.g. https://10.0.0.5:8443/v1 (llama.cpp server, vLLM, Ollama, LM Studio,
    /// MLC LLM, Triton's OpenAI frontend, mlx_lm.server); plain http:// only to this machine,
    /// with --remote-allow-http.
    #[arg(long, global = true, env = "VELLUM_REMOTE_URL")]
    pub remote_url: Option<String>,
    /// The model name the remote server expects.
    #[arg(
        long,
        global = true,
        env = "VELLUM_REMOTE_MODEL",
        default_value = "default"
    )]
    pub remote_model: String,
    /// API key for the remote server (sent as a bearer token; prefer the environment variable,
    /// which stays out of the process list).
    #[arg(
        long,
        global = true,
        env = "VELLUM_REMOTE_API_KEY",
        hide_env_values = true
    )]
    pub remote_api_key: Option<String>,
    /// Allow a plain http:// --remote-url to an engine on this machine (127.0.0.0/8, ::1,
    /// localhost). Any other http:// URL is refused: prompts (document text) and the API key
    /// would cross the network in clear.
    #[arg(long, global = true, env = "VELLUM_REMOTE_ALLOW_HTTP")]
    pub remote_allow_http: bool,
    /// Tokens (prompt plus answer) the remote model handles.
    #[arg(
        long,
        global = true,
        env = "VELLUM_REMOTE_CONTEXT",
        default_value_t = 4096
    )]
    pub remote_context: usize,
    /// Print results as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Cedar policies for `serve` and for `--as`: a folder of *.cedar files, or a set built
    /// into the binary (default, law-firm, hospital) [default: the data folder's vellum.toml
    /// `policies`, else the built-in default].
    #[arg(long, global = true, env = "VELLUM_POLICIES", value_name = "DIR|SET")]
    pub policies: Option<PathBuf>,
    /// Act as this account (its roles and groups, under --policies) instead of as the local
    /// operator. Either way every command that touches documents or accounts is decided by
    /// Cedar and written to the audit log.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// More log output on stderr (-v info, -vv debug); VELLUM_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The embedding backends (`--embedder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedderBackend {
    /// Vellum's own BERT encoder (candle tensors, fused kernels), f32 weights.
    Native,
    /// Vellum's own BERT encoder with its linear layers in 8 bits (AVX-VNNI where present).
    NativeInt8,
    /// ONNX Runtime through fastembed, running the ONNX export (int8 weights by default).
    Onnx,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest files and folders (PDF, DOCX, HTML, e-mail, text, Markdown).
    Ingest(IngestArgs),
    /// Sync folders into a collection, then follow their changes until stopped (Ctrl-C; an
    /// interrupted commit is rolled back at the next start).
    Watch(WatchArgs),
    /// Search the documents.
    Search(SearchArgs),
    /// Answer a question from the documents, with citations.
    Ask(AskArgs),
    /// Regenerate an answer from its receipt (`ask --receipt`) and say whether it matches.
    Replay(ReplayArgs),
    /// Summarize one whole document, citing pages.
    Summarize(SummarizeArgs),
    /// List the documents in the data folder.
    Documents(CollectionArgs),
    /// Delete documents (by id, as `documents` lists them) from every store.
    Delete(DeleteArgs),
    /// Give a collection's chunks new vectors from the embedder this vellum runs (--embedder),
    /// after a change of embedder; until then its vector searches and ingest are refused.
    /// Resumable: run it again if it was interrupted. Needs `admin` on the collection.
    Reembed(ReembedArgs),
    /// Check that the catalog, the full-text index and the vector table agree (and repair
    /// what an interrupted ingest left behind); exits 1 if they do not agree.
    Check,
    /// Copy the data folder (stores, users, uploads, audit log) into a new folder, also while
    /// `vellum serve` runs and ingests; `restore` puts it back.
    Backup(BackupArgs),
    /// Restore a backup into a new or empty data folder (--data-dir), check every file's
    /// SHA-256 first and that the three stores agree after.
    Restore(RestoreArgs),
    /// Evaluate retrieval on a BEIR-format set.
    Eval(EvalArgs),
    /// List the models found in the models folder, with their SHA-256.
    Models,
    /// Serve the HTTPS API (TLS only; users, API keys and Cedar policies decide who sees
    /// what). Settings: flag > environment variable > TOML file > default.
    Serve(Box<ServeArgs>),
    /// Manage the users who may sign in to `vellum serve` (works offline on the data folder).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys for machine clients (works offline on the data folder).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Verify, export and search the tamper-evident audit log (offline, on the server's
    /// folder or a copy of it).
    Audit(AuditArgs),
    /// Make a signing key, sign, or verify an offline install bundle (deploy/bundle.sh)
    /// against its signed manifest. Works offline; opens no data folder and no model.
    Bundle(BundleArgs),
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    #[command(subcommand)]
    pub command: BundleCommand,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Check every file of the bundle against its signed MANIFEST: prints the file count, or
    /// names the first file that differs (changed, missing, extra, or a bad signature) and
    /// exits 1. Exits 2 when the key or the folder is not usable.
    Verify {
        /// The bundle folder (the one holding MANIFEST and MANIFEST.sig).
        dir: PathBuf,
        /// The trusted public key: 64 hex digits, or a file holding them (PREFIX.pub from
        /// `vellum bundle keygen`). Get it from the vendor by another channel than the bundle.
        #[arg(long, env = "VELLUM_BUNDLE_PUBLIC_KEY", value_name = "KEY")]
        public_key: String,
    },
    /// Write MANIFEST (every file's SHA-256, sorted by path) and MANIFEST.sig (Ed25519) into
    /// the bundle folder, replacing earlier ones.
    Sign {
        /// The bundle folder.
        dir: PathBuf,
        /// The secret key file written by `vellum bundle keygen` (keep it off the build
        /// machine's repository and backups).
        #[arg(long, env = "VELLUM_BUNDLE_SECRET_KEY", value_name = "FILE")]
        secret_key: PathBuf,
    },
    /// Make a signing key pair: PREFIX.key (secret, mode 0600, never printed) and PREFIX.pub;
    /// prints the public key. Refuses to overwrite either file.
    Keygen {
        /// Path prefix of the two files, e.g. ~/keys/vellum-release.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash, the chain, the signed checkpoints and head.json; prints a
    /// summary, or names the first bad record and exits 1.
    Verify {
        /// The audit log folder (or a copy of it) [default: <data dir>/audit].
        path: Option<PathBuf>,
        /// The checkpoint public key: 64 hex digits, or a file holding them (`vellum audit
        /// public-key` prints it; keep a copy away from the server).
        #[arg(long, env = "VELLUM_AUDIT_PUBLIC_KEY", value_name = "KEY")]
        public_key: String,
    },
    /// Print records for a reviewer (a table, or --json), filtered.
    Export {
        /// The audit log folder [default: <data dir>/audit].
        path: Option<PathBuf>,
        /// From this time on (RFC 3339, e.g. 2026-03-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only this user or key.
        #[arg(long)]
        principal: Option<String>,
        /// Only records about this document id (resource, chunks read, or upload).
        #[arg(long)]
        document: Option<String>,
        /// Only this action (search, ask, summarize, document.read, login…).
        #[arg(long)]
        action: Option<String>,
        /// Also list the signed checkpoints.
        #[arg(long)]
        checkpoints: bool,
    },
    /// Find who searched for TEXT: matches the HMAC of the exact query text (needs the HMAC key).
    Search {
        /// The audit log folder [default: <data dir>/audit].
        path: Option<PathBuf>,
        /// The exact query text; `-` reads it from the first line of standard input.
        #[arg(long, value_name = "TEXT")]
        query_text: String,
        /// The HMAC key file [default: <data dir>/audit-keys/audit-hmac.key].
        #[arg(long, value_name = "FILE")]
        hmac_key: Option<PathBuf>,
    },
    /// Print the Ed25519 public key that verifies the checkpoints.
    PublicKey {
        /// The audit key folder, or a key file [default: <data dir>/audit-keys].
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new (or empty) folder for the backup.
    pub dest: PathBuf,
    /// Also copy the audit signing keys and the TLS key (keep such a backup as you keep keys).
    #[arg(long)]
    pub include_keys: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A folder made by `vellum backup`.
    pub source: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML settings file (keys: listen, policies, session_hours, key_days, max_upload_mb,
    /// upload_reserve_mb, workers, trusted_proxies, require_encrypted_storage, [tls] cert, key,
    /// client_ca, and [audit] dir, key_dir, plain_queries); unknown keys are an error
    /// [default: <data dir>/vellum.toml when it exists].
    #[arg(long, env = "VELLUM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on, HTTPS only; port 0 picks a free one [default: 127.0.0.1:8443].
    #[arg(long, env = "VELLUM_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM). Without --tls-cert/--tls-key the first start makes a
    /// self-signed certificate in <data dir>/tls and prints its SHA-256 fingerprint.
    #[arg(
        long,
        env = "VELLUM_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        env = "VELLUM_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) for client certificates: when set, every client must present a
    /// certificate signed by one of them (mTLS), in addition to its token or key.
    #[arg(long, env = "VELLUM_TLS_CLIENT_CA", value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,
    /// Hours a login session lasts [default: 8].
    #[arg(long, env = "VELLUM_SESSION_HOURS", value_name = "HOURS")]
    pub session_hours: Option<u64>,
    /// Days a new API key lasts unless its creator asks for fewer, 1-365 [default: 90].
    #[arg(long, env = "VELLUM_KEY_DAYS", value_name = "DAYS")]
    pub key_days: Option<u32>,
    /// Largest request body (uploads), in megabytes [default: 256].
    #[arg(long, env = "VELLUM_MAX_UPLOAD_MB", value_name = "MB")]
    pub max_upload_mb: Option<u64>,
    /// HTTP worker threads [default: the number of CPUs].
    #[arg(long, env = "VELLUM_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// The audit log's folder [default: <data dir>/audit].
    #[arg(long, env = "VELLUM_AUDIT_DIR", value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,
    /// The folder of the audit log's signing and HMAC keys, kept apart from the log (ideally on
    /// another volume) [default: <data dir>/audit-keys].
    #[arg(long, env = "VELLUM_AUDIT_KEY_DIR", value_name = "DIR")]
    pub audit_key_dir: Option<PathBuf>,
    /// Also keep search queries and questions in plain text in the audit log (by default only
    /// their HMAC, which `vellum audit search --query-text` still finds).
    #[arg(long, env = "VELLUM_AUDIT_PLAIN_QUERIES")]
    pub audit_plain_queries: bool,
    /// A reverse proxy (address or CIDR range) whose X-Forwarded-For / Forwarded headers name
    /// the client; repeat for several. Without it those headers are ignored (a client could
    /// write anything there), and the TCP peer is the client.
    #[arg(long = "trusted-proxy", value_name = "ADDR_OR_CIDR")]
    pub trusted_proxies: Vec<String>,
    /// Free disk space, in megabytes, that uploads must leave on the upload file system, so
    /// that the audit log (which stops the service when it cannot write) keeps room
    /// [default: 1024].
    #[arg(long, env = "VELLUM_UPLOAD_RESERVE_MB", value_name = "MB")]
    pub upload_reserve_mb: Option<u64>,
    /// Refuse to start unless the data folder is on an encrypted block device (dm-crypt/LUKS);
    /// either way the start says what it found.
    #[arg(long, env = "VELLUM_REQUIRE_ENCRYPTED_STORAGE")]
    pub require_encrypted_storage: bool,
    /// Serve search only: do not load the generation model (ask and summarize answer 503).
    #[arg(long, env = "VELLUM_NO_GENERATION")]
    pub no_generation: bool,
    /// Serve even though the data folder (or an audit folder) is open to other local users;
    /// by default serve refuses and says to `chmod 700` it, since it holds the documents' text,
    /// password hashes and keys. A command-line flag only, so it is always a deliberate choice.
    #[arg(long)]
    pub allow_shared_data_dir: bool,
    /// How uploaded files are extracted (the same sandbox as `vellum ingest`).
    #[command(flatten)]
    pub extraction: ExtractArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. Without --password-stdin a password is generated and printed once.
    Add {
        /// The user name: lowercase letters, digits, '.', '_', '-', '@'.
        name: String,
        /// A role that authorization policies refer to (repeatable), e.g. attorney, admin.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A group that authorization policies refer to (repeatable), e.g. a matter team.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read the password from the first line of standard input (it never appears in the
        /// process list or the shell history).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user: their sessions end and their API keys stop working.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// Set a user's password (ends their sessions and revokes their API keys). Without
    /// --password-stdin a password is generated and printed once.
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user; the key is printed once and never stored. It expires.
    Create {
        /// The user the key acts as.
        user: String,
        /// What the key is for (shown in listings), e.g. "scanner in room 2".
        #[arg(long)]
        name: String,
        /// Days until the key stops working, 1-365 [default: 90].
        #[arg(long, value_name = "DAYS")]
        days: Option<u32>,
    },
    /// List API keys (ids, owners, names, expiry; never the secrets).
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an API key by its id (the part after `vk_`) or the whole key.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct CollectionArgs {
    /// Only these collections (repeatable); default: all.
    #[arg(long = "collection", short = 'c')]
    pub collections: Vec<String>,
}

/// How untrusted files are extracted (ingest and watch).
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Wall-clock seconds one file's extraction may take before its worker is killed.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub extract_timeout: u64,
    /// Memory (address space) one extraction worker may use.
    #[arg(long, default_value_t = 2048, value_name = "MB")]
    pub extract_memory_mb: u64,
    /// A file of passwords (one per line) tried on encrypted PDFs; keep it readable only by
    /// the user running vellum. Passwords are never logged or stored.
    #[arg(long, env = "VELLUM_PDF_PASSWORDS_FILE", value_name = "FILE")]
    pub pdf_passwords_file: Option<PathBuf>,
    /// OCR scanned PDFs (no text layer) with Tesseract instead of quarantining them (needs
    /// Debian's tesseract-ocr and poppler-utils; seconds per page).
    #[arg(long)]
    pub ocr: bool,
    /// Tesseract language(s) for --ocr, e.g. eng or eng+deu.
    #[arg(long, default_value = "eng", requires = "ocr")]
    pub ocr_language: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Folders to keep in step with the collection.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The collection the documents go into.
    #[arg(long, short = 'c', default_value = "default")]
    pub collection: String,
    /// Quiet time after the last change before it is ingested, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub debounce_ms: u64,
    /// Print one JSON line per event on stdout (for scripts) instead of a log.
    #[arg(long)]
    pub events: bool,
    /// Access labels for every document, comma-separated (e.g. privileged,phi); letters,
    /// digits, '_' and '-'. A file already indexed with other labels is indexed again.
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub extraction: ExtractArgs,
}

#[derive(Debug, Args)]
pub struct ReembedArgs {
    /// The collection to re-embed.
    pub collection: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Document ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or folders to ingest.
    #[arg(required_unless_present = "report")]
    pub paths: Vec<PathBuf>,
    /// Do not ingest: list the quarantined files (rejected by earlier runs) with their reasons.
    #[arg(long, conflicts_with_all = ["prune", "retry_quarantined", "events"])]
    pub report: bool,
    /// Extract quarantined files again even if unchanged (e.g. after raising a limit).
    #[arg(long)]
    pub retry_quarantined: bool,
    /// Print one JSON line per finished file on stdout as soon as it is committed (for
    /// scripts that follow an ingest).
    #[arg(long)]
    pub events: bool,
    #[command(flatten)]
    pub extraction: ExtractArgs,
    /// The collection the documents go into.
    #[arg(long, short = 'c', default_value = "default")]
    pub collection: String,
    /// Delete documents whose files are gone from the given folders.
    #[arg(long)]
    pub prune: bool,
    /// Files extracted, embedded and committed together.
    #[arg(long, default_value_t = 32)]
    pub batch_files: usize,
    /// Access labels for every document, comma-separated (e.g. privileged,phi); letters,
    /// digits, '_' and '-'. A file already indexed with other labels is indexed again.
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    pub labels: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for.
    pub query: String,
    /// bm25, vector or hybrid.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Results to show.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    #[command(flatten)]
    pub collections: CollectionArgs,
    /// Only documents with this access label (repeatable: all of them).
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Only documents of this type: pdf, docx, html, email, ccda, text... (repeatable: any).
    #[arg(long = "format", value_name = "FORMAT")]
    pub formats: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// bm25, vector or hybrid.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Sources put into the prompt.
    #[arg(long, default_value_t = 5)]
    pub sources: usize,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy (repeatable answers).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Seed for sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the answer's receipt (model, template, sources and their hashes) to this file.
    #[arg(long)]
    pub receipt: Option<PathBuf>,
    /// Answer from this one document only: its id, its source path, or a unique part of its
    /// file name.
    #[arg(long)]
    pub document: Option<String>,
    /// Only the sentences of the sources that answer the question, quoted: no model runs.
    #[arg(long)]
    pub quotes_only: bool,
    #[command(flatten)]
    pub collections: CollectionArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A receipt file written by `vellum ask --receipt` (or the `receipt` of `ask --json`).
    pub receipt: PathBuf,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// The document: its id, its source path, or a unique part of its file name.
    pub document: String,
    /// The kind of summary: contract (parties, dates, governing law, CUAD's clause
    /// categories), clinical (problems, medications, allergies, results, ...), email, filing
    /// or general. Detected from the document when not given.
    #[arg(long, value_parser = ["contract", "clinical", "email", "filing", "general"])]
    pub kind: Option<String>,
    /// After the facts, have the model write a few sentences over them (each kept only if the
    /// facts support it). Off by default: on the embedded SmolLM2-135M none survives the check
    /// and it adds 10-30 s; worth it with a larger GGUF or a remote engine.
    #[arg(long)]
    pub prose: bool,
    /// Most tokens of prose the model writes over the facts.
    #[arg(long, default_value_t = 200)]
    pub max_tokens: usize,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.
    #[arg(long)]
    pub beir: PathBuf,
    /// The qrels split.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Where to build the evaluation index (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub index_dir: Option<PathBuf>,
    /// Modes to evaluate, comma-separated: bm25, vector, hybrid, and rrf (hybrid with the
    /// previous fusion, reciprocal rank fusion k=60).
    #[arg(long, default_value = "bm25,vector,rrf,hybrid")]
    pub modes: String,
    /// The corpus as files (for a set without corpus.jsonl): ingested through the sandboxed
    /// extraction like any upload; a file's name without its extension is its document id.
    #[arg(long)]
    pub documents: Option<PathBuf>,
    /// Write both engines' candidates for every query here (JSON lines), for analysis.
    #[arg(long)]
    pub candidates_out: Option<PathBuf>,
    /// Words per chunk in the evaluation index (to measure chunking; ingest uses 160).
    #[arg(long, default_value_t = 160)]
    pub chunk_words: usize,
    /// Words of overlap between chunks in the evaluation index (ingest uses 32).
    #[arg(long, default_value_t = 32)]
    pub chunk_overlap: usize,
    /// Chunks each engine contributes to --candidates-out and --tune (live search fuses 100).
    #[arg(long, default_value_t = 100)]
    pub candidates_depth: usize,
    /// Choose hybrid's vector weight on two thirds of the queries and report it on the third
    /// held out (your own labelled queries: a BEIR folder, corpus as files with --documents).
    #[arg(long)]
    pub tune: bool,
    /// With --tune: store the chosen weight as this collection's setting in the data folder
    /// (--data-dir), for its hybrid searches from then on, unless it did worse than the default
    /// on the held-out queries. Needs `admin` on the collection; audited.
    #[arg(long, requires = "tune", value_name = "COLLECTION")]
    pub apply: Option<String>,
    #[command(flatten)]
    pub extraction: ExtractArgs,
}
