//! HTTP → service call → JSON. Each handler extracts the caller, hands the work to the service
//! on a blocking thread (the stores block on I/O, the models on the CPU), and returns its
//! answer. The `#[utoipa::path]` annotations are the OpenAPI description of these handlers.

use std::convert::Infallible;
use std::future::{ready, Ready};

use actix_multipart::Multipart;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};

use crate::api::{
    AccountView, AnswerView, AskRequest, AskStreamEvent, ChunkView, CollectionView, CreatedKeyView,
    DisabledRequest, DocumentView, ErrorBody, HealthView, KeyView, LoginRequest, LoginResponse,
    NewKeyRequest, NewUserRequest, PasswordRequest, ReadinessView, SearchRequest, SearchResponse,
    SourcesEvent, SummarizeRequest, SummaryView, TokenEvent, UploadForm, UploadResponse, UserView,
};
use crate::error::ApiError;
use crate::gate::TrustedProxies;
use vellum_app::admin::{AuditPage, AuditQuery, AuditVerifyView, QuarantineView, StatusView};
use vellum_app::conversations::{
    ConversationAsk, ConversationSummary, ConversationView, ExportFormat, NewConversation,
};
use vellum_app::service::{Caller, Service, ServiceError};
use vellum_app::AskEvent;
use vellum_app::{IncomingFile, UploadFields};

type Shared = web::Data<Service>;

/// The authenticated caller (`Authorization: Bearer vs_…` or `vk_…`) and its address.
pub struct Authenticated(pub Caller);

fn bearer(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The client's IP address: the TCP peer's, or, only when the peer is one of the configured
/// `trusted_proxies`, the address that proxy forwarded (a client could write anything in
/// `X-Forwarded-For` itself).
pub(crate) fn client_address(request: &HttpRequest) -> String {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let peer = request.peer_addr().map(|addr| addr.ip());
    match request.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => {
            proxies.client_address(peer, header("x-forwarded-for"), header("forwarded"))
        }
        None => peer.map(|ip| ip.to_string()).unwrap_or_default(),
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Authenticated, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match request.app_data::<Shared>() {
            Some(service) => {
                let route = request
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string());
                let mark = crate::audit_mark(request);
                // A browser's session rides in its cookie (checked for cross-site use by
                // `webapp::refuse_cross_site`); every other client sends a bearer token.
                let credential = bearer(request)
                    .map(str::to_string)
                    .or_else(|| crate::webapp::session_cookie(request));
                let authenticated =
                    service.authenticate(credential.as_deref(), &client_address(request), &route);
                match authenticated {
                    Ok(caller) => {
                        let caller = caller.with_audit_mark(mark);
                        match request.headers().get(BREAK_GLASS_HEADER) {
                            Some(value) => service.invoke_break_glass(caller, value.as_bytes()),
                            None => Ok(caller),
                        }
                        .map(Authenticated)
                    }
                    Err(err) => {
                        // The refusal was recorded (or counted, for a flood).
                        if let Some(mark) = mark {
                            mark.mark_recorded();
                        }
                        Err(err)
                    }
                }
            }
            None => Err(ServiceError::Internal(
                "service missing from app data".into(),
            )),
        };
        ready(result.map_err(ApiError))
    }
}

/// The header by which a user invokes emergency access, with their reason.
pub const BREAK_GLASS_HEADER: &str = "x-vellum-break-glass";

/// Runs a service call on the blocking pool.
pub(crate) async fn blocking<T, F>(call: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    web::block(call)
        .await
        .map_err(|err| ApiError(ServiceError::Internal(format!("blocking task: {err}"))))?
        .map_err(ApiError)
}

/// A path with its methods; any other method gets 405 with an `Allow` header (instead of the
/// app's 404 for unknown paths).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow))
            .json(ErrorBody {
                code: "method_not_allowed".into(),
                message: format!("this path answers {allow}"),
            })
    }))
}

