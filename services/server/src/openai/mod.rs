//! The OpenAI-compatible API under `/openai/v1` (a client's `base_url`): `GET models`,
//! `POST chat/completions` (streamed or not) and `POST embeddings`, for the tools people
//! already run (Open WebUI, LibreChat, editor plugins, scripts on the `openai` client).
//!
//! An edge like `routes.rs`: the same bearer credentials (the `Authenticated` extractor), and
//! every call goes to `vellum_app::Service` (`ask_in_collections`, `chat`, `embed`, `models`),
//! which authorizes with Cedar and writes the audit records; nothing here decides access. This
//! module only translates OpenAI's shapes, and maps failures to OpenAI's error body in one
//! place ([`OpenAiError::parts`]). See docs/openai-api.md.
//!
//! Layout: `error` (OpenAI's error shape), `models`, `chat` (requests, grounded and plain
//! answers, annotations, streaming), `embeddings`; this file has the routes and what they share.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::routes::Authenticated;
use vellum_app::openai::{ChatMessage, GenerationParams, ModelCatalog};
use vellum_app::service::{Caller, Service, ServiceError};
use vellum_app::types::{AskRequest, HistoryTurn, SourceView};
use vellum_app::{AskEvent, CancelFlag, ErrorKind};

type Shared = web::Data<Service>;

mod chat;
mod embeddings;
mod error;
mod models;

use self::chat::chat_completions;
use self::embeddings::embeddings;
pub use self::error::OpenAiError;
use self::models::{get_model, list_models};

/// Where the API lives: a client's `base_url` is `https://HOST:PORT/openai/v1`.
pub const PREFIX: &str = "/openai/v1";
/// Grounded answers from every collection the caller may ask about.
pub const ALL_MODEL: &str = "vellum:all";
/// Grounded answers from one collection: `vellum:<collection>`.
pub const COLLECTION_MODEL_PREFIX: &str = "vellum:";
/// Vellum's embedder, for `POST embeddings`.
pub const EMBEDDING_MODEL: &str = "vellum-embed";

/// Registers the routes under [`PREFIX`]; unknown paths and methods there answer in OpenAI's
/// error shape too.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope(PREFIX)
            .service(resource("/models", "GET").route(web::get().to(list_models)))
            .service(resource("/models/{model}", "GET").route(web::get().to(get_model)))
            .service(resource("/chat/completions", "POST").route(web::post().to(chat_completions)))
            .service(resource("/embeddings", "POST").route(web::post().to(embeddings)))
            .default_service(web::to(|request: HttpRequest| async move {
                OpenAiError::unknown_url(&request).error_response()
            })),
    );
}

fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |request: HttpRequest| async move {
        let mut response = OpenAiError::method_not_allowed(&request, allow).error_response();
        if let Ok(value) = header::HeaderValue::from_str(allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }))
}

/// The caller, or the authentication failure in OpenAI's shape (it was recorded).
fn caller(authenticated: Result<Authenticated, ApiError>) -> Result<Caller, OpenAiError> {
    authenticated
        .map(|authenticated| authenticated.0)
        .map_err(|err| err.0.into())
}

/// The JSON body, or a 400/413 in OpenAI's shape.
fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, actix_web::Error>,
) -> Result<T, OpenAiError> {
    let bytes = body.map_err(|err| {
        let status = err.as_response_error().status_code();
        OpenAiError::from(if status == StatusCode::PAYLOAD_TOO_LARGE {
            ServiceError::TooLarge("the request body is larger than 1 MiB".into())
        } else {
            ServiceError::BadRequest(format!("reading the request body: {err}"))
        })
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ServiceError::BadRequest(format!("bad JSON body: {err}")).into())
}

/// Runs a service call on the blocking pool.
async fn blocking<T, F>(call: F) -> Result<T, OpenAiError>
where
    F: FnOnce() -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    web::block(call)
        .await
        .map_err(|err| OpenAiError::from(ServiceError::Internal(format!("blocking task: {err}"))))?
        .map_err(OpenAiError::from)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A completion id: `chatcmpl-` and 24 hex digits, unique per process and time.
fn completion_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!("{nanos}/{count}/{}", std::process::id()));
    format!("chatcmpl-{}", &hex::encode(digest)[..24])
}
