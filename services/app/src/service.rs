//! What the HTTPS API does, without HTTP: authentication, authorization and the calls into the
//! store, the retriever, the generator and ingest. Handlers (`routes.rs`) only translate between
//! HTTP and these methods, so everything here is tested without a server.
//!
//! Authorization never filters after fetching. The caller's permitted (collection, labels)
//! scopes are computed by Cedar first, as the [`ReadScope`] proof the store's searches and reads
//! require, and become a filter that runs inside Tantivy and LanceDB
//! ([`Service::read_scope`]); single documents are checked with Cedar before anything about
//! them is returned, and a document the caller may not read looks exactly like a missing one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use vellum_audit::{actions, AuditEvent, AuditLog, ChunkRead, Sensitive};

use vellum_auth::{AuthStore, Principal, Throttle};
use vellum_authz::{
    Action, Authorizer, Decision, PrincipalInfo, ReadScope, RequestContext, Resource, Scope,
};
use vellum_ingest::pipeline::{IngestOptions, PassageEmbedder};
use vellum_models::Generator;
use vellum_rag::{QueryEmbedder, RetrievalOptions, RetrievedChunk, Retriever, SearchMode};
use vellum_store::{DocumentId, DocumentRecord, SearchFilter, Store};

use crate::metrics::Metrics;
use crate::tally::{FailureTally, RequestAuditHandle, TallyConfig};
use crate::types::{
    CheckView, CollectionView, DocumentView, LoginRequest, LoginResponse, ReadinessView, SearchHit,
    SearchRequest, SearchResponse, UserView,
};

/// What the API answers when something fails; `error.rs` maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No valid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Too many failed logins.
    #[error("too many failed logins: try again in {0} s")]
    Throttled(u64),
    /// Too many requests of this kind at once (answers, uploads): try again in this many
    /// seconds.
    #[error("{message}")]
    Busy { message: String, retry_after: u64 },
    /// The account still has a password it was given (first start, or reset by an
    /// administrator): it must choose its own before doing anything else.
    #[error(
        "this account must change its password first: PUT /v1/users/{{name}}/password with current_password and password"
    )]
    PasswordChangeRequired,
    /// The caller may see the resource but not do this to it.
    #[error("not permitted")]
    Forbidden,
    /// Missing, or not readable by the caller: the two look the same.
    #[error("not found")]
    NotFound,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The thing to create exists already (a user name).
    #[error("{0}")]
    Conflict(String),
    /// The upload is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The upload was received but cannot be indexed (encrypted, scanned, malformed...): the
    /// reason says which and what to do.
    #[error("{reason}")]
    Unprocessable { kind: String, reason: String },
    /// A part the request needs is not there (no generation model) or not working (audit log
    /// not writable): nothing was done or shown.
    #[error("{0}")]
    Unavailable(String),
    /// Our fault; the detail is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

/// The closed set every failure falls into (`vellum-errorkind`); the HTTP edge maps each to one
/// status code (`vellum-server`'s `error.rs`) and the CLI to one exit code (`vellum`'s
/// `main.rs`).
pub use vellum_errorkind::ErrorKind;