/// Registers every route: the API under `/v1`, metrics at `/metrics`, the OpenAI-compatible
/// API under `/openai/v1`.
pub fn configure(config: &mut web::ServiceConfig) {
    crate::openai::configure(config);
    config
        .service(resource("/metrics", "GET").route(web::get().to(metrics)))
        .service(
            web::scope("/v1")
                .service(resource("/openapi.json", "GET").route(web::get().to(openapi)))
                .service(resource("/health", "GET").route(web::get().to(health)))
                .service(resource("/ready", "GET").route(web::get().to(readiness)))
                .service(resource("/login", "POST").route(web::post().to(login)))
                .service(resource("/logout", "POST").route(web::post().to(logout)))
                .service(resource("/me", "GET").route(web::get().to(me)))
                .service(resource("/search", "POST").route(web::post().to(search)))
                .service(resource("/ask", "POST").route(web::post().to(ask)))
                .service(resource("/summarize", "POST").route(web::post().to(summarize)))
                .service(
                    resource("/conversations", "GET, POST")
                        .route(web::get().to(list_conversations))
                        .route(web::post().to(create_conversation)),
                )
                .service(
                    resource("/conversations/{id}", "GET, DELETE")
                        .route(web::get().to(get_conversation))
                        .route(web::delete().to(delete_conversation)),
                )
                .service(
                    resource("/conversations/{id}/export", "GET")
                        .route(web::get().to(export_conversation)),
                )
                .service(
                    resource("/conversations/{id}/ask", "POST")
                        .route(web::post().to(ask_in_conversation)),
                )
                .service(resource("/collections", "GET").route(web::get().to(collections)))
                .service(
                    resource("/documents", "GET, POST")
                        .route(web::get().to(list_documents))
                        .route(web::post().to(upload)),
                )
                .service(
                    resource("/documents/{id}", "GET, DELETE")
                        .route(web::get().to(get_document))
                        .route(web::delete().to(delete_document)),
                )
                .service(
                    resource("/documents/{id}/file", "GET").route(web::get().to(document_file)),
                )
                .service(
                    resource("/documents/{id}/chunks", "GET").route(web::get().to(document_chunks)),
                )
                .service(
                    resource("/users", "GET, POST")
                        .route(web::get().to(list_users))
                        .route(web::post().to(add_user)),
                )
                .service(
                    resource("/users/{name}/disabled", "PUT")
                        .route(web::put().to(set_user_disabled)),
                )
                .service(
                    resource("/users/{name}/password", "PUT")
                        .route(web::put().to(set_user_password)),
                )
                .service(
                    resource("/keys", "GET, POST")
                        .route(web::get().to(list_keys))
                        .route(web::post().to(create_key)),
                )
                .service(resource("/keys/{id}", "DELETE").route(web::delete().to(revoke_key)))
                .service(resource("/audit", "GET").route(web::get().to(audit_records)))
                .service(resource("/audit/verify", "GET").route(web::get().to(audit_verify)))
                .service(resource("/quarantine", "GET").route(web::get().to(quarantine)))
                .service(resource("/status", "GET").route(web::get().to(status))),
        );
}

/// The OpenAPI 3.1 description of this API, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vellum",
        description = "Private document search and summarization. Every route except health, \
                       readiness, login and this description needs `Authorization: Bearer` \
                       with a session token (from /v1/login) or an API key."
    ),
    paths(
        health, readiness, login, logout, me, search, ask, summarize, list_conversations,
        create_conversation, get_conversation, delete_conversation, ask_in_conversation,
        export_conversation,
        collections,
        list_documents, upload, get_document, document_file, document_chunks, delete_document, list_users, add_user,
        set_user_disabled, set_user_password, list_keys, create_key, revoke_key, metrics,
        audit_records, audit_verify, quarantine, status
    ),
    components(schemas(SourcesEvent, TokenEvent, AnswerView, ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi() -> HttpResponse {
    match ApiDoc::openapi().to_json() {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(err) => {
            ApiError(ServiceError::Internal(format!("OpenAPI to JSON: {err}"))).error_response()
        }
    }
}

/// The process is up.
#[utoipa::path(get, path = "/v1/health", tag = "operations", security(()),
    responses((status = 200, body = HealthView)))]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthView {
        status: "ok".into(),
    })
}

