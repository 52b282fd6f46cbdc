//! Resolves the data folder and model paths and opens what a command needs. Only this binary
//! reads flags and environment variables; the libraries take plain paths and options.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use vellum_audit::{AuditConfig, AuditLog};
use vellum_auth::AuthStore;
use vellum_ingest::pipeline::IngestOptions;
use vellum_models::{
    Embedder, GenerationDevice, Generator, GgufGenerator, OnnxFiles, RemoteConfig, RemoteGenerator,
};
use vellum_server::{
    Caller, FileConfig, Overrides, Policies, ServerConfig, Service, ServiceError, ServiceParts,
    UploadSettings,
};
use vellum_store::{Store, StoreOptions};

use crate::cli::{EmbedderBackend, GlobalArgs};

const FETCH_HINT: &str =
    "run `deploy/fetch-models.sh` (or point --models-dir / VELLUM_MODELS_DIR at the models folder)";

/// Paths resolved from the global options.
pub struct Context {
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub embedding_model: PathBuf,
    pub embedder_backend: EmbedderBackend,
    pub onnx: OnnxFiles,
    pub generation_model: PathBuf,
    /// Where the local GGUF model runs.
    pub device: GenerationDevice,
    /// Where the local GGUF's panel cache file goes (`None`: `--no-panel-cache`).
    pub panel_cache: Option<PathBuf>,
    /// Set when generation goes to an OpenAI-compatible server.
    pub remote: Option<RemoteConfig>,
    pub json: bool,
    /// `--policies`: for `serve`, and for `--as`.
    pub policies: Option<PathBuf>,
    /// `--as USER`: act as this account instead of as the operator.
    pub as_user: Option<String>,
}

/// The one front door as the CLI uses it: the application layer, who is calling, and the
/// audit log to close (with its final signed checkpoint) when the command ends.
pub struct FrontDoor {
    pub service: Service,
    pub caller: Caller,
    /// Which vectors the embedder makes ([`Embedder::model_name`]).
    pub embedder_name: String,
    audit: Arc<AuditLog>,
}

impl FrontDoor {
    /// Writes the final checkpoint; call once the command's work is done.
    pub fn close(self) -> Result<()> {
        let FrontDoor { service, audit, .. } = self;
        drop(service);
        audit
            .shutdown()
            .context("closing the audit log (final checkpoint)")
    }
}

/// A service error as the CLI reports it (the exit code follows its kind; see `main.rs`).
pub fn service_error(err: ServiceError) -> anyhow::Error {
    anyhow::Error::new(CliServiceError(err))
}

/// Carries a [`ServiceError`] through `anyhow` so `main` can pick the exit code.
#[derive(Debug)]
pub struct CliServiceError(pub ServiceError);

impl std::fmt::Display for CliServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ServiceError::NotFound => f.write_str(
                "not found (or not readable by you): `vellum documents` lists what you may read",
            ),
            ServiceError::Forbidden => f.write_str(
                "not permitted by the Cedar policies in force (the refusal is in the audit log)",
            ),
            ServiceError::Unauthenticated => {
                f.write_str("no such account, or it is disabled (`vellum user list`)")
            }
            ServiceError::Internal(detail) => write!(f, "internal error: {detail}"),
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for CliServiceError {}

/// The data folder's `vellum.toml` (or `explicit`), as `serve` reads it.
pub fn file_config(ctx: &Context, explicit: Option<&Path>) -> Result<FileConfig> {
    Ok(match explicit {
        Some(path) => FileConfig::read(path)?,
        None => {
            let path = ctx.data_dir.join("vellum.toml");
            if path.is_file() {
                FileConfig::read(&path)?
            } else {
                FileConfig::default()
            }
        }
    })
}

/// Where the audit log of `data_dir` is and how it keeps queries: `serve`'s settings, so the
/// CLI and the server write one log.
pub fn audit_config(data_dir: &Path, config: &ServerConfig) -> AuditConfig {
    let mut audit_config = AuditConfig::in_data_dir(data_dir);
    if let Some(dir) = &config.audit_dir {
        audit_config.dir = dir.clone();
    }
    if let Some(dir) = &config.audit_key_dir {
        audit_config.key_dir = dir.clone();
    }
    audit_config.store_plain_queries = config.audit_plain_queries;
    audit_config
}

