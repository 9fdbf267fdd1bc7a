//! The one HTTP error type. Each variant maps to one SPEC error code and
//! status; internal causes are logged with their whole chain and never shown.

use atk_core::limits::LimitError;
use atk_core::policy::{Confirmation, PolicyError};
use atk_core::secret::redact_secrets;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use atk_api::error::{ErrorBody, ErrorCode, ErrorDetail};

use crate::service::ServiceError;
use crate::verifier::VerifyError;

#[derive(Debug)]
pub enum ApiError {
    InvalidRequest {
        message: String,
        details: Value,
    },
    Unauthorized,
    /// A signed report whose signature does not verify: 401.
    SignatureRefused,
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    ConfirmationRequired(Vec<Confirmation>),
    ScopeNotAllowed {
        message: String,
        scopes: Vec<String>,
    },
    PayloadTooLarge,
    /// The body did not arrive within the body deadline: 408, and the
    /// connection is closed.
    RequestTimeout,
    RateLimited(String),
    /// Too many failures from one address: 429 with `Retry-After`.
    TooManyFailures {
        retry_after_seconds: u64,
    },
    /// The database is unreachable: 503 with `Retry-After`.
    StoreUnavailable,
    /// The cause goes to the log; the client sees a generic message.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// The error answers every management route can give, for the OpenAPI
/// document; routes add their own (409, 413, 422) beside these.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
pub enum ManagementErrors {
    /// Invalid request: a malformed id, an unknown field, a bad value
    #[response(status = 400)]
    InvalidRequest(#[to_schema] ErrorBody),
    /// No valid credential
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// The credential may not do this
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
    /// No such project or resource (another project's look the same)
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            details: json!({}),
        }
    }

    fn parts(&self) -> (StatusCode, ErrorCode, String, Value) {
        match self {
            Self::InvalidRequest { message, details } => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                message.clone(),
                details.clone(),
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "a valid credential is required: Authorization: Bearer <admin token or service role key>"
                    .into(),
                json!({}),
            ),
            Self::SignatureRefused => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "the report's signature does not verify with a configured secret-scanning key".into(),
                json!({}),
            ),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, message.clone(), json!({})),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, message.clone(), json!({})),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidRequest,
                "this path does not accept that method".into(),
                json!({}),
            ),
            Self::Conflict(message) => (StatusCode::CONFLICT, ErrorCode::Conflict, message.clone(), json!({})),
            Self::ConfirmationRequired(missing) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ConfirmationRequired,
                "required safety confirmations are missing".into(),
                json!({ "missing": missing }),
            ),
            Self::ScopeNotAllowed { message, scopes } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ScopeNotAllowed,
                message.clone(),
                json!({ "scopes": scopes }),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("request bodies are limited to {} bytes", super::BODY_LIMIT),
                json!({ "limit_bytes": super::BODY_LIMIT }),
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                "the request body did not arrive in time".into(),
                json!({}),
            ),
            Self::RateLimited(message) => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                message.clone(),
                json!({}),
            ),
            Self::TooManyFailures {
                retry_after_seconds,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "too many failed attempts from this address; retry after {retry_after_seconds} s"
                ),
                json!({ "retry_after_seconds": retry_after_seconds }),
            ),
            Self::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the database cannot be reached right now; retry shortly".into(),
                json!({}),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; the server log has the details".into(),
                json!({}),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            // `{:?}` of the boxed error prints its source chain.
            tracing::error!(error = ?cause, "internal error");
        }
        let retry_after = match &self {
            Self::TooManyFailures {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            Self::StoreUnavailable => Some(1),
            _ => None,
        };
        let (status, code, message, details) = self.parts();
        // Messages and details may quote client input; never echo anything
        // secret-shaped.
        let message = redact_secrets(&message).into_owned();
        let details = redact_strings(details);
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code,
                    message,
                    details,
                },
            }),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a stalled body is never read: the connection
            // cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn redact_strings(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(redact_secrets(&text).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_strings).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| (name, redact_strings(value)))
                .collect(),
        ),
        other => other,
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidRequest(message) => Self::invalid(message),
            ServiceError::InvalidField(error) => Self::InvalidRequest {
                details: json!({ "field": error.field }),
                message: error.message,
            },
            ServiceError::Forbidden(message) => Self::Forbidden(message.into()),
            ServiceError::InvalidCredentials => Self::Unauthorized,
            ServiceError::RateLimited(message) => Self::RateLimited(message),
            ServiceError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            ServiceError::Conflict(message) => Self::Conflict(message),
            ServiceError::Policy(policy) => policy.into(),
            ServiceError::Unavailable(message) => Self::Internal(message.into()),
            ServiceError::Store(store) => store.into(),
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(error: PolicyError) -> Self {
        let message = error.to_string();
        match error {
            PolicyError::UnknownScopes(scopes) => Self::InvalidRequest {
                message,
                details: json!({ "unknown_scopes": scopes }),
            },
            PolicyError::ScopesNotAllowed { scopes, .. } => {
                Self::ScopeNotAllowed { message, scopes }
            }
            PolicyError::NoScopes(_) => Self::ScopeNotAllowed {
                message,
                scopes: Vec::new(),
            },
            PolicyError::MissingConfirmations(missing) => Self::ConfirmationRequired(missing),
            PolicyError::Limit(LimitError::Requests | LimitError::Seconds) => {
                Self::InvalidRequest {
                    message,
                    details: json!({ "field": "rate_limit" }),
                }
            }
            PolicyError::Limit(_) | PolicyError::AllowlistNotForKind(_) => Self::InvalidRequest {
                message,
                details: json!({ "field": "allowed_ips" }),
            },
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::UnknownAction => Self::invalid(error.to_string()),
            VerifyError::Store(store) => store.into(),
        }
    }
}

impl From<atk_store::StoreError> for ApiError {
    fn from(error: atk_store::StoreError) -> Self {
        match error {
            atk_store::StoreError::Unavailable(cause) => {
                // The breaker logs the outage once; this is per request.
                tracing::debug!(%cause, "answering 503: the database is unreachable");
                Self::StoreUnavailable
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}