/// Whether requests can be served: store, models, policies, upload folder.
#[utoipa::path(get, path = "/v1/ready", tag = "operations", security(()),
    responses((status = 200, body = ReadinessView), (status = 503, body = ReadinessView)))]
async fn readiness(service: Shared) -> Result<HttpResponse, ApiError> {
    let view = blocking(move || Ok(service.readiness())).await?;
    Ok(if view.ready {
        HttpResponse::Ok().json(view)
    } else {
        HttpResponse::ServiceUnavailable().json(view)
    })
}

/// Prometheus metrics (OpenMetrics text). Needs `admin` on `Collection::"vellum:metrics"`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, content_type = "application/openmetrics-text", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn metrics(service: Shared, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let checker = service.clone();
    blocking(move || checker.may_read_metrics(&caller.0)).await?;
    let text = service
        .metrics()
        .encode()
        .map_err(|err| ApiError(ServiceError::Internal(format!("metrics: {err}"))))?;
    Ok(HttpResponse::Ok()
        .content_type(vellum_app::metrics::CONTENT_TYPE)
        .body(text))
}

/// Exchanges a user name and password for a session token. Failed logins are throttled per
/// account and per address.
#[utoipa::path(post, path = "/v1/login", tag = "identity", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn login(
    service: Shared,
    request: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let address = client_address(&request);
    let response = blocking(move || service.login(&body, &address)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/v1/logout", tag = "identity",
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(
    service: Shared,
    request: HttpRequest,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let token = bearer(&request).unwrap_or_default().to_string();
    blocking(move || service.logout(&caller.0, &token)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who the caller is.
#[utoipa::path(get, path = "/v1/me", tag = "identity",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(service: Shared, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.me(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Searches the documents the caller may search (the permission filter runs inside the
/// indexes).
#[utoipa::path(post, path = "/v1/search", tag = "documents",
    request_body = SearchRequest,
    responses(
        (status = 200, body = SearchResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn search(
    service: Shared,
    caller: Authenticated,
    body: web::Json<SearchRequest>,
) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.search(&caller.0, &body)).await?;
    Ok(HttpResponse::Ok().json(response))
}

fn sse_frame(event: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

fn ask_frame(item: Result<AskEvent, ServiceError>) -> Bytes {
    match item {
        Ok(AskEvent::Sources(sources)) => sse_frame("sources", &SourcesEvent { sources }),
        Ok(AskEvent::Token(text)) => sse_frame("token", &TokenEvent { text }),
        Ok(AskEvent::Answer(answer)) => sse_frame("answer", &answer),
        Err(err) => sse_frame("error", &ApiError(err).body()),
    }
}

/// Answers a question from the caller's documents, streamed as Server-Sent Events: one
/// `sources` event (the numbered passages given to the model), `token` events, then one
/// `answer` event (citation check and receipt), or an `error` event if it fails mid-way.
#[utoipa::path(post, path = "/v1/ask", tag = "answers",
    request_body = AskRequest,
    responses(
        (status = 200, content_type = "text/event-stream", body = AskStreamEvent,
         description = "events `sources` (SourcesEvent), `token` (TokenEvent), `answer` \
                        (AnswerView), `error` (ErrorBody), each `data` one line of JSON"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn ask(
    service: Shared,
    caller: Authenticated,
    body: web::Json<AskRequest>,
) -> Result<HttpResponse, ApiError> {
    let worker = service.into_inner();
    ask_stream(move |cancel, emit| worker.ask_cancellable(&caller.0, &body, cancel, emit)).await
}

/// Runs an answer on the blocking pool and streams its events as Server-Sent Events. Errors
/// before the first event (bad request, no model, nothing permitted) get their own status
/// code; after it, they arrive as an `error` event. A client that goes away stops the model at
/// its next token.
async fn ask_stream<F>(work: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&vellum_app::CancelFlag, &mut dyn FnMut(AskEvent)) -> Result<(), ServiceError>
        + Send
        + 'static,
{
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    actix_web::rt::task::spawn_blocking(move || {
        let events = sender.clone();
        let cancel = vellum_app::CancelFlag::new();
        let result = work(&cancel, &mut |event| {
            // The stream (and its receiver) is dropped when the client goes away: stop the
            // model at the next token instead of answering nobody.
            if events.send(Ok(event)).is_err() {
                cancel.cancel();
            }
        });
        if let Err(err) = result {
            let _ = sender.send(Err(err));
        }
    });
    let first = receiver
        .recv()
        .await
        .ok_or_else(|| ApiError(ServiceError::Internal("ask ended without a result".into())))?
        .map_err(ApiError)?;
    let rest = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|item| (Ok::<_, Infallible>(ask_frame(item)), receiver))
    });
    let stream =
        futures::stream::once(async move { Ok::<_, Infallible>(ask_frame(Ok(first))) }).chain(rest);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// The caller's conversations, most recent first.
#[utoipa::path(get, path = "/v1/conversations", tag = "answers",
    responses((status = 200, body = Vec<ConversationSummary>), (status = 401, body = ErrorBody)))]
async fn list_conversations(
    service: Shared,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.list_conversations(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Starts a conversation over some collections (empty: all the caller may ask about).
#[utoipa::path(post, path = "/v1/conversations", tag = "answers",
    request_body = NewConversation,
    responses(
        (status = 201, body = ConversationView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_conversation(
    service: Shared,
    caller: Authenticated,
    body: web::Json<NewConversation>,
) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.create_conversation(&caller.0, &body)).await?;
    Ok(HttpResponse::Created().json(response))
}

/// One of the caller's conversations, every turn with all its sources (a source the caller
/// may no longer read is withheld).
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "answers",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, body = ConversationView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_conversation(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let response = blocking(move || service.get_conversation(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Deletes one of the caller's conversations.
#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "answers",
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_conversation(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    blocking(move || service.delete_conversation(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// `docx` or `pdf`.
    format: ExportFormat,
}

/// The conversation as a DOCX or PDF file: every question, answer and source (quote,
/// document, page), cited ones marked.
#[utoipa::path(get, path = "/v1/conversations/{id}/export", tag = "answers",
    params(("id" = String, Path, description = "Conversation id"), ExportQuery),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn export_conversation(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let format = query.format;
    let file = blocking(move || service.export_conversation(&caller.0, &id, format)).await?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file.file_name),
        ))
        .body(file.bytes))
}

/// Asks the conversation's next question, with its earlier turns: the same stream as
/// `POST /v1/ask`; the turn is kept before the `answer` event is sent.
#[utoipa::path(post, path = "/v1/conversations/{id}/ask", tag = "answers",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = ConversationAsk,
    responses(
        (status = 200, content_type = "text/event-stream", body = AskStreamEvent),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn ask_in_conversation(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
    body: web::Json<ConversationAsk>,
) -> Result<HttpResponse, ApiError> {
    let worker = service.into_inner();
    let id = id.into_inner();
    ask_stream(move |cancel, emit| worker.ask_in_conversation(&caller.0, &id, &body, cancel, emit))
        .await
}

/// Summarizes a whole document: facts extracted first, each a verbatim quote with its page
/// (a contract brief, a patient-record summary, ...), then prose the facts support.
#[utoipa::path(post, path = "/v1/summarize", tag = "answers",
    request_body = SummarizeRequest,
    responses(
        (status = 200, body = SummaryView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn summarize(
    service: Shared,
    caller: Authenticated,
    body: web::Json<SummarizeRequest>,
) -> Result<HttpResponse, ApiError> {
    // Dropped with this handler's future when the client goes away: the summary stops at the
    // model's next token.
    let flag = vellum_app::CancelFlag::new();
    let mut cancel = CancelOnDrop(Some(flag.clone()));
    let response = blocking(move || service.summarize_cancellable(&caller.0, &body, &flag)).await;
    cancel.0 = None;
    Ok(HttpResponse::Ok().json(response?))
}

/// Raises its flag when dropped: a handler future dropped before it finished (the client
/// disconnected) stops the work it started on the blocking pool.
struct CancelOnDrop(Option<vellum_app::CancelFlag>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.cancel();
        }
    }
}

/// Collections with documents the caller may read.
#[utoipa::path(get, path = "/v1/collections", tag = "documents",
    responses((status = 200, body = Vec<CollectionView>), (status = 401, body = ErrorBody)))]
async fn collections(service: Shared, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.list_collections(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DocumentQuery {
    /// Only this collection.
    collection: Option<String>,
}

/// Documents the caller may read.
#[utoipa::path(get, path = "/v1/documents", tag = "documents",
    params(DocumentQuery),
    responses(
        (status = 200, body = Vec<DocumentView>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_documents(
    service: Shared,
    caller: Authenticated,
    query: web::Query<DocumentQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let response =
        blocking(move || service.list_documents(&caller.0, query.collection.as_deref())).await?;
    Ok(HttpResponse::Ok().json(response))
}

fn bad_form(message: impl Into<String>) -> ApiError {
    ApiError(ServiceError::BadRequest(message.into()))
}

/// Reads a small text field of a form, at most `limit` bytes.
async fn form_text(field: &mut actix_multipart::Field, limit: usize) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|err| bad_form(format!("reading the form: {err}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(bad_form(format!(
                "a form field is longer than {limit} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| bad_form("a form field is not UTF-8 text"))
}

/// Uploads a document (multipart/form-data, streamed to disk): 201 when ingested, 200 when
/// the same bytes are already in the collection, 422 when it was kept but cannot be indexed
/// (the reason says why: encrypted, scanned without OCR, malformed...). The collection and
/// labels come first (form fields before `file`, or query parameters): the upload is decided
/// (policy, 2 uploads per user and 8 in all at once, disk reserve) before the file is read.
#[utoipa::path(post, path = "/v1/documents", tag = "documents",
    params(UploadQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = UploadResponse),
        (status = 200, body = UploadResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn upload(
    service: Shared,
    caller: Authenticated,
    query: web::Query<UploadQuery>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut fields = UploadFields {
        collection: query.collection,
        labels: query.labels,
    };
    let mut incoming: Option<IncomingFile> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|err| bad_form(format!("reading the form: {err}")))?;
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "collection" if incoming.is_none() => {
                fields.collection = Some(form_text(&mut field, 1024).await?)
            }
            "labels" if incoming.is_none() => {
                fields.labels = Some(form_text(&mut field, 4096).await?)
            }
            "labels" => {
                // After the file: decided again with them (send them first to be refused
                // before the file is read).
                let labels = form_text(&mut field, 4096).await?;
                if let Some(mut file) = incoming.take() {
                    let decider = service.clone();
                    let who = caller.0.clone();
                    let relabelled = blocking(move || {
                        decider
                            .relabel_upload(&who, &mut file, &labels)
                            .map(|()| file)
                    })
                    .await?;
                    incoming = Some(relabelled);
                }
            }
            "collection" => {
                // The upload was decided for the collection known when the file started.
                return Err(ApiError(ServiceError::Conflict(
                    "the collection must come before the file (or as the query parameter): the \
                     upload was already decided for another one"
                        .into(),
                )));
            }
            "file" if incoming.is_some() => return Err(bad_form("send one file per upload")),
            "file" => {
                if fields.collection.is_none() {
                    // Field order matters here: the upload is decided before the file is read.
                    return Err(ApiError(ServiceError::Conflict(
                        "send the collection (and labels) before the file, as form fields or \
                         query parameters: the upload is decided before it is received"
                            .into(),
                    )));
                }
                let file_name = field
                    .content_disposition()
                    .and_then(|disposition| disposition.get_filename())
                    .unwrap_or("upload")
                    .to_string();
                // Policy, concurrency and disk space are decided here, before a byte of the
                // file is read; a refusal leaves the rest of the body unread.
                let decider = service.clone();
                let caller_for_begin = caller.0.clone();
                let declared = fields.clone();
                let mut receiving = blocking(move || {
                    decider.begin_upload(&caller_for_begin, &declared, &file_name)
                })
                .await?;
                while let Some(chunk) = field.next().await {
                    let written = chunk
                        .map_err(|err| ServiceError::BadRequest(format!("reading the file: {err}")))
                        .and_then(|chunk| receiving.write(&chunk));
                    if let Err(err) = written {
                        return Err(ApiError(service.upload_failed(&caller.0, receiving, err)));
                    }
                }
                incoming = Some(receiving);
            }
            other => {
                return Err(bad_form(format!(
                    "unknown form field {other:?}: send collection, labels, then file"
                )))
            }
        }
    }
    let incoming = incoming.ok_or_else(|| bad_form("no file: send it as the form field `file`"))?;
    let response = blocking(move || service.upload(&caller.0, incoming)).await?;
    Ok(if response.duplicate {
        HttpResponse::Ok().json(response)
    } else {
        HttpResponse::Created().json(response)
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// The collection (instead of the form field): no `:`, `/` or control characters.
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^:/\x00-\x1f\x7f-\x9f]*[^:/\x00-\x1f\x7f-\x9f\s][^:/\x00-\x1f\x7f-\x9f]*$"
    )]
    collection: Option<String>,
    /// Comma-separated labels (instead of the form field).
    #[param(
        max_length = 4096,
        pattern = r"^ *([A-Za-z0-9_-]{1,64} *(, *[A-Za-z0-9_-]{1,64} *)*)?$"
    )]
    labels: Option<String>,
}

/// One document's catalog entry (404 also when the caller may not read it).
#[utoipa::path(get, path = "/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, body = DocumentView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_document(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let response = blocking(move || service.get_document(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// The document's original file, as uploaded (PDFs inline, for the web app's viewer; other
/// formats as a download). Sandboxed: the browser runs nothing in it.
#[utoipa::path(get, path = "/v1/documents/{id}/file", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn document_file(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (file, bytes) = blocking(move || {
        let file = service.document_file(&caller.0, &id)?;
        let bytes = std::fs::read(&file.path).map_err(|err| {
            ServiceError::Internal(format!("reading {}: {err}", file.path.display()))
        })?;
        Ok((file, bytes))
    })
    .await?;
    let disposition = if file.content_type == "application/pdf" {
        "inline"
    } else {
        "attachment"
    };
    // The name is the uploader's: keep only characters that cannot break the header.
    let name: String = file
        .document
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename=\"{name}\""),
        ))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ))
        .body(bytes))
}

