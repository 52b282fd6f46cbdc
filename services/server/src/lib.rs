//! `vellum serve`: the HTTPS API. actix-web over rustls (TLS 1.2/1.3 only, no plaintext
//! port), bearer authentication (login sessions and API keys from `vellum-auth`), Cedar
//! authorization (`vellum-authz`) turned into filters inside both indexes, JSON under `/v1`.
//!
//! Layout: [`config`] (flag > env > TOML > default), [`tls`] (certificates, mTLS),
//! [`service`] (everything the API does, testable without HTTP), `routes` (thin handlers),
//! `error` (the one mapping from failures to status codes).

mod accounts;
mod answers;
pub mod api;
pub mod config;
mod error;
pub mod metrics;
mod routes;
pub mod service;
pub mod tls;
mod uploads;

use std::net::SocketAddr;

use actix_web::http::header;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};

pub use answers::AskEvent;
pub use config::{ConfigError, FileConfig, Overrides, ServerConfig};
pub use routes::ApiDoc;
pub use service::{
    Caller, Service, ServiceEmbedder, ServiceError, ServiceParts, SetupError, UploadSettings,
};
pub use tls::TlsSetup;
pub use uploads::{IncomingFile, UploadFields};

use crate::error::ApiError;

/// Blocking threads per HTTP worker (searches, answers, uploads run there).
const BLOCKING_THREADS_PER_WORKER: usize = 16;

/// Runs the server until it is stopped (SIGINT/SIGTERM). `on_listening` receives the bound
/// address (useful with port 0) before requests are served.
pub fn serve(
    config: &ServerConfig,
    service: Service,
    tls: TlsSetup,
    on_listening: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let data = web::Data::new(service);
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
                // Uploads stream through multipart (limit: `max_upload_mb`, enforced while
                // receiving); other bodies are small JSON.
                .app_data(web::PayloadConfig::default().limit(1 << 20))
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .wrap(middleware::from_fn(log_request))
                .configure(routes::configure)
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().json(api::ErrorBody {
                        code: "not_found".into(),
                        message: "no such endpoint; the API lives under /v1".into(),
                    })
                }))
        })
        .workers(workers)
        // Searches and answers run on the blocking pool. Its default (512 threads) lets 50
        // concurrent searches each take a thread on a 2-core machine: no faster, and every
        // thread brings its own stack and malloc arena, so memory creeps up under load.
        .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
        .bind_rustls_0_23(listen, tls.config)?;
        if let Some(bound) = server.addrs().first() {
            on_listening(*bound);
        }
        server.run().await
    })
}

/// One log line and one metrics observation per request: method, route pattern (never the
/// query string, a header or a path parameter, which may hold search text, credentials or
/// document ids), status and time.
async fn log_request(
    request: actix_web::dev::ServiceRequest,
    next: middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let start = std::time::Instant::now();
    let method = request.method().clone();
    let service = request.app_data::<web::Data<Service>>().cloned();
    let response = next.call(request).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    if let Some(service) = service {
        service
            .metrics()
            .observe_request(&route, method.as_str(), status, elapsed.as_secs_f64());
    }
    tracing::info!(
        %method,
        route = route.as_str(),
        status,
        millis = elapsed.as_millis() as u64,
        "request"
    );
    Ok(response)
}
