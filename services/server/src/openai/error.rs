//! Errors: `{"error": {"message", "type", "param", "code"}}`, mapped in one place.

use super::*;

/// A failure of this API, in OpenAI's error shape (boxed: results stay small).
#[derive(Debug)]
pub struct OpenAiError(Box<Details>);

#[derive(Debug)]
struct Details {
    error: ServiceError,
    /// The model the request named: a 404 then reads "model ... does not exist".
    model: Option<String>,
    /// The request field at fault, when known.
    param: Option<String>,
    /// Overrides the status and code (unknown URL, method not allowed).
    route: Option<(StatusCode, &'static str, String)>,
}

impl From<ServiceError> for OpenAiError {
    fn from(error: ServiceError) -> Self {
        OpenAiError(Box::new(Details {
            error,
            model: None,
            param: None,
            route: None,
        }))
    }
}

impl OpenAiError {
    pub(super) fn invalid(param: &str, message: impl Into<String>) -> OpenAiError {
        let mut error = OpenAiError::from(ServiceError::BadRequest(message.into()));
        error.0.param = Some(param.to_string());
        error
    }

    pub(super) fn unsupported(param: &str, what: &str) -> OpenAiError {
        OpenAiError::invalid(
            param,
            format!("{what} is not supported by Vellum (`{param}`)"),
        )
    }

    pub(super) fn model_not_found(model: &str) -> OpenAiError {
        ServiceError::NotFound.into_openai().with_model(model)
    }

    pub(super) fn with_model(mut self, model: &str) -> OpenAiError {
        self.0.model = Some(model.to_string());
        self
    }

    pub(super) fn unknown_url(request: &HttpRequest) -> OpenAiError {
        let mut error = OpenAiError::from(ServiceError::NotFound);
        error.0.route = Some((
            StatusCode::NOT_FOUND,
            "unknown_url",
            format!(
                "Unknown request URL: {} {}. This API answers GET {PREFIX}/models, POST \
                     {PREFIX}/chat/completions and POST {PREFIX}/embeddings.",
                request.method(),
                request.path()
            ),
        ));
        error
    }

    pub(super) fn method_not_allowed(request: &HttpRequest, allow: &str) -> OpenAiError {
        let mut error = OpenAiError::from(ServiceError::BadRequest(String::new()));
        error.0.route = Some((
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} answers {allow}, not {}",
                request.path(),
                request.method()
            ),
        ));
        error
    }

    /// The one mapping from a failure to (status, OpenAI `type`, `code`, message). Internal
    /// details are logged, never sent.
    pub(super) fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        let details = &self.0;
        if let Some((status, code, message)) = &details.route {
            return (*status, "invalid_request_error", code, message.clone());
        }
        let message = details.error.to_string();
        match (&details.error, details.error.kind()) {
            (_, ErrorKind::Unauthenticated) => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                "Invalid or missing API key: send `Authorization: Bearer <key>` with a Vellum \
                 API key (vk_…) or session token (vs_…)"
                    .into(),
            ),
            (ServiceError::PasswordChangeRequired, _) => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "password_change_required",
                message,
            ),
            (_, ErrorKind::Forbidden) => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "permission_denied",
                match &details.model {
                    Some(model) if model == EMBEDDING_MODEL => format!(
                        "You are not permitted to use `{model}`: embeddings need permission to \
                         search at least one collection with documents (Vellum's policies \
                         decide; ask your administrator)"
                    ),
                    Some(model) => format!(
                        "You are not permitted to use the model `{model}` (Vellum's policies \
                         decide; ask your administrator)"
                    ),
                    None => "You are not permitted to do this (Vellum's policies decide; ask \
                             your administrator)"
                        .into(),
                },
            ),
            (_, ErrorKind::NotFound) => match &details.model {
                Some(model) => (
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "model_not_found",
                    format!(
                        "The model `{model}` does not exist or you do not have access to it \
                         (GET {PREFIX}/models lists yours)"
                    ),
                ),
                None => (
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "not_found",
                    message,
                ),
            },
            (_, ErrorKind::Invalid) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                if details.param.is_some() {
                    "invalid_value"
                } else {
                    "invalid_request"
                },
                message,
            ),
            (_, ErrorKind::Conflict) => (
                StatusCode::CONFLICT,
                "invalid_request_error",
                "conflict",
                message,
            ),
            (_, ErrorKind::TooLarge) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "too_large",
                message,
            ),
            (_, ErrorKind::Unprocessable) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "unprocessable",
                message,
            ),
            (_, ErrorKind::Throttled) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                message,
            ),
            (_, ErrorKind::Unavailable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "service_unavailable",
                message,
            ),
            (ServiceError::Internal(detail), _) => {
                tracing::error!(detail = detail.as_str(), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal_error",
                    "internal error; the server log has the details".into(),
                )
            }
            (_, ErrorKind::Internal) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
                "internal error; the server log has the details".into(),
            ),
        }
    }

    /// `{"error": {...}}`: the body of an error response, and the `data` of a stream's error.
    pub(super) fn body(&self) -> Value {
        let (_, kind, code, message) = self.parts();
        json!({"error": {"message": message, "type": kind, "param": self.0.param, "code": code}})
    }
}

pub(super) trait IntoOpenAi {
    fn into_openai(self) -> OpenAiError;
}

impl IntoOpenAi for ServiceError {
    fn into_openai(self) -> OpenAiError {
        self.into()
    }
}

impl std::fmt::Display for OpenAiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.parts().3)
    }
}

impl ResponseError for OpenAiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        crate::error::advice_headers(&self.0.error, &mut response);
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_openai_shape_and_statuses() {
        let cases = [
            (
                ServiceError::Unauthenticated.into_openai(),
                401,
                "invalid_api_key",
            ),
            (
                ServiceError::Forbidden.into_openai(),
                403,
                "permission_denied",
            ),
            (
                OpenAiError::model_not_found("vellum:secret"),
                404,
                "model_not_found",
            ),
            (
                OpenAiError::invalid("n", "n must be 1"),
                400,
                "invalid_value",
            ),
            (
                ServiceError::Busy {
                    message: "busy".into(),
                    retry_after: 5,
                }
                .into_openai(),
                429,
                "rate_limit_exceeded",
            ),
            (
                ServiceError::Unavailable("no model".into()).into_openai(),
                503,
                "service_unavailable",
            ),
            (
                ServiceError::Internal("/var/lib/vellum/catalog.sqlite: I/O".into()).into_openai(),
                500,
                "internal_error",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status_code().as_u16(), status);
            let body = error.body();
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
            assert!(body["error"].get("param").is_some(), "{body}");
            assert!(!body.to_string().contains("catalog.sqlite"), "{body}");
        }
        let body = OpenAiError::model_not_found("vellum:secret").body();
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`vellum:secret` does not exist")));
    }
}