/// The document's indexed text, chunk by chunk, in order (each with the page it starts on).
#[utoipa::path(get, path = "/v1/documents/{id}/chunks", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, body = Vec<ChunkView>),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn document_chunks(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let response = blocking(move || service.document_chunks(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Deletes a document from every store.
#[utoipa::path(delete, path = "/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_document(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    blocking(move || service.delete_document(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every account (account administrators only).
#[utoipa::path(get, path = "/v1/users", tag = "identity",
    responses(
        (status = 200, body = Vec<AccountView>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_users(service: Shared, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.list_users(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Adds an account (account administrators, from a session, not an API key). The policies must
/// allow `grant` on the account as it will be: an administrator cannot give roles or groups
/// that their own ethical walls deny them (403).
#[utoipa::path(post, path = "/v1/users", tag = "identity",
    request_body = NewUserRequest,
    responses(
        (status = 201, body = AccountView),
        (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn add_user(
    service: Shared,
    caller: Authenticated,
    body: web::Json<NewUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.add_user(&caller.0, &body)).await?;
    Ok(HttpResponse::Created().json(response))
}

/// Disables or enables an account (account administrators only).
#[utoipa::path(put, path = "/v1/users/{name}/disabled", tag = "identity",
    params(("name" = String, Path, description = "User name")),
    request_body = DisabledRequest,
    responses(
        (status = 204),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn set_user_disabled(
    service: Shared,
    caller: Authenticated,
    name: web::Path<String>,
    body: web::Json<DisabledRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    blocking(move || service.set_user_disabled(&caller.0, &name, body.disabled)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets a password, from a session (an API key gets 403). One's own needs `current_password`
/// (wrong: 403; it counts towards the login throttle: 429). Another user's is for account
/// administrators whom the policies allow `act_for` that user, with a `reason` that the audit
/// log keeps; they must then choose their own. Either way the user's sessions end and all
/// their API keys are revoked.
#[utoipa::path(put, path = "/v1/users/{name}/password", tag = "identity",
    params(("name" = String, Path, description = "User name")),
    request_body = PasswordRequest,
    responses(
        (status = 204, description = "Changed; the user's sessions ended and API keys revoked"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn set_user_password(
    service: Shared,
    caller: Authenticated,
    name: web::Path<String>,
    body: web::Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    blocking(move || service.set_user_password(&caller.0, &name, &body)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct KeyQuery {
    /// Everyone's keys (account administrators only).
    all: Option<bool>,
}

/// API keys: the caller's, or everyone's with `all=true`.
#[utoipa::path(get, path = "/v1/keys", tag = "identity",
    params(KeyQuery),
    responses(
        (status = 200, body = Vec<KeyView>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_keys(
    service: Shared,
    caller: Authenticated,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let all = query.all.unwrap_or(false);
    let response = blocking(move || service.list_keys(&caller.0, all)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Creates an API key (shown once, stored hashed), from a session: a key cannot make keys. It
/// expires after `expires_in_days` (1-365; default the server's `key_days`). A key for another
/// user is for account administrators whom the policies allow `act_for` that user, with a
/// `reason` that the audit log keeps.
#[utoipa::path(post, path = "/v1/keys", tag = "identity",
    request_body = NewKeyRequest,
    responses(
        (status = 201, body = CreatedKeyView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn create_key(
    service: Shared,
    caller: Authenticated,
    body: web::Json<NewKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.create_key(&caller.0, &body)).await?;
    Ok(HttpResponse::Created().json(response))
}

/// Revokes an API key: one's own, or any for an account administrator.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "identity",
    params(("id" = String, Path, description = "Key id (its public prefix)")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_key(
    service: Shared,
    caller: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    blocking(move || service.revoke_key(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Audit records, newest first, filtered by user, action, document and time (needs `admin` on
/// `Collection::"vellum:audit"`). Questions appear only as HMACs, as in the log.
#[utoipa::path(get, path = "/v1/audit", tag = "operations",
    params(
        ("user" = Option<String>, Query, description = "Principal"),
        ("action" = Option<String>, Query, description = "Action, e.g. search, ask, login"),
        ("document" = Option<String>, Query, description = "Document id"),
        ("since" = Option<String>, Query, description = "From (YYYY-MM-DD or RFC 3339)"),
        ("until" = Option<String>, Query, description = "Until (YYYY-MM-DD or RFC 3339)"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 200)")),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn audit_records(
    service: Shared,
    caller: Authenticated,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let response = blocking(move || service.audit_records(&caller.0, &query)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Verifies the audit log's chain and signed checkpoints, as `vellum audit verify` does
/// (needs `admin` on `Collection::"vellum:audit"`).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "operations",
    responses(
        (status = 200, body = AuditVerifyView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn audit_verify(service: Shared, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.audit_verify(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Files that ingest refused, with the reason (needs `admin` on
/// `Collection::"vellum:quarantine"`).
#[utoipa::path(get, path = "/v1/quarantine", tag = "operations",
    responses(
        (status = 200, body = Vec<QuarantineView>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn quarantine(service: Shared, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.quarantine_list(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Documents, chunks, work in progress and readiness (needs `admin` on
/// `Collection::"vellum:metrics"`).
#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses(
        (status = 200, body = StatusView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn status(service: Shared, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.status(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}
