//! The one front door. Every interface (the HTTPS API, the CLI, the web pages through the API,
//! and the OpenAI-compatible API) calls this layer, which authenticates, asks Cedar and writes
//! the audit record; the interfaces only translate (HTTP, command lines) to and from its types.
//!
//! Access to document text needs a [`vellum_authz::ReadScope`], which only the permission
//! check constructs and which the store's search and read functions require: a front door that
//! forgets the check does not compile.
//!
//! Layout: [`service`] (callers, authentication, search, documents, the audit duty),
//! `answers` (ask, summarize), `uploads`, `accounts` (users, keys), `limits` (concurrency),
//! [`metrics`], [`tally`] (audit bookkeeping), [`types`] (request and response shapes).

mod accounts;
pub mod admin;
mod answers;
pub mod collection;
pub mod conversations;
mod documents;
mod limits;
pub mod local;
pub mod metrics;
pub mod openai;
pub mod service;
pub mod tally;
pub mod types;
mod uploads;

pub use answers::{summary_view, AskEvent};
pub use collection::CollectionName;
pub use documents::DocumentFile;
pub use service::{
    Caller, ErrorKind, Policies, Service, ServiceEmbedder, ServiceError, ServiceParts, SetupError,
    UploadSettings,
};
pub use uploads::{IncomingFile, UploadFields};
/// What the interfaces need of the layers below, so that they depend on this crate alone.
pub use vellum_auth::{DEFAULT_KEY_DAYS, MAX_KEY_DAYS};
pub use vellum_models::CancelFlag;