impl ServiceError {
    /// Which [`ErrorKind`] this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Unauthenticated => ErrorKind::Unauthenticated,
            // Authenticated, but nothing else is allowed until the password changes.
            ServiceError::PasswordChangeRequired => ErrorKind::Forbidden,
            ServiceError::Throttled(_) | ServiceError::Busy { .. } => ErrorKind::Throttled,
            ServiceError::Forbidden => ErrorKind::Forbidden,
            ServiceError::NotFound => ErrorKind::NotFound,
            ServiceError::BadRequest(_) => ErrorKind::Invalid,
            ServiceError::Conflict(_) => ErrorKind::Conflict,
            ServiceError::TooLarge(_) => ErrorKind::TooLarge,
            ServiceError::Unprocessable { .. } => ErrorKind::Unprocessable,
            ServiceError::Unavailable(_) => ErrorKind::Unavailable,
            ServiceError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl ServiceError {
    /// A library failure as the caller sees it, by its kind. The detail of an internal one is
    /// logged, never sent (see the server's `error.rs`).
    pub(crate) fn from_kind(kind: ErrorKind, message: String) -> ServiceError {
        match kind {
            ErrorKind::Invalid => ServiceError::BadRequest(message),
            ErrorKind::Unauthenticated => ServiceError::Unauthenticated,
            ErrorKind::Forbidden => ServiceError::Forbidden,
            ErrorKind::NotFound => ServiceError::NotFound,
            ErrorKind::Conflict => ServiceError::Conflict(message),
            ErrorKind::TooLarge => ServiceError::TooLarge(message),
            ErrorKind::Unprocessable => ServiceError::Unprocessable {
                kind: "unprocessable".into(),
                reason: message,
            },
            ErrorKind::Throttled => ServiceError::Busy {
                message,
                retry_after: 1,
            },
            ErrorKind::Unavailable => {
                tracing::warn!(error = message.as_str(), "unavailable");
                ServiceError::Unavailable(
                    "a part of the service is busy or unavailable; try again shortly".into(),
                )
            }
            ErrorKind::Internal => ServiceError::Internal(message),
        }
    }
}

impl From<vellum_store::Error> for ServiceError {
    fn from(err: vellum_store::Error) -> Self {
        // A busy SQLite or a locked index is 503 (retry), not our bug.
        ServiceError::from_kind(err.kind(), err.to_string())
    }
}

impl From<vellum_rag::Error> for ServiceError {
    fn from(err: vellum_rag::Error) -> Self {
        match err {
            // The hook's reason is already written for people (the audit log failed).
            vellum_rag::Error::Stopped(reason) => ServiceError::Unavailable(reason),
            other => ServiceError::from_kind(other.kind(), other.to_string()),
        }
    }
}

impl From<vellum_auth::Error> for ServiceError {
    fn from(err: vellum_auth::Error) -> Self {
        match err {
            vellum_auth::Error::Throttled {
                retry_after_seconds,
            } => ServiceError::Throttled(retry_after_seconds),
            other => ServiceError::from_kind(other.kind(), other.to_string()),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// The address of callers on this machine's command line.
pub const LOCAL_ADDRESS: &str = "local";

/// Who is asking and from where: every service call takes one, and every audit record names
/// both.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The TCP peer's IP address (never a forwarded-for header a client could forge).
    pub address: String,
    /// Emergency ("break-glass") access the user invoked for this request, with their stated
    /// reason (`X-Vellum-Break-Glass`). Policies see `context.break_glass`; every record of
    /// such a request carries the reason, whatever the decision.
    pub break_glass: Option<String>,
    /// The request's audit mark (HTTP): set once a service call builds this request's record.
    pub(crate) audit_mark: Option<RequestAuditHandle>,
}

impl Caller {
    /// The caller, with no break-glass.
    pub fn new(principal: Principal, address: impl Into<String>) -> Caller {
        Caller {
            principal,
            address: address.into(),
            break_glass: None,
            audit_mark: None,
        }
    }

    /// The local operator of the CLI: the Unix user running `vellum`, with the operator role.
    /// Audit records name them `operator:<unix user>` from address `local`.
    pub fn operator(unix_user: &str) -> Caller {
        Caller::new(
            Principal {
                user_id: 0,
                name: format!("operator:{unix_user}"),
                roles: vec![OPERATOR_ROLE.to_string()],
                groups: Vec::new(),
                via: "cli".into(),
                credential_id: String::new(),
                must_change_password: false,
            },
            LOCAL_ADDRESS,
        )
    }

    /// Ties the caller to its HTTP request's audit mark.
    pub fn with_audit_mark(mut self, mark: Option<RequestAuditHandle>) -> Caller {
        if let Some(mark) = &mark {
            mark.set_principal(&self.principal.name);
        }
        self.audit_mark = mark;
        self
    }

    /// The Cedar request context of this request.
    pub fn context(&self) -> RequestContext {
        RequestContext {
            break_glass: self.break_glass.is_some(),
        }
    }
}

/// The outcome an audit record gives a result.
fn outcome_of<T>(result: &ServiceResult<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(
            ServiceError::Forbidden
            | ServiceError::Unauthenticated
            | ServiceError::PasswordChangeRequired,
        ) => "denied",
        Err(ServiceError::NotFound) => "not_found",
        Err(ServiceError::Throttled(_) | ServiceError::Busy { .. }) => "throttled",
        Err(
            ServiceError::BadRequest(_) | ServiceError::TooLarge(_) | ServiceError::Conflict(_),
        ) => "rejected",
        Err(ServiceError::Unprocessable { .. }) => "quarantined",
        Err(ServiceError::Unavailable(_) | ServiceError::Internal(_)) => "error",
    }
}

/// SHA-256 (hex) of a text as it was returned: what the audit log proves was read.
pub(crate) fn content_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// An audit record's view of a Cedar decision.
pub(crate) fn audit_decision(decision: &Decision) -> vellum_audit::Decision {
    vellum_audit::Decision {
        allowed: decision.allowed,
        policies: decision.policies.clone(),
    }
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A policy file is invalid.
    #[error(transparent)]
    Policies(#[from] vellum_authz::LoadError),
    /// Searches filter by (collection, labels) inside the indexes, which cannot express a rule
    /// about one particular document; rather than check hits after fetching (leaking counts),
    /// such policies are refused.
    #[error(
        "a policy names a specific Vellum::Document; searches filter by collection and labels \
         inside the indexes and cannot apply it: give the document a label and write the rule \
         about the label"
    )]
    DocumentSpecificPolicy,
    /// The audit log does not take the first record.
    #[error("{0}")]
    Audit(String),
}

/// An embedder for both queries (search, ask) and passages (uploads).
pub trait ServiceEmbedder: QueryEmbedder + PassageEmbedder {}
impl<T: QueryEmbedder + PassageEmbedder + ?Sized> ServiceEmbedder for T {}

/// Where uploads go and how they are ingested.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Uploaded files are kept here (`<sha256>/<upload>/<name>`); partial uploads stream into
    /// its `.partial/` subfolder on the same file system, so finishing one is a rename.
    pub dir: PathBuf,
    /// Largest upload in bytes.
    pub max_bytes: u64,
    /// Free bytes an upload must leave on the upload file system (the audit log, which fails
    /// closed, and the indexes need room): `upload_reserve_mb` in the server's settings.
    pub reserve_bytes: u64,
    /// Extraction sandbox, limits, OCR and passwords; collection and labels are set per upload.
    pub ingest: IngestOptions,
}

/// What the service is built from.
pub struct ServiceParts {
    pub store: Store,
    pub embedder: Box<dyn ServiceEmbedder>,
    /// `None`: ask and summarize answer 503 (search still works).
    pub generator: Option<Box<dyn Generator>>,
    pub auth: AuthStore,
    /// The Cedar policies in force.
    pub policies: Policies,
    pub uploads: UploadSettings,
    /// The tamper-evident audit log. `vellum serve` always opens one; `None` exists for the
    /// benchmark that measures what auditing costs.
    pub audit: Option<Arc<AuditLog>>,
}

/// Where the Cedar policies come from.
#[derive(Debug, Clone)]
pub enum Policies {
    /// Every `*.cedar` file of a folder (`vellum serve --policies`, `vellum --policies`).
    Dir(PathBuf),
    /// The local operator's policy ([`OPERATOR_POLICY`]): the CLI without `--policies`.
    Operator,
    /// A set of `policies/` compiled into the binary (`default`, `law-firm`, `hospital`).
    Builtin(String),
}