/// The context of a policy load error: what was loaded, and what `--policies` accepts.
pub fn loading_policies(policies: &vellum_server::Policies) -> String {
    format!(
        "loading the Cedar policies: {policies} (--policies / VELLUM_POLICIES: a folder, or a \
         built-in set: {})",
        vellum_authz::builtin_names().join(", ")
    )
}

/// What `vellum serve` writes as the audit log's holder; a CLI command refused by it stops at
/// once instead of waiting.
pub const SERVE_HOLDER: &str = "vellum serve";

/// How long a command waits for the audit log while another `vellum` holds it.
const AUDIT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Opens the audit log, waiting while another `vellum` command holds it (one writer at a
/// time); a running `vellum serve` holds it for good, so after [`AUDIT_WAIT`] the command
/// gives up and says to use the API.
fn open_audit_log(config: &AuditConfig) -> Result<AuditLog> {
    let mut config = config.clone();
    // Not the arguments: they may hold a query.
    config.holder = format!("a vellum command (pid {})", std::process::id());
    let config = &config;
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        match AuditLog::open(config.clone()) {
            Ok(log) => return Ok(log),
            Err(vellum_audit::AuditError::Locked(dir)) => {
                let holder = vellum_audit::lock_holder(&dir).unwrap_or_default();
                // A server holds the log for as long as it runs: no point in waiting.
                if holder.starts_with(SERVE_HOLDER) {
                    anyhow::bail!(
                        "`{holder}` holds the audit log in {}: every command is audited and the \
                         log has one writer, so use the HTTPS API while the server runs, or stop \
                         it first",
                        dir.display()
                    );
                }
                if started.elapsed() >= AUDIT_WAIT {
                    anyhow::bail!(
                        "the audit log in {} is still held by another vellum process after {} s: \
                         every command is audited and the log has one writer; if `vellum serve` \
                         runs on this data folder, use the HTTPS API or stop the server first",
                        dir.display(),
                        AUDIT_WAIT.as_secs()
                    );
                }
                if !told && started.elapsed() >= std::time::Duration::from_secs(2) {
                    eprintln!(
                        "Waiting for the audit log in {}, which `{holder}` holds (one writer at \
                         a time)...",
                        dir.display()
                    );
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("opening the audit log in {}", config.dir.display()))
            }
        }
    }
}

/// The name of the Unix user running this process (the uid if it has no name).
pub fn unix_user() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap_or_else(|| uid.to_string())
}

impl Context {
    pub fn new(global: &GlobalArgs) -> Self {
        let under_models = |p: &Path| {
            if p.is_absolute() || p.exists() && p.components().count() > 1 {
                p.to_path_buf()
            } else {
                global.models_dir.join(p)
            }
        };
        Context {
            data_dir: global.data_dir.clone(),
            models_dir: global.models_dir.clone(),
            embedding_model: under_models(&global.embedding_model),
            embedder_backend: global.embedder,
            onnx: OnnxFiles {
                model: under_models(&global.onnx_model),
                runtime: under_models(&global.onnxruntime),
            },
            generation_model: under_models(&global.generation_model),
            device: global.device,
            panel_cache: (!global.no_panel_cache).then(|| global.data_dir.join("panel-cache")),
            remote: global.remote_url.as_ref().map(|url| {
                let mut config = RemoteConfig::new(url.clone(), global.remote_model.clone());
                config.api_key = global.remote_api_key.clone();
                config.context_length = global.remote_context;
                config
            }),
            json: global.json,
            policies: global.policies.clone(),
            as_user: global.as_user.clone(),
        }
    }

