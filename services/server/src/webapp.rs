//! The web app's edge: its static assets (embedded in the binary), the session cookie that
//! stands in for a bearer token in a browser, and the cross-site request checks that a cookie
//! needs. The pages call the same `/v1` API as every other client; nothing here decides what
//! a user may see (that stays in `vellum-app`, as for bearer clients).

use std::path::{Component, Path, PathBuf};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::{middleware, web, HttpRequest, HttpResponse};
use include_dir::{include_dir, Dir};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{ErrorBody, LoginRequest, UserView};
use crate::error::ApiError;
use crate::routes::{blocking, client_address, Authenticated};
use vellum_app::service::{Caller, Service};

/// The web app, built into the binary: what is served is what was reviewed and shipped.
static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// Serves the assets from this folder instead, read at each request (for working on the pages
/// without rebuilding the server). Unset in production.
pub const WEB_DIR_ENV: &str = "VELLUM_WEB_DIR";

/// The session cookie. `__Host-` makes the browser refuse it unless it is `Secure`, has
/// `Path=/` and no `Domain`: no other host or plaintext page can set or read it.
pub const SESSION_COOKIE: &str = "__Host-vellum_session";

/// The header that carries the session's anti-forgery token on every state change.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Every page's security policy: scripts, styles, fonts and workers only from this server;
/// no inline script, no `eval`, no framing, no base-URI or form hijacking.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
     worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Registers the pages and the session endpoints.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/web/session")
                .route(web::post().to(sign_in))
                .route(web::get().to(session))
                .route(web::delete().to(sign_out)),
        )
        .service(web::resource("/").route(web::get().to(index)))
        .service(web::resource("/assets/{path:.*}").route(web::get().to(asset)));
}

/// The anti-forgery token of a session: derived from the session token, which only this
/// server and the browser's `HttpOnly` cookie know, so another origin cannot compute it.
pub fn csrf_token(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"vellum-csrf\n");
    hasher.update(session_token.as_bytes());
    hex::encode(hasher.finalize())
}

/// The session token from the request's cookie, if any.
pub fn session_cookie(request: &HttpRequest) -> Option<String> {
    cookie_value(request.headers(), SESSION_COOKIE)
}

fn cookie_value(headers: &header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// This server's own origin as the browser names it: `https://` + the host it asked for (the
/// `Host` header in HTTP/1.1, the `:authority` that HTTP/2 puts in the URI).
fn own_origin(request: &actix_web::dev::RequestHead) -> Option<String> {
    let host = match request.headers.get(header::HOST) {
        Some(host) => host.to_str().ok()?.to_string(),
        None => request.uri.authority()?.as_str().to_string(),
    };
    Some(format!("https://{host}"))
}

/// Why a state change is refused as cross-site, if it is.
fn cross_site_refusal(request: &ServiceRequest) -> Option<&'static str> {
    if is_safe(request.method()) {
        return None;
    }
    let head = request.head();
    if let Some(origin) = head.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        if Some(origin.to_string()) != own_origin(head) {
            return Some("a request from another origin may not change anything here");
        }
    }
    // A bearer client carries its credential itself; only the cookie rides along with
    // requests another site makes the browser send.
    if head.headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let session = cookie_value(&head.headers, SESSION_COOKIE)?;
    let expected = csrf_token(&session);
    let sent = head
        .headers
        .get(CSRF_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if constant_time_eq(sent, expected.as_bytes()) {
        None
    } else {
        Some("this change needs the page's anti-forgery token (X-CSRF-Token); reload the page")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Around every request: refuses a state change another site could have made the browser
/// send (a foreign `Origin`, or the session cookie without the anti-forgery token).
pub async fn refuse_cross_site(
    request: ServiceRequest,
    next: middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(message) = cross_site_refusal(&request) {
        let response = HttpResponse::Forbidden().json(ErrorBody {
            code: "csrf".into(),
            message: message.into(),
        });
        return Ok(request.into_response(response));
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

/// What the page learns about its session.
#[derive(Debug, Serialize)]
struct SessionView {
    user: UserView,
    /// Send as `X-CSRF-Token` on every request that changes something.
    csrf: String,
    /// When the session ends (Unix seconds); absent when the page reloads an existing one.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    /// The password must be changed before anything else works.
    must_change_password: bool,
    /// Emergency access would open more to this user (the page then offers the reason
    /// prompt); decided by Cedar from the policies in force.
    break_glass: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    password: String,
}

/// Signs in with a password: the session token goes into an `HttpOnly` cookie, never to the
/// page's script.
async fn sign_in(
    service: web::Data<Service>,
    request: HttpRequest,
    body: web::Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let address = client_address(&request);
    let login_address = address.clone();
    let SignIn { user, password } = body.into_inner();
    let login = LoginRequest { user, password };
    let (response, must_change_password, break_glass) = blocking(move || {
        let response = service.login(&login, &login_address)?;
        let principal = service.auth().authenticate(&response.token)?;
        let must_change_password = principal.must_change_password;
        let break_glass = service.break_glass_offered(&Caller::new(principal, address))?;
        Ok((response, must_change_password, break_glass))
    })
    .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let max_age = response.expires_at.saturating_sub(now);
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}",
        response.token
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, cookie))
        .json(SessionView {
            csrf: csrf_token(&response.token),
            user: response.user,
            expires_at: Some(response.expires_at),
            must_change_password,
            break_glass,
        }))
}