impl std::fmt::Display for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policies::Dir(dir) => write!(f, "{}", dir.display()),
            Policies::Operator => f.write_str("the built-in operator policy"),
            Policies::Builtin(name) => write!(f, "the built-in policy set {name}"),
        }
    }
}

impl Policies {
    /// What `--policies` / `policies =` names: an existing folder, else a built-in set's name,
    /// else a folder (that will fail to load, naming it). Nothing given: built-in `default`.
    pub fn from_setting(setting: Option<&std::path::Path>) -> Policies {
        let Some(path) = setting else {
            return Policies::Builtin("default".into());
        };
        let name = path.to_str().unwrap_or_default();
        if !path.is_dir() && vellum_authz::builtin_set(name).is_some() {
            return Policies::Builtin(name.to_string());
        }
        Policies::Dir(path.to_path_buf())
    }

    /// Loads and validates the policies; also what they were loaded from, for messages and the
    /// audit log. `vellum serve` calls it before creating anything, so a bad policy stops a
    /// first start before users, keys or folders exist.
    pub fn load(&self) -> Result<(Authorizer, String), SetupError> {
        let loaded = match self {
            Policies::Dir(dir) => (Authorizer::load(dir)?, dir.display().to_string()),
            Policies::Operator => (
                Authorizer::from_sources(&[("operator.cedar".into(), OPERATOR_POLICY.into())])?,
                "built-in operator policy".to_string(),
            ),
            Policies::Builtin(name) => (
                Authorizer::builtin(name)?,
                format!("built-in policy set {name}"),
            ),
        };
        if !loaded.0.scope_filter_is_exact() {
            return Err(SetupError::DocumentSpecificPolicy);
        }
        Ok(loaded)
    }
}

/// The CLI's policy when no policy folder is given: the operator (whoever runs `vellum` as the
/// data folder's owner, and so can read every file in it anyway) may do everything. Their
/// calls still go through Cedar and into the audit log like any other.
pub const OPERATOR_POLICY: &str = include_str!("../../../policies/operator/operator.cedar");

/// The role the operator's principal carries.
pub const OPERATOR_ROLE: &str = "operator";

/// The Cedar resource account administration (users, other users' keys) is checked against:
/// `admin` on this collection name (uploads refuse collection names with `:`).
pub const ACCOUNTS_RESOURCE: &str = "vellum:accounts";

/// The Cedar resource `GET /metrics` is checked against (`admin` on it), so a monitoring
/// account can be allowed metrics without any access to documents.
pub const METRICS_RESOURCE: &str = "vellum:metrics";

/// Everything the API serves from: the stores, the models, identities and policies.
pub struct Service {
    pub(crate) store: Store,
    pub(crate) embedder: Box<dyn ServiceEmbedder>,
    pub(crate) generator: Option<Box<dyn Generator>>,
    /// As many generations at once as the generator batches (one for engines that do not):
    /// more would only contend for the same cores; the rest wait here, in a queue whose depth
    /// is a metric.
    pub(crate) generation_turn: Turns,
    pub(crate) auth: AuthStore,
    throttle: Throttle,
    authorizer: Authorizer,
    /// What the policies were loaded from (the audit log's `policy.reload` record names it).
    policies_origin: String,
    pub(crate) uploads: UploadSettings,
    /// One ingest at a time: the store has one writer.
    pub(crate) ingest_turn: Mutex<()>,
    pub(crate) metrics: Metrics,
    audit: Option<Arc<AuditLog>>,
    /// Unauthenticated requests per address: the first ones recorded, the rest counted.
    unauthenticated: FailureTally,
    /// Answers and summaries running or waiting, in total and per user.
    pub(crate) generation_limits: crate::limits::ConcurrencyLimits,
    /// Uploads being received or ingested, in total and per user.
    pub(crate) upload_limits: crate::limits::ConcurrencyLimits,
    /// Users' conversations (opened on first use).
    pub(crate) conversations: crate::conversations::ConversationStore,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("policies", &self.policies_origin)
            .finish_non_exhaustive()
    }
}

/// Takes a turn on a queue mutex; a panic in an earlier holder does not poison the queue (the
/// guarded data is `()`).
pub(crate) fn take_turn(turn: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    turn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fixed number of turns (a counting semaphore): [`Turns::take`] waits for a free one.
#[derive(Debug)]
pub(crate) struct Turns {
    capacity: usize,
    taken: Mutex<usize>,
    freed: std::sync::Condvar,
}

/// A turn held until dropped (also on errors and panics).
#[derive(Debug)]
pub(crate) struct Turn<'a>(&'a Turns);