    /// Opens the application layer for a CLI command: store, embedder, the generator if
    /// `with_generator`, identities, the policies and the audit log, and resolves the caller
    /// (the operator, or `--as USER`).
    pub fn front_door(&self, with_generator: bool) -> Result<FrontDoor> {
        let config = ServerConfig::resolve(
            Overrides {
                policies: self.policies.clone(),
                ..Overrides::default()
            },
            file_config(self, None)?,
        )?;
        vellum_store::check_data_format(&self.data_dir)?;
        if config.require_encrypted_storage {
            crate::encryption::check_data_folder(&self.data_dir, true)?;
        }
        // The audit log first: if a server holds it, nothing else need be loaded.
        let audit = Arc::new(open_audit_log(&audit_config(&self.data_dir, &config))?);
        let embedder = self.embedder()?;
        let embedder_name = embedder.model_name().to_string();
        let store = self.open_store(&embedder)?;
        let generator = if with_generator {
            Some(self.generator()?)
        } else {
            None
        };
        let auth = AuthStore::open(&self.data_dir)
            .with_context(|| {
                format!(
                    "opening the user database in {} (--data-dir / VELLUM_DATA_DIR)",
                    self.data_dir.display()
                )
            })?
            .with_key_days(config.key_days);
        let policies = match &self.as_user {
            Some(_) => config.policies.clone(),
            None => Policies::Operator,
        };
        let service = Service::new(ServiceParts {
            store,
            embedder: Box::new(embedder),
            generator,
            auth,
            policies,
            uploads: UploadSettings {
                dir: self.data_dir.join("uploads"),
                max_bytes: config.max_upload_mb.saturating_mul(1 << 20),
                reserve_bytes: config.upload_reserve_mb.saturating_mul(1 << 20),
                ingest: IngestOptions::default(),
            },
            audit: Some(audit.clone()),
        })
        .with_context(|| loading_policies(&config.policies))?;
        let operator = unix_user();
        let caller = match &self.as_user {
            None => Caller::operator(&operator),
            Some(name) => service
                .local_caller_as(&operator, name)
                .map_err(service_error)
                .with_context(|| format!("acting as {name:?} (--as)"))?,
        };
        Ok(FrontDoor {
            service,
            caller,
            embedder_name,
            audit,
        })
    }

    pub fn embedder(&self) -> Result<Embedder> {
        if self.embedder_backend == EmbedderBackend::Onnx {
            if !self.onnx.model.is_file() {
                anyhow::bail!(
                    "no ONNX embedding model at {} (--onnx-model): {FETCH_HINT}",
                    self.onnx.model.display()
                );
            }
            return Embedder::load_onnx(&self.embedding_model, &self.onnx).with_context(|| {
                format!(
                    "loading the ONNX embedding model {} with the tokenizer of {}",
                    self.onnx.model.display(),
                    self.embedding_model.display()
                )
            });
        }
        if !self.embedding_model.join("model.safetensors").is_file() {
            anyhow::bail!(
                "no embedding model at {}: {FETCH_HINT}",
                self.embedding_model.display()
            );
        }
        let load = match self.embedder_backend {
            EmbedderBackend::NativeInt8 => Embedder::load_int8,
            EmbedderBackend::Native | EmbedderBackend::Onnx => Embedder::load,
        };
        load(&self.embedding_model).with_context(|| {
            format!(
                "loading the embedding model {}",
                self.embedding_model.display()
            )
        })
    }

    /// The configured generator: the remote server if one is set, else the local GGUF.
    pub fn generator(&self) -> Result<Box<dyn Generator>> {
        if let Some(config) = &self.remote {
            let generator = RemoteGenerator::new(config.clone())
                .with_context(|| format!("configuring the remote engine {}", config.base_url))?;
            return Ok(Box::new(generator));
        }
        if !self.generation_model.is_file() {
            anyhow::bail!(
                "no generation model at {}: {FETCH_HINT}",
                self.generation_model.display()
            );
        }
        let generator = GgufGenerator::load_cached(
            &self.generation_model,
            self.device,
            self.panel_cache.as_deref(),
        )
        .with_context(|| {
            format!(
                "loading the generation model {} on {}",
                self.generation_model.display(),
                self.device
            )
        })?;
        Ok(Box::new(generator))
    }

    pub fn open_store(&self, embedder: &Embedder) -> Result<Store> {
        open_store_at(&self.data_dir, embedder)
    }
}

/// Opens (or creates) a store whose vectors match `embedder`.
pub fn open_store_at(data_dir: &Path, embedder: &Embedder) -> Result<Store> {
    Store::open(
        data_dir,
        StoreOptions {
            embedding_dim: embedder.dim(),
            embedding_model: embedder.model_name().to_string(),
        },
    )
    .with_context(|| format!("opening the data folder {}", data_dir.display()))
}
