//! `vellum serve`: the HTTPS API. actix-web over rustls (TLS 1.2/1.3 only, no plaintext
//! port), bearer authentication (login sessions and API keys from `vellum-auth`), Cedar
//! authorization (`vellum-authz`) turned into filters inside both indexes, JSON under `/v1`.
//!
//! Layout: [`config`] (flag > env > TOML > default), [`tls`] (certificates, mTLS),
//! [`service`] (everything the API does, testable without HTTP), `routes` (thin handlers),
//! `error` (the one mapping from failures to status codes).

pub mod config;
mod error;
mod routes;
pub mod service;
pub mod tls;

use std::net::SocketAddr;

use actix_web::http::header;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};

pub use config::{ConfigError, FileConfig, Overrides, ServerConfig};
pub use service::{Service, ServiceError};
pub use tls::TlsSetup;

use crate::error::ApiError;

/// Runs the server until it is stopped (SIGINT/SIGTERM). `on_listening` receives the bound
/// address (useful with port 0) before requests are served.
pub fn serve(
    config: &ServerConfig,
    service: Service,
    tls: TlsSetup,
    on_listening: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let data = web::Data::new(service);
    let max_body =
        usize::try_from(config.max_upload_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let workers = config.workers;
    let listen = config.listen;
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            let json = web::JsonConfig::default()
                .limit(64 * 1024)
                .error_handler(|err, _| {
                    ApiError(ServiceError::BadRequest(format!("bad JSON body: {err}"))).into()
                });
            let query = web::QueryConfig::default().error_handler(|err, _| {
                ApiError(ServiceError::BadRequest(format!("bad query string: {err}"))).into()
            });
            App::new()
                .app_data(data.clone())
                .app_data(json)
                .app_data(query)
                .app_data(web::PayloadConfig::default().limit(max_body))
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .wrap(middleware::from_fn(log_request))
                .configure(routes::configure)
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().json(serde_json::json!({
                        "code": "not_found",
                        "message": "no such endpoint; the API lives under /v1",
                    }))
                }))
        })
        .workers(workers)
        .bind_rustls_0_23(listen, tls.config)?;
        if let Some(bound) = server.addrs().first() {
            on_listening(*bound);
        }
        server.run().await
    })
}

/// One log line per request: method, path (never the query string or a header, which may hold
/// search text or credentials), status and time.
async fn log_request(
    request: actix_web::dev::ServiceRequest,
    next: middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let start = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.path().to_string();
    let response = next.call(request).await?;
    tracing::info!(
        %method,
        path = path.as_str(),
        status = response.status().as_u16(),
        millis = start.elapsed().as_millis() as u64,
        "request"
    );
    Ok(response)
}
