//! The API's one error type: each variant knows its status and code, and becomes the
//! `{"error": {...}}` body in one place. Internal errors are logged, never echoed.

use crate::plane::ServiceError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the request is invalid (422).
    #[error("{field}: {message}")]
    Invalid {
        /// The field (body field, query parameter or header).
        field: String,
        /// Why.
        message: String,
    },
    /// The body is not JSON (400).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// No valid bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The request is not allowed: a read-only token for a change, or, without tokens, a
    /// `Host` that is not loopback or an `Origin` that is not the server's own (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// A live instance has the name (409).
    #[error("an instance with this name already exists")]
    NameInUse,
    /// Another operation holds the instance (409).
    #[error("operation {0} is in progress on this instance")]
    OperationInProgress(String),
    /// The action does not apply to the instance's state (409).
    #[error("{0}")]
    InvalidState(String),
    /// Deletion protection is on (409).
    #[error("{0}")]
    DeletionProtected(String),
    /// The backend cannot do this; the message says why (422).
    #[error("{0}")]
    UnsupportedByBackend(String),
    /// The idempotency key was used with a different request (422).
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// A change whose body is not `Content-Type: application/json` (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than allowed (413).
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// Not ready to serve (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500); the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 422 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error's stable code (`invalid_request`, `unauthorized`, ...).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NameInUse => (StatusCode::CONFLICT, "name_in_use"),
            ApiError::OperationInProgress(_) => (StatusCode::CONFLICT, "operation_in_progress"),
            ApiError::InvalidState(_) => (StatusCode::CONFLICT, "invalid_state"),
            ApiError::DeletionProtected(_) => (StatusCode::CONFLICT, "deletion_protected"),
            ApiError::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            ApiError::UnsupportedByBackend(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_by_backend")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The error body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code (`invalid_request`, `not_found`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field, for `invalid_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The blocking operation, for `operation_in_progress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let detail = ErrorDetail {
            code: code.to_string(),
            message: self.to_string(),
            field: match &self {
                ApiError::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            },
            operation_id: match &self {
                ApiError::OperationInProgress(id) => Some(id.clone()),
                _ => None,
            },
        };
        let mut response = (status, Json(ErrorBody { error: detail })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"toygres\""),
            );
        }
        response
    }
}

/// A request header's value as a refusal may quote it: lossy UTF-8, at most 100 characters.
pub fn quoted(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut shown: String = text.chars().take(100).collect();
    if text.chars().count() > 100 {
        shown.push_str("...");
    }
    shown
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid { field, message } => ApiError::invalid(field, message),
            ServiceError::NameInUse => ApiError::NameInUse,
            ServiceError::NotFound => ApiError::NotFound("not found".into()),
            ServiceError::OperationInProgress(id) => ApiError::OperationInProgress(id),
            ServiceError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ServiceError::InvalidState(message) => ApiError::InvalidState(message),
            ServiceError::DeletionProtected(message) => ApiError::DeletionProtected(message),
            ServiceError::Unavailable(message) => ApiError::Unavailable(message),
            ServiceError::UnsupportedByBackend(message) => ApiError::UnsupportedByBackend(message),
            ServiceError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<toygres_activities::metadata::MetadataError> for ApiError {
    fn from(error: toygres_activities::metadata::MetadataError) -> Self {
        ApiError::Internal(error.to_string())
    }
}
