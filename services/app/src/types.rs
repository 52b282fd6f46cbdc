//! The JSON shapes of the API under `/v1`. They derive their OpenAPI schemas (utoipa), so the
//! description at `/v1/openapi.json` is generated from the types the handlers really use.
//! Requests reject unknown fields: a misspelt `colections` must fail, not widen a search.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use vellum_auth::{ApiKeyInfo, Principal, UserInfo};
use vellum_rag::SearchMode;

/// A whole number for counts like `k`: JSON Schema (and so OpenAPI clients) count `5.0` as an
/// integer, so it is accepted as one; `5.5` is not.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let number: Option<serde_json::Number> = Option::deserialize(deserializer)?;
    let Some(number) = number else {
        return Ok(None);
    };
    if let Some(value) = number.as_u64() {
        return usize::try_from(value)
            .map(Some)
            .map_err(|_| serde::de::Error::custom("number too large"));
    }
    match number.as_f64() {
        Some(value) if value.fract() == 0.0 && (0.0..1e15).contains(&value) => {
            Ok(Some(value as usize))
        }
        _ => Err(serde::de::Error::custom("expected a whole number")),
    }
}

/// An account, role or group name: lowercase letters, digits, `.`, `_`, `-`, `@`.
pub const NAME_PATTERN: &str = r"^[a-z0-9][a-z0-9._@-]{0,63}$";

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code: `bad_request`, `unauthenticated`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `conflict`, `too_large`, `unprocessable`, `throttled`,
    /// `unavailable`, `internal`.
    pub code: String,
    /// What went wrong, for a person; never internal details.
    pub message: String,
}

/// `POST /v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
}

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub user: UserView,
}

/// Who the caller is, as `GET /v1/me` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// `session` or `api_key`.
    pub via: String,
}

impl From<&Principal> for UserView {
    fn from(principal: &Principal) -> Self {
        UserView {
            name: principal.name.clone(),
            roles: principal.roles.clone(),
            groups: principal.groups.clone(),
            via: principal.via.clone(),
        }
    }
}

/// Which engines a search uses.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    /// BM25 and vectors, fused (reciprocal rank fusion).
    #[default]
    Hybrid,
    /// Full text only.
    Bm25,
    /// Embeddings only.
    Vector,
}

impl From<ModeName> for SearchMode {
    fn from(mode: ModeName) -> SearchMode {
        match mode {
            ModeName::Hybrid => SearchMode::Hybrid,
            ModeName::Bm25 => SearchMode::Bm25,
            ModeName::Vector => SearchMode::Vector,
        }
    }
}

impl From<SearchMode> for ModeName {
    fn from(mode: SearchMode) -> ModeName {
        match mode {
            SearchMode::Hybrid => ModeName::Hybrid,
            SearchMode::Bm25 => ModeName::Bm25,
            SearchMode::Vector => ModeName::Vector,
        }
    }
}

/// `POST /v1/search`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// 1-4096 characters of text (not only white space).
    #[schema(min_length = 1, max_length = 4096, pattern = r"\S")]
    pub query: String,
    #[serde(default)]
    pub mode: Option<ModeName>,
    /// Results wanted (default 10).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 100)]
    pub k: Option<usize>,
    /// Only these collections (intersected with what the caller may search).
    #[serde(default)]
    pub collections: Option<Vec<String>>,
    /// Results to skip (paging; `offset + k` at most 200).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 199)]
    pub offset: Option<usize>,
    /// Only documents ingested on or after this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    #[schema(pattern = r"^\d{4}-\d{2}-\d{2}$")]
    pub ingested_after: Option<String>,
    /// Only documents ingested on or before this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    #[schema(pattern = r"^\d{4}-\d{2}-\d{2}$")]
    pub ingested_before: Option<String>,
    /// Only documents that carry every one of these access labels (e.g. `privileged`).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Only documents of these types (`pdf`, `docx`, `html`, `email`, `ccda`, `text`...).
    #[serde(default)]
    pub formats: Option<Vec<String>>,
}

/// One search result.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub document_id: String,
    pub collection: String,
    pub title: String,
    pub page: u32,
    pub chunk_id: String,
    pub text: String,
    pub score: f32,
    /// The document's format (`pdf`, `docx`, `html`, `email`, `ccda`, `text`...).
    pub format: String,
    /// When the document was ingested (RFC 3339, UTC).
    pub ingested_at: String,
}

/// `POST /v1/search`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub mode: String,
    pub results: Vec<SearchHit>,
    /// The `offset` asked for.
    pub offset: usize,
    /// Whether there are results past these.
    pub has_more: bool,
}

/// One indexed chunk of a document (`GET /v1/documents/{id}/chunks`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkView {
    pub chunk_id: String,
    /// The page the chunk starts on.
    pub page: u32,
    /// Its position in the document, from 0.
    pub ordinal: u32,
    pub text: String,
}

/// A document as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub collection: String,
    pub title: String,
    /// The name of the file it came from (never the server's folders).
    pub file_name: String,
    pub sha256: String,
    pub format: String,
    pub num_pages: u32,
    pub num_chunks: u32,
    pub ingested_at: String,
    pub labels: Vec<String>,
}