impl Turns {
    pub(crate) fn new(capacity: usize) -> Turns {
        Turns {
            capacity: capacity.max(1),
            taken: Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits for a free turn and takes it.
    pub(crate) fn take(&self) -> Turn<'_> {
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while *taken >= self.capacity {
            taken = self
                .freed
                .wait(taken)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *taken += 1;
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut taken = self
            .0
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *taken = taken.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

pub(crate) fn principal_info(principal: &Principal) -> PrincipalInfo {
    PrincipalInfo::new(
        principal.name.clone(),
        principal.roles.clone(),
        principal.groups.clone(),
    )
}

pub(crate) fn view(record: &DocumentRecord) -> DocumentView {
    DocumentView {
        id: record.id.0.clone(),
        collection: record.collection.clone(),
        title: record.title.clone(),
        file_name: file_name_of(&record.source_path),
        sha256: record.sha256.clone(),
        format: record.format.clone(),
        num_pages: record.num_pages,
        num_chunks: record.num_chunks,
        ingested_at: record.ingested_at.clone(),
        labels: record.labels.clone(),
    }
}

/// The file name a document came from, without the server's folders (which name other
/// matters, user accounts and the upload store's layout).
pub(crate) fn file_name_of(source_path: &str) -> String {
    Path::new(source_path)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Routes a user whose password must change may still use: who they are, sign out, and the
/// password change itself.
fn route_allowed_before_password_change(route: &str) -> bool {
    matches!(
        route,
        "/v1/me" | "/v1/logout" | "/v1/users/{name}/password" | "/web/session"
    )
}

/// Audit actions of the HTTP service besides the log's common ones.
pub mod actions_extra {
    /// A refused credential, a malformed break-glass reason, a password change still due.
    pub const AUTHENTICATE: &str = "authenticate";
    /// `GET /v1/me`.
    pub const ME: &str = "me";
    /// The generic record of a request no service call recorded (bad body, unknown path...).
    pub const REQUEST: &str = "request";
}

/// How deep a search may page (`offset + k`).
pub const MAX_SEARCH_DEPTH: usize = 200;

/// One page of search results with the documents they come from.
struct SearchPage {
    results: Vec<RetrievedChunk>,
    documents: HashMap<String, DocumentRecord>,
    offset: usize,
    has_more: bool,
}

/// A `YYYY-MM-DD` day of a search filter (compared as text with the catalog's RFC 3339 UTC
/// times).
fn search_day(text: Option<&str>, what: &str) -> ServiceResult<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let text = text.trim();
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    let month = text.get(5..7).and_then(|m| m.parse::<u8>().ok());
    let day = text.get(8..10).and_then(|d| d.parse::<u8>().ok());
    if !shaped || !matches!(month, Some(1..=12)) || !matches!(day, Some(1..=31)) {
        return Err(ServiceError::BadRequest(format!(
            "{what} must be a day as YYYY-MM-DD, like 2026-03-31"
        )));
    }
    Ok(Some(text.to_string()))
}

/// Checks a user-supplied query or question.
pub(crate) fn checked_text<'a>(text: &'a str, what: &str) -> ServiceResult<&'a str> {
    let trimmed = text.trim();
    if trimmed.is_empty() || text.chars().count() > 4096 {
        return Err(ServiceError::BadRequest(format!(
            "{what} must be 1-4096 characters of text"
        )));
    }
    Ok(trimmed)
}

impl Service {
    /// Assembles the service; the policies are loaded and validated.
    pub fn new(parts: ServiceParts) -> Result<Service, SetupError> {
        let (authorizer, policies_origin) = parts.policies.load()?;
        let generation_turn = Turns::new(
            parts
                .generator
                .as_ref()
                .map_or(1, |generator| generator.max_concurrent_generations()),
        );
        let service = Service {
            store: parts.store,
            embedder: parts.embedder,
            generator: parts.generator,
            generation_turn,
            auth: parts.auth,
            throttle: Throttle::default(),
            authorizer,
            policies_origin,
            uploads: parts.uploads,
            ingest_turn: Mutex::new(()),
            metrics: Metrics::new(),
            audit: parts.audit,
            unauthenticated: FailureTally::new(TallyConfig::default()),
            generation_limits: crate::limits::ConcurrencyLimits::new(
                crate::limits::GENERATION_PER_USER,
                crate::limits::GENERATION_TOTAL,
                "answers and summaries",
            ),
            upload_limits: crate::limits::ConcurrencyLimits::new(
                crate::limits::UPLOADS_PER_USER,
                crate::limits::UPLOADS_TOTAL,
                "uploads",
            ),
            conversations: Default::default(),
        };
        // The policies in force are part of the record: which rules decided what follows.
        let loaded = AuditEvent::new(actions::POLICY_RELOAD, "ok")
            .resource(service.policies_origin.clone())
            .detail("trigger", "start")
            .detail("policies", service.authorizer.policy_ids().join(","));
        service
            .record(loaded)
            .map_err(|err| SetupError::Audit(err.to_string()))?;
        Ok(service)
    }

    /// The identity store (for the first-start admin).
    pub fn auth(&self) -> &AuthStore {
        &self.auth
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Policy ids in force (for the start-up banner and the audit log).
    pub fn policy_ids(&self) -> Vec<String> {
        self.authorizer.policy_ids()
    }

    pub(crate) fn query_embedder(&self) -> &dyn QueryEmbedder {
        self.embedder.as_ref()
    }

    pub(crate) fn passage_embedder(&self) -> &dyn PassageEmbedder {
        self.embedder.as_ref()
    }

    /// A record of `action` by `caller` (outcome set when it is written).
    pub(crate) fn audit_event(&self, caller: &Caller, action: &str) -> AuditEvent {
        // Every caller event is written (or its failure fails the request with 503), so the
        // request has its record.
        if let Some(mark) = &caller.audit_mark {
            mark.mark_recorded();
        }
        let event = AuditEvent::new(action, "ok")
            .principal(caller.principal.name.clone())
            .address(caller.address.clone());
        match &caller.break_glass {
            Some(reason) => event.detail("break_glass", reason.clone()),
            None => event,
        }
    }

    /// A query or other sensitive text as the audit log keeps it (HMAC, plain only if the
    /// deployment asked for plain queries).
    pub(crate) fn sensitive(&self, text: &str) -> Option<Sensitive> {
        self.audit.as_ref().map(|log| log.sensitive(text))
    }

    /// Writes an audit record. If it cannot be written and flushed, the request fails closed:
    /// 503, and nothing it produced is returned.
    pub(crate) fn record(&self, event: AuditEvent) -> ServiceResult<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        log.append(event).map(|_| ()).map_err(|err| {
            tracing::error!(error = %err, "audit record not written: failing closed");
            ServiceError::Unavailable(
                "the audit log cannot be written, so nothing is served; an administrator must \
                 check the server log"
                    .into(),
            )
        })
    }

    /// Records `result` with its outcome, then returns it (or 503 if the record failed).
    pub(crate) fn audited<T>(
        &self,
        mut event: AuditEvent,
        result: ServiceResult<T>,
    ) -> ServiceResult<T> {
        event.outcome = outcome_of(&result).to_string();
        if let Err(err) = &result {
            event.detail.insert("error".into(), err.to_string());
        }
        self.record(event)?;
        result
    }

    /// Checks a password, throttled per account and per source address. A failed login is
    /// recorded without a principal; the typed name is kept only as an HMAC (people type
    /// passwords into name fields).
    pub fn login(&self, request: &LoginRequest, address: &str) -> ServiceResult<LoginResponse> {
        let result = self.login_unaudited(request, address);
        let mut event = AuditEvent::new(actions::LOGIN, "ok").address(address.to_string());
        match &result {
            Ok(response) => event = event.principal(response.user.name.clone()),
            Err(_) => {
                if let Some(name) = self.sensitive(&request.user) {
                    event = event.query(name);
                }
                // A failed login is unauthenticated noise an attacker can repeat at will.
                return self.audited_unauthenticated(event, result);
            }
        }
        self.audited(event, result)
    }

    /// Records an unauthenticated request's outcome through the per-address tally: the first
    /// ones of a window one by one, then a count (see [`FailureTally`]).
    pub(crate) fn audited_unauthenticated<T>(
        &self,
        event: AuditEvent,
        result: ServiceResult<T>,
    ) -> ServiceResult<T> {
        let address = event.address.clone().unwrap_or_default();
        let admission = self.unauthenticated.admit(&address);
        for summary in admission.summaries {
            self.record(summary)?;
        }
        if admission.write {
            return self.audited(event, result);
        }
        result
    }

    /// Writes the summaries of unauthenticated requests left out of the log so far (at
    /// shutdown: nothing counted is lost).
    pub fn flush_unauthenticated(&self) -> ServiceResult<()> {
        for summary in self.unauthenticated.flush() {
            self.record(summary)?;
        }
        Ok(())
    }

    /// The generic record of a request no service call recorded (a malformed body, an unknown
    /// path, a refused method, health probes). Unauthenticated ones go through the tally.
    pub fn record_request(
        &self,
        principal: Option<String>,
        address: &str,
        route: &str,
        method: &str,
        status: u16,
    ) -> ServiceResult<()> {
        let outcome = match status {
            200..=399 => "ok",
            401 | 403 => "denied",
            404 => "not_found",
            429 => "throttled",
            400..=499 => "rejected",
            _ => "error",
        };
        let mut event = AuditEvent::new(actions_extra::REQUEST, outcome)
            .address(address.to_string())
            .resource(route.to_string())
            .detail("method", method.to_string())
            .detail("status", status.to_string());
        match principal {
            Some(principal) => {
                event = event.principal(principal);
                self.record(event)
            }
            None => self.audited_unauthenticated(event, Ok(())),
        }
    }

    /// A password check with throttling (also for `current_password` on a password change).
    /// The attempt is reserved, counted as a failure, before argon2 runs, and given back only
    /// if the password was right: checking first and counting afterwards let a burst of
    /// concurrent guesses all pass the check.
    pub(crate) fn login_unaudited(
        &self,
        request: &LoginRequest,
        address: &str,
    ) -> ServiceResult<LoginResponse> {
        self.throttle.reserve(&request.user, address)?;
        match self.auth.login(&request.user, &request.password) {
            Ok(session) => {
                self.throttle.release(&request.user, address);
                Ok(LoginResponse {
                    token: session.token,
                    expires_at: session.expires_at,
                    user: UserView::from(&session.principal),
                })
            }
            // The reservation stands as the failure.
            Err(vellum_auth::Error::Unauthenticated) => Err(ServiceError::Unauthenticated),
            Err(other) => Err(other.into()),
        }
    }

    /// Ends a session (a key is revoked with `DELETE /v1/keys/{id}` or `vellum key revoke`).
    pub fn logout(&self, caller: &Caller, bearer: &str) -> ServiceResult<()> {
        let event = self.audit_event(caller, actions::LOGOUT);
        let result = self.auth.logout(bearer).map_err(ServiceError::from);
        self.audited(event, result)
    }

    /// Resolves a bearer token or API key; a refusal is recorded (with the route asked for).
    pub fn authenticate(
        &self,
        bearer: Option<&str>,
        address: &str,
        route: &str,
    ) -> ServiceResult<Caller> {
        let result = match bearer {
            Some(bearer) => self.auth.authenticate(bearer).map_err(ServiceError::from),
            None => Err(ServiceError::Unauthenticated),
        };
        match result {
            Ok(principal) => {
                let caller = Caller::new(principal, address);
                if !caller.principal.must_change_password
                    || route_allowed_before_password_change(route)
                {
                    return Ok(caller);
                }
                let event = self
                    .audit_event(&caller, actions_extra::AUTHENTICATE)
                    .resource(route.to_string());
                self.audited(event, Err(ServiceError::PasswordChangeRequired))
            }
            Err(err) => {
                let event = AuditEvent::new(actions_extra::AUTHENTICATE, "denied")
                    .address(address.to_string())
                    .resource(route.to_string());
                self.audited_unauthenticated(event, Err(err))
            }
        }
    }

    /// Adds emergency ("break-glass") access with the user's reason (the raw header value);
    /// a malformed reason is refused, and the refusal is recorded like any other.
    pub fn invoke_break_glass(&self, mut caller: Caller, header: &[u8]) -> ServiceResult<Caller> {
        let reason = std::str::from_utf8(header)
            .map(str::trim)
            .unwrap_or_default();
        if reason.is_empty() || reason.chars().count() > 500 {
            let event = self
                .audit_event(&caller, actions_extra::AUTHENTICATE)
                .detail("break_glass", "malformed");
            return self.audited(
                event,
                Err(ServiceError::BadRequest(
                    "X-Vellum-Break-Glass needs the reason for emergency access (1-500 \
                     characters of UTF-8 text)"
                        .into(),
                )),
            );
        }
        caller.break_glass = Some(reason.to_string());
        Ok(caller)
    }

    /// Whether emergency ("break-glass") access would let the caller read or search more than
    /// they can now: Cedar is asked for the caller's scopes with and without it. The web app
    /// offers the reason prompt only then.
    pub fn break_glass_offered(&self, caller: &Caller) -> ServiceResult<bool> {
        let mut emergency = caller.clone();
        emergency.break_glass = Some("probe: would emergency access open anything?".into());
        for action in [Action::Read, Action::Search] {
            let normal = self.read_scope(caller, action, None)?;
            let wider = self.read_scope(&emergency, action, None)?;
            if wider.scopes().len() > normal.scopes().len() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Who the caller is (recorded like every request; with break-glass, the reason too).
    pub fn me(&self, caller: &Caller) -> ServiceResult<UserView> {
        let event = self.audit_event(caller, actions_extra::ME);
        self.audited(event, Ok(UserView::from(&caller.principal)))
    }

    pub(crate) fn audit_log(&self) -> Option<&AuditLog> {
        self.audit.as_deref()
    }

    pub(crate) fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Whether `principal` may do `action` to `resource`.
    pub(crate) fn allows(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> bool {
        self.authorizer
            .is_allowed(
                &principal_info(principal),
                action,
                resource,
                &RequestContext::default(),
            )
            .allowed
    }

    /// Cedar's decision (with the deciding policies) on `action` to one document.
    pub(crate) fn decide(
        &self,
        caller: &Caller,
        action: Action,
        record: &DocumentRecord,
    ) -> Decision {
        self.authorizer.is_allowed(
            &principal_info(&caller.principal),
            action,
            &Resource::document(
                record.id.0.clone(),
                record.collection.clone(),
                record.labels.clone(),
            ),
            &caller.context(),
        )
    }

    pub(crate) fn may(&self, caller: &Caller, action: Action, record: &DocumentRecord) -> bool {
        self.decide(caller, action, record).allowed
    }

    /// The proof the store's searches and reads require for `action`: the (collection, labels)
    /// scopes with ready documents that Cedar permits, narrowed to `wanted` collections if
    /// given. Asking for a collection one may not use gives no results, not an error that
    /// would confirm it exists.
    pub(crate) fn read_scope(
        &self,
        caller: &Caller,
        action: Action,
        wanted: Option<&[String]>,
    ) -> ServiceResult<ReadScope> {
        let candidates: Vec<Scope> = self
            .store
            .list_scopes()?
            .into_iter()
            .filter(|scope| wanted.is_none_or(|wanted| wanted.contains(&scope.collection)))
            .map(|scope| Scope::new(scope.collection, scope.labels))
            .collect();
        Ok(self.authorizer.read_scope(
            &principal_info(&caller.principal),
            action,
            &candidates,
            &caller.context(),
        ))
    }

    /// Hybrid (or BM25 / vector) search over what the caller may search. The audit record
    /// holds the query as an HMAC and every returned chunk with the SHA-256 of its text.
    pub fn search(
        &self,
        caller: &Caller,
        request: &SearchRequest,
    ) -> ServiceResult<SearchResponse> {
        let mode: SearchMode = request.mode.unwrap_or_default().into();
        let page = self.search_paged(caller, request)?;
        let results = page
            .results
            .into_iter()
            .map(|retrieved| {
                let document = page.documents.get(&retrieved.hit.chunk.document_id.0);
                SearchHit {
                    format: document.map(|d| d.format.clone()).unwrap_or_default(),
                    ingested_at: document.map(|d| d.ingested_at.clone()).unwrap_or_default(),
                    document_id: retrieved.hit.chunk.document_id.0,
                    collection: retrieved.hit.chunk.collection,
                    title: retrieved.hit.title,
                    page: retrieved.hit.chunk.page,
                    chunk_id: retrieved.hit.chunk.chunk_id.0,
                    text: retrieved.hit.chunk.text,
                    score: retrieved.score,
                }
            })
            .collect();
        Ok(SearchResponse {
            mode: mode.as_str().to_string(),
            results,
            offset: page.offset,
            has_more: page.has_more,
        })
    }

    /// [`Self::search`] with each engine's ranks and the documents' source paths (the CLI
    /// shows them); authorized and audited the same way.
    pub fn search_detailed(
        &self,
        caller: &Caller,
        request: &SearchRequest,
    ) -> ServiceResult<Vec<RetrievedChunk>> {
        self.search_paged(caller, request).map(|page| page.results)
    }

    fn search_paged(&self, caller: &Caller, request: &SearchRequest) -> ServiceResult<SearchPage> {
        let mut event = self.audit_event(caller, actions::SEARCH);
        if let Some(query) = self.sensitive(&request.query) {
            event = event.query(query);
        }
        let result = self.search_unaudited(caller, request, &mut event);
        if let Ok(page) = &result {
            event = event.reads(
                page.results
                    .iter()
                    .map(|retrieved| ChunkRead {
                        chunk_id: retrieved.hit.chunk.chunk_id.0.clone(),
                        document_id: retrieved.hit.chunk.document_id.0.clone(),
                        sha256: content_sha256(&retrieved.hit.chunk.text),
                    })
                    .collect(),
            );
        }
        self.audited(event, result)
    }

    fn search_unaudited(
        &self,
        caller: &Caller,
        request: &SearchRequest,
        event: &mut AuditEvent,
    ) -> ServiceResult<SearchPage> {
        let query = checked_text(&request.query, "query")?;
        let mode: SearchMode = request.mode.unwrap_or_default().into();
        let k = request.k.unwrap_or(10);
        if !(1..=100).contains(&k) {
            return Err(ServiceError::BadRequest("k must be 1-100".into()));
        }
        let offset = request.offset.unwrap_or(0);
        if offset + k > MAX_SEARCH_DEPTH {
            return Err(ServiceError::BadRequest(format!(
                "offset + k must be at most {MAX_SEARCH_DEPTH}: narrow the search instead of \
                 paging further"
            )));
        }
        let after = search_day(request.ingested_after.as_deref(), "ingested_after")?;
        let before = search_day(request.ingested_before.as_deref(), "ingested_before")?;
        let mut scope = self.read_scope(caller, Action::Search, request.collections.as_deref())?;
        if let Some(labels) = &request.labels {
            // Inside both engines, as the scope is: only scopes that carry every label.
            let labels = vellum_store::normalize_labels(labels)
                .map_err(|err| ServiceError::BadRequest(err.to_string()))?;
            scope = scope.with_labels(&labels);
            event.detail.insert("labels".into(), labels.join(","));
        }
        let formats: Option<Vec<String>> = request.formats.as_ref().map(|formats| {
            formats
                .iter()
                .map(|format| format.trim().to_ascii_lowercase())
                .collect()
        });
        if let Some(formats) = &formats {
            event.detail.insert("formats".into(), formats.join(","));
        }
        event.detail.insert("mode".into(), mode.as_str().into());
        event.detail.insert("k".into(), k.to_string());
        if offset > 0 {
            event.detail.insert("offset".into(), offset.to_string());
        }
        event
            .detail
            .insert("permitted_scopes".into(), scope.scopes().len().to_string());
        // One more than the page tells whether there is a next page; a date or format filter
        // drops results after ranking (the catalog has those, the engines do not), so it looks
        // deeper.
        let wanted = offset + k + 1;
        let depth = if after.is_some() || before.is_some() || formats.is_some() {
            (wanted * 4).min(2 * MAX_SEARCH_DEPTH)
        } else {
            wanted
        };
        let options = RetrievalOptions {
            mode,
            k: depth,
            num_candidates: (depth * 5).max(vellum_rag::FUSION_DEPTH),
            ..RetrievalOptions::default()
        };
        let retriever = Retriever::new(&self.store, self.query_embedder(), &scope);
        let mut documents: HashMap<String, DocumentRecord> = HashMap::new();
        let mut kept = Vec::new();
        for retrieved in retriever.search(query, &options)? {
            let id = retrieved.hit.chunk.document_id.clone();
            if !documents.contains_key(&id.0) {
                if let Some(record) = self.store.get_document(&id)? {
                    documents.insert(id.0.clone(), record);
                }
            }
            let day = documents
                .get(&id.0)
                .map(|record| record.ingested_at.get(..10).unwrap_or_default())
                .unwrap_or_default();
            let format_ok = formats.as_ref().is_none_or(|formats| {
                documents
                    .get(&id.0)
                    .is_some_and(|record| formats.contains(&record.format))
            });
            let in_range = after.as_deref().is_none_or(|after| day >= after)
                && before.as_deref().is_none_or(|before| day <= before)
                && format_ok;
            if in_range {
                kept.push(retrieved);
            }
        }
        let has_more = kept.len() > offset + k;
        let results: Vec<RetrievedChunk> = kept.into_iter().skip(offset).take(k).collect();
        documents.retain(|id, _| {
            results
                .iter()
                .any(|retrieved| retrieved.hit.chunk.document_id.0 == *id)
        });
        Ok(SearchPage {
            results,
            documents,
            offset,
            has_more,
        })
    }

    /// The documents `principal` may read, optionally of some collections.
    fn readable_documents(
        &self,
        caller: &Caller,
        collections: Option<&[String]>,
    ) -> ServiceResult<Vec<DocumentRecord>> {
        // The scope filter runs in the catalog query; the per-document check on top costs
        // little and covers a document whose scope changed between the two.
        let scope = self.read_scope(caller, Action::Read, collections)?;
        Ok(self
            .store
            .list_documents(&scope, &SearchFilter::default())?
            .into_iter()
            .filter(|record| self.may(caller, Action::Read, record))
            .collect())
    }

    /// Documents the caller may read, optionally of one collection.
    pub fn list_documents(
        &self,
        caller: &Caller,
        collection: Option<&str>,
    ) -> ServiceResult<Vec<DocumentView>> {
        let wanted = collection.map(|name| vec![name.to_string()]);
        Ok(self
            .list_document_records(caller, wanted.as_deref())?
            .iter()
            .map(view)
            .collect())
    }

    /// [`Self::list_documents`] with the catalog's whole records (source paths: the CLI's
    /// operator sees where files came from), for any number of collections.
    pub fn list_document_records(
        &self,
        caller: &Caller,
        collections: Option<&[String]>,
    ) -> ServiceResult<Vec<DocumentRecord>> {
        let mut event = self.audit_event(caller, "document.list");
        if let Some(collections) = collections {
            event = event.resource(collections.join(","));
        }
        let result = self.readable_documents(caller, collections);
        if let Ok(documents) = &result {
            event = event.detail("documents", documents.len().to_string());
        }
        self.audited(event, result)
    }

    /// Collections with at least one document the caller may read.
    pub fn list_collections(&self, caller: &Caller) -> ServiceResult<Vec<CollectionView>> {
        let event = self.audit_event(caller, "collection.list");
        let result = self.readable_documents(caller, None).map(|documents| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for document in documents {
                *counts.entry(document.collection).or_default() += 1;
            }
            counts
                .into_iter()
                .map(|(name, num_documents)| CollectionView {
                    name,
                    num_documents,
                })
                .collect()
        });
        self.audited(event, result)
    }

    /// One document's catalog entry: [`ServiceError::NotFound`] both when it does not exist
    /// and when the caller may not read it.
    pub fn get_document(&self, caller: &Caller, id: &str) -> ServiceResult<DocumentView> {
        let mut event = self.audit_event(caller, actions::DOCUMENT_READ);
        let result = self
            .readable(caller, id, &mut event)
            .map(|record| view(&record));
        self.audited(event, result)
    }

    /// The ready document `id` if `principal` may read it; a missing and an unreadable
    /// document give the same [`ServiceError::NotFound`]. The event gets the resource and the
    /// read decision.
    pub(crate) fn readable(
        &self,
        caller: &Caller,
        id: &str,
        event: &mut AuditEvent,
    ) -> ServiceResult<DocumentRecord> {
        event.resource = Some(id.to_string());
        let record = self
            .store
            .get_document(&DocumentId(id.to_string()))?
            .filter(|record| record.state == vellum_store::DocumentState::Ready)
            .ok_or(ServiceError::NotFound)?;
        let decision = self.decide(caller, Action::Read, &record);
        event.decision = Some(audit_decision(&decision));
        if decision.allowed {
            Ok(record)
        } else {
            Err(ServiceError::NotFound)
        }
    }

    /// Deletes a document from every store. Not readable: not found; readable but not
    /// deletable: forbidden.
    pub fn delete_document(&self, caller: &Caller, id: &str) -> ServiceResult<()> {
        let mut event = self.audit_event(caller, actions::DOCUMENT_DELETE);
        let result = self.delete_unaudited(caller, id, &mut event);
        self.audited(event, result)
    }

    fn delete_unaudited(
        &self,
        caller: &Caller,
        id: &str,
        event: &mut AuditEvent,
    ) -> ServiceResult<()> {
        let record = self.readable(caller, id, event)?;
        let decision = self.decide(caller, Action::Delete, &record);
        event.decision = Some(audit_decision(&decision));
        if !decision.allowed {
            return Err(ServiceError::Forbidden);
        }
        let _turn = take_turn(&self.ingest_turn);
        self.store.delete_document(&record.id)?;
        Ok(())
    }

    /// Whether `caller` may read the metrics (`admin` on [`METRICS_RESOURCE`]); a refusal is
    /// recorded.
    pub fn may_read_metrics(&self, caller: &Caller) -> ServiceResult<()> {
        let allowed = self.allows(
            &caller.principal,
            Action::Admin,
            &Resource::collection(METRICS_RESOURCE),
        );
        let event = self
            .audit_event(caller, "metrics.read")
            .resource(METRICS_RESOURCE.to_string());
        self.audited(
            event,
            if allowed {
                Ok(())
            } else {
                Err(ServiceError::Forbidden)
            },
        )
    }

    /// Whether the service can answer requests: stores, models, policies, upload folder.
    pub fn readiness(&self) -> ReadinessView {
        let mut checks = Vec::new();
        let mut check = |name: &str, result: Result<String, String>| {
            let (ok, detail) = match result {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            checks.push(CheckView {
                name: name.to_string(),
                ok,
                detail,
            });
        };
        check(
            "store",
            self.store
                .stats()
                // Counts stay out: readiness is answered without credentials.
                .map(|_| "readable".to_string())
                .map_err(|err| {
                    tracing::error!(error = %err, "readiness: store");
                    "the store cannot be read; see the server log".to_string()
                }),
        );
        check(
            "generator",
            Ok(match &self.generator {
                // Which model runs is for signed-in users (receipts), not anonymous probes.
                Some(_) => "loaded".to_string(),
                None => "not configured: ask and summarize answer 503".to_string(),
            }),
        );
        check(
            "policies",
            Ok(format!("{} policies", self.authorizer.policy_ids().len())),
        );
        check("uploads", writable(&self.uploads.dir.join(".partial")));
        let ready = checks.iter().all(|check| check.ok);
        ReadinessView { ready, checks }
    }
}

/// Creates and removes a probe file in `dir`.
fn writable(dir: &Path) -> Result<String, String> {
    let attempt = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let probe = tempfile::NamedTempFile::new_in(dir)?;
        probe.close()
    };
    attempt().map(|()| "writable".to_string()).map_err(|err| {
        tracing::error!(error = %err, dir = %dir.display(), "readiness: upload folder");
        "the upload folder is not writable; see the server log".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_failures_reach_callers_by_their_kind() {
        // A locked index (another writer) is 503, retry later; not a 500.
        let locked = ServiceError::from(vellum_store::Error::FulltextLocked {
            path: PathBuf::from("/data/fulltext"),
        });
        assert_eq!(locked.kind(), ErrorKind::Unavailable);
        let missing = ServiceError::from(vellum_rag::Error::DocumentNotFound("d1".into()));
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let invalid = ServiceError::from(vellum_rag::Error::InvalidInput("empty".into()));
        assert_eq!(invalid.kind(), ErrorKind::Invalid);
        let throttled = ServiceError::from(vellum_auth::Error::Throttled {
            retry_after_seconds: 30,
        });
        assert!(matches!(throttled, ServiceError::Throttled(30)));
        let engine = ServiceError::from(vellum_rag::Error::Model(vellum_models::Error::Remote {
            url: "https://engine.internal:8000/v1".into(),
            reason: "connection refused".into(),
        }));
        assert_eq!(engine.kind(), ErrorKind::Unavailable);
        // What a client reads names no internal host.
        assert!(!engine.to_string().contains("engine.internal"), "{engine}");
    }
}