/// The current session (the page asks at load whether to show the sign-in form).
async fn session(
    service: web::Data<Service>,
    request: HttpRequest,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&request).unwrap_or_default();
    let must_change_password = caller.0.principal.must_change_password;
    let (user, break_glass) = blocking(move || {
        Ok((
            service.me(&caller.0)?,
            service.break_glass_offered(&caller.0)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(SessionView {
        user,
        csrf: csrf_token(&token),
        expires_at: None,
        must_change_password,
        break_glass,
    }))
}

/// Signs out: ends the session on the server and clears the cookie.
async fn sign_out(
    service: web::Data<Service>,
    request: HttpRequest,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let token = session_cookie(&request).unwrap_or_default();
    blocking(move || service.logout(&caller.0, &token)).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish())
}

async fn index() -> HttpResponse {
    serve_asset("index.html")
}

async fn asset(path: web::Path<String>) -> HttpResponse {
    serve_asset(&path.into_inner())
}

/// A relative path with only normal parts (no `..`, no root, no drive).
fn clean_relative(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    path.components()
        .all(|part| matches!(part, Component::Normal(_)))
        .then(|| path.to_path_buf())
}

fn serve_asset(path: &str) -> HttpResponse {
    let Some(relative) = clean_relative(path) else {
        return not_found();
    };
    let bytes: Option<Vec<u8>> = match std::env::var_os(WEB_DIR_ENV) {
        Some(dir) => std::fs::read(Path::new(&dir).join(&relative)).ok(),
        None => ASSETS
            .get_file(&relative)
            .map(|file| file.contents().to_vec()),
    };
    match bytes {
        Some(bytes) => HttpResponse::Ok()
            .content_type(content_type(&relative))
            // Revalidated on each load: an upgrade never leaves an old script in a tab's cache.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(bytes),
        None => not_found(),
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody {
        code: "not_found".into(),
        message: "no such page".into(),
    })
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("map") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_cannot_leave_the_folder() {
        assert!(clean_relative("app.js").is_some());
        assert!(clean_relative("vendor/pdfjs/pdf.min.mjs").is_some());
        assert!(clean_relative("../Cargo.toml").is_none());
        assert!(clean_relative("/etc/passwd").is_none());
        assert!(clean_relative("a/../../b").is_none());
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = header::HeaderMap::new();
        headers.insert(
            header::COOKIE,
            header::HeaderValue::from_static(
                "x__Host-vellum_session=evil; __Host-vellum_session=vs_1",
            ),
        );
        assert_eq!(
            cookie_value(&headers, SESSION_COOKIE).as_deref(),
            Some("vs_1")
        );
    }

    #[test]
    fn the_anti_forgery_token_depends_on_the_session() {
        assert_ne!(csrf_token("vs_a"), csrf_token("vs_b"));
        assert_eq!(csrf_token("vs_a"), csrf_token("vs_a"));
    }
}