/// A collection the caller can use.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionView {
    pub name: String,
    /// Documents in it the caller may read.
    pub num_documents: u64,
}

/// `POST /v1/ask`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// 1-4096 characters of text (not only white space).
    #[schema(min_length = 1, max_length = 4096, pattern = r"\S")]
    pub question: String,
    #[serde(default)]
    pub mode: Option<ModeName>,
    /// Passages given to the model as numbered sources (default 5).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 20)]
    pub k: Option<usize>,
    /// Only these collections (intersected with what the caller may ask about).
    #[serde(default)]
    pub collections: Option<Vec<String>>,
    /// Only this document (its id): an answer about one contract. A document the caller
    /// cannot read is not found.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub document_id: Option<String>,
    /// Longest answer in tokens (default 256).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1024)]
    pub max_tokens: Option<usize>,
    /// Earlier turns of the conversation, oldest first (at most 20; the last 3 go into the
    /// prompt, and the previous question joins the search).
    #[serde(default)]
    pub history: Vec<HistoryTurn>,
    /// Whether the model writes after the quoted sentences (default true). `false`: the answer
    /// is the sentences of the sources closest to the question, quoted, and no model runs.
    #[serde(default)]
    pub generate: Option<bool>,
}

/// An earlier question and the answer it got.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryTurn {
    #[schema(max_length = 4096)]
    pub question: String,
    #[schema(max_length = 16384)]
    pub answer: String,
}

/// A numbered source the model was given (the `sources` event of `POST /v1/ask`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceView {
    /// The number the answer cites it by (`[n]`).
    pub n: usize,
    pub document_id: String,
    pub title: String,
    pub page: u32,
    pub chunk_id: String,
    pub text: String,
    /// SHA-256 of `text`: what the model saw, provably.
    pub content_sha256: String,
    pub score: f32,
}

/// The final `answer` event of `POST /v1/ask`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnswerView {
    /// The answer: sentences of the sources quoted verbatim (chosen by the embedder, each
    /// cited `[n]`), then the model's sentences that the sources they cite support.
    pub text: String,
    /// The quoted lead sentences (absent from answers stored before they existed).
    #[serde(default)]
    pub quotes: Vec<QuoteView>,
    /// The model's sentences left out: they cited no source or said more than it.
    #[serde(default)]
    pub unsupported_sentences: Vec<String>,
    /// Source numbers the answer cites.
    pub cited: Vec<usize>,
    /// Citation markers that pointed to no source.
    pub invalid_citations: Vec<String>,
    /// Sentences that cite no source.
    pub uncited_sentences: Vec<String>,
    /// Nothing relevant was found, so nothing was generated.
    pub no_relevant_sources: bool,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// What the answer was made from (`vellum replay` regenerates it from this).
    #[schema(value_type = Object)]
    pub receipt: serde_json::Value,
}

/// A sentence of source `n` that an answer quotes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    pub n: usize,
    /// An exact substring of source `n`'s text.
    pub text: String,
    pub page: u32,
}

/// A `token` event of `POST /v1/ask`: the next piece of the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenEvent {
    pub text: String,
}

/// The name of an event of the `POST /v1/ask` stream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AskEventName {
    Sources,
    Token,
    Answer,
    Error,
}

/// One Server-Sent Event of `POST /v1/ask`: `data` is JSON, a [`SourcesEvent`],
/// [`TokenEvent`], [`AnswerView`] or [`ErrorBody`] by `event`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskStreamEvent {
    pub event: AskEventName,
    pub data: String,
}

/// The `sources` event of `POST /v1/ask`, sent before the first token.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourcesEvent {
    pub sources: Vec<SourceView>,
}

/// `POST /v1/summarize`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeRequest {
    /// The document to summarize (all of its pages).
    #[schema(min_length = 1, max_length = 200)]
    pub document_id: String,
    /// The kind of summary: `contract`, `clinical`, `email`, `filing` or `general`; detected
    /// from the document when absent.
    #[serde(default)]
    #[schema(max_length = 16)]
    pub kind: Option<String>,
    /// Whether the model writes prose over the extracted facts (default false: on the embedded
    /// SmolLM2-135M no sentence survives the support check). Prose sentences that cite no fact
    /// or say more than their facts are dropped.
    #[serde(default)]
    pub prose: Option<bool>,
    /// Longest prose in tokens (default 200).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 16, maximum = 1024)]
    pub max_tokens: Option<usize>,
}

/// One line of a summary: a fact searched for in the document, found with a verbatim quote
/// or not found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SummaryItemView {
    /// What it is about: a CUAD category as CUAD's column headers spell it (`Change Of
    /// Control`), a structured field (`Governing Law`, `Agreement Date`), a clinical heading
    /// (`Medications`), ...
    pub section: String,
    /// `found` or `not_found`.
    #[schema(pattern = "^(found|not_found)$")]
    pub status: String,
    /// The verbatim quote: an exact substring of the chunk `chunk_id`'s text.
    pub quote: Option<String>,
    /// The page the quote is on.
    pub page: Option<u32>,
    pub chunk_id: Option<String>,
    /// The plain reading (a normalised value for dates, governing law, parties).
    pub text: String,
}

