//! HTTP → service call → JSON. Each handler extracts the caller, hands the work to the service
//! on actix's blocking pool (the stores block on I/O and LanceDB), and returns its answer.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use vellum_auth::Principal;

use crate::error::ApiError;
use crate::service::{LoginRequest, SearchRequest, Service, ServiceError};

type Shared = web::Data<Service>;

/// The authenticated caller (`Authorization: Bearer vs_…` or `vk_…`).
pub struct Caller(pub Principal);

fn bearer(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match (request.app_data::<Shared>(), bearer(request)) {
            (Some(service), Some(token)) => service.authenticate(token).map(Caller),
            (None, _) => Err(ServiceError::Internal(
                "service missing from app data".into(),
            )),
            (_, None) => Err(ServiceError::Unauthenticated),
        };
        ready(result.map_err(ApiError))
    }
}

/// Runs a service call on the blocking pool.
async fn blocking<T, F>(call: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    web::block(call)
        .await
        .map_err(|err| ApiError(ServiceError::Internal(format!("blocking task: {err}"))))?
        .map_err(ApiError)
}

/// Registers every route under `/v1`.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/v1")
            .route("/health", web::get().to(health))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/me", web::get().to(me))
            .route("/search", web::post().to(search))
            .route("/collections", web::get().to(collections))
            .route("/documents", web::get().to(list_documents))
            .route("/documents/{id}", web::get().to(get_document))
            .route("/documents/{id}", web::delete().to(delete_document)),
    );
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn login(
    service: Shared,
    request: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    // The TCP peer, not a forwarded-for header a client could forge.
    let address = request
        .peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    let response = blocking(move || service.login(&body, &address)).await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn logout(
    service: Shared,
    request: HttpRequest,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let token = bearer(&request).unwrap_or_default().to_string();
    blocking(move || service.logout(&token)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(crate::service::UserView::from(&caller.0))
}

async fn search(
    service: Shared,
    caller: Caller,
    body: web::Json<SearchRequest>,
) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.search(&caller.0, &body)).await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn collections(service: Shared, caller: Caller) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || service.list_collections(&caller.0)).await?;
    Ok(HttpResponse::Ok().json(response))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentQuery {
    collection: Option<String>,
}

async fn list_documents(
    service: Shared,
    caller: Caller,
    query: web::Query<DocumentQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let response =
        blocking(move || service.list_documents(&caller.0, query.collection.as_deref())).await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn get_document(
    service: Shared,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let response = blocking(move || service.get_document(&caller.0, &id)).await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn delete_document(
    service: Shared,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    blocking(move || service.delete_document(&caller.0, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
