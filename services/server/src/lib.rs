//! `vellum serve`: the HTTPS API. actix-web over rustls (TLS 1.2/1.3 only, no plaintext
//! port), bearer authentication (login sessions and API keys from `vellum-auth`), Cedar
//! authorization (`vellum-authz`) turned into filters inside both indexes, JSON under `/v1`.
//!
//! Layout: [`config`] (flag > env > TOML > default), [`tls`] (certificates, mTLS),
//! [`service`] (everything the API does, testable without HTTP), `routes` (thin handlers),
//! `error` (the one mapping from failures to status codes).

pub mod api;
pub mod config;
mod error;
pub mod gate;
pub mod openai;
mod routes;
pub mod tls;
pub mod webapp;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::{middleware, web, App, HttpMessage, HttpResponse, HttpServer, ResponseError};

pub use config::{ConfigError, FileConfig, Overrides, ServerConfig};
pub use gate::TrustedProxies;
pub use routes::ApiDoc;
pub use tls::TlsSetup;
pub use vellum_app::{
    metrics, service, summary_view, AskEvent, Caller, ErrorKind, IncomingFile, Policies, Service,
    ServiceEmbedder, ServiceError, ServiceParts, SetupError, UploadFields, UploadSettings,
};

use crate::error::ApiError;
use vellum_app::tally::RequestAudit;

/// Blocking threads per HTTP worker (searches, answers, uploads run there).
const BLOCKING_THREADS_PER_WORKER: usize = 16;

/// The whole HTTP application: routes, limits, headers, request logging and auditing. `serve`
/// runs it over TLS; tests run it in-process (`actix_web::test::init_service`).
pub fn create_app(
    service: web::Data<Service>,
    proxies: TrustedProxies,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json = web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, _| {
            ApiError(ServiceError::BadRequest(format!("bad JSON body: {err}"))).into()
        });
    let query = web::QueryConfig::default().error_handler(|err, _| {
        ApiError(ServiceError::BadRequest(format!("bad query string: {err}"))).into()
    });
    App::new()
        .app_data(service)
        .app_data(web::Data::new(proxies))
        .app_data(json)
        .app_data(query)
        // Uploads stream through multipart (limit: `max_upload_mb`, enforced while receiving);
        // other bodies are small JSON.
        .app_data(web::PayloadConfig::default().limit(1 << 20))
        .wrap(
            middleware::DefaultHeaders::new()
                .add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .add((header::CACHE_CONTROL, "no-store"))
                .add((
                    header::CONTENT_SECURITY_POLICY,
                    webapp::CONTENT_SECURITY_POLICY,
                ))
                .add((header::X_FRAME_OPTIONS, "DENY"))
                .add((header::REFERRER_POLICY, "no-referrer")),
        )
        .wrap(middleware::from_fn(webapp::refuse_cross_site))
        .wrap(middleware::from_fn(log_request))
        .configure(routes::configure)
        .configure(webapp::configure)
        .default_service(web::to(|| async {
            HttpResponse::NotFound().json(api::ErrorBody {
                code: "not_found".into(),
                message: "no such endpoint; the API lives under /v1, the web app at /".into(),
            })
        }))
}

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
    let proxies = TrustedProxies(config.trusted_proxies.clone());
    let app_data = data.clone();
    let result = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || create_app(app_data.clone(), proxies.clone()))
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
    });
    // What the tally counted but did not write yet goes into the log before it closes.
    if let Err(err) = data.flush_unauthenticated() {
        tracing::error!(error = %err, "audit: unauthenticated request counts not written");
    }
    result
}

/// The standard methods (RFC 9110 and PATCH); anything else is labelled `other` in metrics
/// and logs (and refused by routing: no route answers it). Label values must come from a closed set: a client that
/// invents methods must not be able to add series (each one lives for the life of the process).
const KNOWN_METHODS: [(Method, &str); 9] = [
    (Method::GET, "GET"),
    (Method::POST, "POST"),
    (Method::PUT, "PUT"),
    (Method::DELETE, "DELETE"),
    (Method::HEAD, "HEAD"),
    (Method::OPTIONS, "OPTIONS"),
    (Method::PATCH, "PATCH"),
    (Method::TRACE, "TRACE"),
    (Method::CONNECT, "CONNECT"),
];

/// The metrics and log label of a method: itself if standard, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

/// The request's audit mark, created here and read by the authentication extractor.
pub(crate) fn audit_mark(request: &actix_web::HttpRequest) -> Option<Arc<RequestAudit>> {
    request.extensions().get::<Arc<RequestAudit>>().cloned()
}

/// Around every request: labels unknown methods `other`, makes sure the request has an audit record
/// (a generic one if no service call wrote one), and writes one log line and one metrics
/// observation: method label, route pattern (never the query string, a header or a path
/// parameter, which may hold search text, credentials or document ids), status and time.
async fn log_request(
    request: ServiceRequest,
    next: middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let start = std::time::Instant::now();
    let method = method_label(request.method());
    let service = request.app_data::<web::Data<Service>>().cloned();
    let mark = Arc::new(RequestAudit::default());
    request.extensions_mut().insert(Arc::clone(&mark));
    // A method outside the closed set is still answered by routing (405 with `Allow` on a
    // known path, 404 elsewhere): only its label is bounded, as `other`.
    let mut response = next.call(request).await?.map_into_boxed_body();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    if let Some(service) = &service {
        if !mark.is_recorded() {
            let recorded = service.record_request(
                mark.principal(),
                &routes::client_address(response.request()),
                &route,
                method,
                status,
            );
            if let Err(err) = recorded {
                // Fail closed: what the request produced is not sent without its record.
                let request = response.request().clone();
                response = ServiceResponse::new(
                    request,
                    ApiError(err).error_response().map_into_boxed_body(),
                );
            }
        }
    }
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    if let Some(service) = service {
        service
            .metrics()
            .observe_request(&route, method, status, elapsed.as_secs_f64());
    }
    tracing::info!(
        method,
        route = route.as_str(),
        status,
        millis = elapsed.as_millis() as u64,
        "request"
    );
    Ok(response)
}
