//! [`ApiError`]: the one error type of every handler, and its stable JSON body
//! `{"success":false,"error":{"code":"…","message":"…"}}`.
//!
//! 5xx details are logged here and never returned: the client sees a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moolai_protocol::ValidationError;
use moolai_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `bad_request`: malformed JSON, query or path; a parameter out of range.
    #[error("{0}")]
    BadRequest(String),
    /// 401 `unauthorized`: no credential, or one that is wrong or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`: authenticated but not allowed: the role is too low, or an explicit
    /// filter names an organization outside the caller's scope.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found`: the resource (or route) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`: the route exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 `conflict`: the id exists already, or the resource is in another state.
    #[error("{0}")]
    Conflict(String),
    /// 413 `payload_too_large`: the body is larger than `API_MAX_BODY_BYTES`.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 429 `too_many_requests`: login attempts locked out for a while (`Retry-After`).
    #[error("too many failed attempts; try again in {retry_after_sec} s")]
    TooManyRequests { retry_after_sec: u64 },
    /// 422 `invalid`: well-formed JSON that breaks a data rule.
    #[error("{0}")]
    Invalid(String),
    /// 503 `unavailable`: the database or the bus cannot be reached.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500 `internal`: a bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `invalid`, `too_many_requests`,
    /// `unavailable`, `internal`.
    pub code: String,
    /// Human-readable; may change between versions.
    pub message: String,
}

impl ApiError {
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Invalid(_) => "invalid",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    /// The body a client sees: server-side detail is replaced by a generic message.
    fn public_message(&self) -> String {
        match self {
            Self::Unavailable(_) => {
                "a backing service is unavailable; try again shortly".to_owned()
            }
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, code = self.code(), "request failed");
        }
        let body = ErrorBody {
            success: false,
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.public_message(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self, Self::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests { retry_after_sec } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_sec));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Unauthorized(m) => Self::Unauthorized(m),
            StoreError::Invalid(m) => Self::Invalid(m),
            StoreError::Unavailable(m) => Self::Unavailable(format!("database: {m}")),
            StoreError::Other(m) => Self::Internal(format!("storage: {m}")),
        }
    }
}

impl From<ValidationError> for ApiError {
    /// Validation of a body field: 422.
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let cases = [
            (StoreError::NotFound("orchestrator x".into()), 404),
            (StoreError::Conflict("exists".into()), 409),
            (StoreError::Invalid("bad".into()), 422),
            (StoreError::Unavailable("down".into()), 503),
            (StoreError::Other("boom".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status().as_u16(), status);
        }
    }

    #[test]
    fn server_errors_hide_their_detail() {
        let e = ApiError::Internal("password=hunter2 at db".into());
        assert_eq!(e.public_message(), "internal error");
        let e = ApiError::Unavailable("postgres://u:p@h".into());
        assert!(!e.public_message().contains("postgres"));
        assert_eq!(
            ApiError::bad_request("page must be ≥ 1").public_message(),
            "page must be ≥ 1"
        );
    }
}