/// The model's prose over the facts, after the support check.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProseView {
    /// The kept sentences, each citing its facts' pages as `(p. N)`.
    pub text: String,
    /// Sentences dropped: they cited no fact or said more than their facts.
    pub dropped_sentences: Vec<String>,
}

/// A whole-document summary: facts extracted first (each quoted with its page), then prose.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub document: DocumentView,
    /// `contract`, `clinical`, `email`, `filing` or `general`.
    pub kind: String,
    /// True when the kind was detected from the document, false when the request chose it.
    pub kind_detected: bool,
    pub items: Vec<SummaryItemView>,
    /// Absent when prose was not asked for, or nothing was found to write about.
    pub prose: Option<ProseView>,
    /// The summary as text: kept prose, then each found item with its quote and `(p. N)`,
    /// then the sections not found.
    pub text: String,
    /// Chunks the facts were searched in (all of the document's).
    pub num_chunks: usize,
}

/// `POST /v1/documents` (multipart/form-data): the file and where it goes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Only describes the form for the OpenAPI document.
pub struct UploadForm {
    /// The collection the document goes into: no `:`, `/` or control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^:/\x00-\x1f\x7f-\x9f]*[^:/\x00-\x1f\x7f-\x9f\s][^:/\x00-\x1f\x7f-\x9f]*$"
    )]
    pub collection: String,
    /// Labels, comma-separated (e.g. `privileged,phi`): each 1-64 of letters, digits, `_`, `-`.
    #[schema(
        max_length = 4096,
        pattern = r"^ *([A-Za-z0-9_-]{1,64} *(, *[A-Za-z0-9_-]{1,64} *)*)?$"
    )]
    pub labels: Option<String>,
    /// The file (PDF, DOCX, HTML, e-mail, text, ...).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The answer to an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    pub document: DocumentView,
    /// The same bytes (SHA-256) were already in the collection: nothing was ingested.
    pub duplicate: bool,
}

/// `POST /v1/users` (admin). The policies must also allow `grant` on the account as it will be
/// (an administrator cannot give roles or groups their own walls deny them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._@-]{0,63}$")]
    pub name: String,
    /// At least 12 characters.
    #[schema(min_length = 12)]
    pub password: String,
    #[serde(default)]
    pub roles: Vec<AccountName>,
    #[serde(default)]
    pub groups: Vec<AccountName>,
}

/// A role or group name: lowercase letters, digits, `.`, `_`, `-`, `@` (see [`NAME_PATTERN`]).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = r"^[a-z0-9][a-z0-9._@-]{0,63}$")]
pub struct AccountName(pub String);

/// `PUT /v1/users/{name}/password`: from a signed-in session only (not an API key). The change
/// ends the user's sessions and revokes all their API keys.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The new password: at least 12 characters.
    #[schema(min_length = 12)]
    pub password: String,
    /// One's own password: required, and checked like a login (wrong ones count towards the
    /// login throttle).
    #[serde(default)]
    pub current_password: Option<String>,
    /// Another user's password (an administrator acting for them): required, 1-500
    /// characters, kept in the audit record.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// `PUT /v1/users/{name}/disabled`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisabledRequest {
    pub disabled: bool,
}

/// An account (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    pub must_change_password: bool,
    /// Unix seconds.
    pub created_at: u64,
}

impl From<UserInfo> for AccountView {
    fn from(user: UserInfo) -> Self {
        AccountView {
            name: user.name,
            roles: user.roles,
            groups: user.groups,
            disabled: user.disabled,
            must_change_password: user.must_change_password,
            created_at: user.created_at,
        }
    }
}

/// `POST /v1/keys`: from a signed-in session only (a key cannot make keys).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// What the key is for (e.g. `scanner-3`): up to 200 bytes, not only white space.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub name: String,
    /// Whose key (admins only; default: the caller).
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9][a-z0-9._@-]{0,63}$")]
    pub user: Option<String>,
    /// Days until the key stops working: 1-365 (default: the server's `key_days`, 90 unless
    /// configured).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
    /// Why an administrator makes a key for another user: required then, 1-500 characters,
    /// kept in the audit record.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// An API key's public facts (never the key).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key's public prefix, shown in lists.
    pub id: String,
    pub user: String,
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; null while not revoked.
    pub revoked_at: Option<u64>,
    /// Unix seconds: the key stops working then.
    pub expires_at: u64,
}

impl From<ApiKeyInfo> for KeyView {
    fn from(key: ApiKeyInfo) -> Self {
        KeyView {
            id: key.id,
            user: key.user,
            name: key.name,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
            expires_at: key.expires_at,
        }
    }
}

/// A new API key: `key` is shown this once and stored only hashed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyView {
    pub key: String,
    pub info: KeyView,
}

/// `GET /v1/health`: the process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    pub status: String,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// `GET /v1/ready`: whether requests can be served (stores, models, policies, disk).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessView {
    pub ready: bool,
    pub checks: Vec<CheckView>,
}
