//! The one place where failures become HTTP status codes and a JSON body `{code, message}`.
//! Internal details (paths, database errors, panics) are logged, never sent.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};

use crate::api::ErrorBody;
use vellum_app::service::ServiceError;
use vellum_app::ErrorKind;

/// An API failure.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        ApiError(err)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ApiError {
    fn code(&self) -> &'static str {
        match &self.0 {
            ServiceError::Unauthenticated => "unauthenticated",
            ServiceError::Throttled(_) => "throttled",
            ServiceError::Busy { .. } => "busy",
            ServiceError::PasswordChangeRequired => "password_change_required",
            ServiceError::Forbidden => "forbidden",
            ServiceError::NotFound => "not_found",
            ServiceError::BadRequest(_) => "bad_request",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::TooLarge(_) => "too_large",
            ServiceError::Unprocessable { .. } => "unprocessable",
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::Internal(_) => "internal",
        }
    }

    /// The JSON body: also sent as the `error` event of a stream that fails mid-way.
    pub(crate) fn body(&self) -> ErrorBody {
        let message = match &self.0 {
            ServiceError::Internal(detail) => {
                tracing::error!(detail = detail.as_str(), "internal error");
                "internal error; the server log has the details".to_string()
            }
            ServiceError::Unprocessable { kind, reason } => {
                format!("the file was kept but not indexed ({kind}): {reason}")
            }
            other => other.to_string(),
        };
        ErrorBody {
            code: self.code().to_string(),
            message,
        }
    }
}

/// The headers that tell a client what to do next: when to retry (`Retry-After`), how to
/// authenticate (`WWW-Authenticate`). Every error shape (the API's, the OpenAI API's) sends them.
pub(crate) fn advice_headers(error: &ServiceError, response: &mut HttpResponseBuilder) {
    match error {
        ServiceError::Throttled(seconds)
        | ServiceError::Busy {
            retry_after: seconds,
            ..
        } => {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        ServiceError::Unauthenticated => {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        _ => {}
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        // The one mapping from the application layer's error kinds to HTTP.
        match self.0.kind() {
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        advice_headers(&self.0, &mut response);
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_out_of_the_response() {
        let err = ApiError(ServiceError::Internal(
            "/var/lib/vellum/catalog.sqlite: disk I/O error".into(),
        ));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let response = err.error_response();
        let bytes = actix_web::rt::System::new()
            .block_on(actix_web::body::to_bytes(response.into_body()))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("catalog.sqlite"), "{text}");
        assert!(text.contains("\"code\":\"internal\""), "{text}");
    }

    #[test]
    fn throttled_logins_say_when_to_retry() {
        let response = ApiError(ServiceError::Throttled(4)).error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("4")
        );
    }
}
