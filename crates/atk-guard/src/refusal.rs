//! Why a guarded request is refused, and the response that says so in
//! the SPEC error shape.

use atk_api::VerifyCode;
use atk_api::error::{ErrorBody, ErrorCode, ErrorDetail};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No key in the request: 401.
    MissingKey,
    /// Not the secret's shape or checksum, found without a call: 401.
    Malformed,
    /// Verify refused the key for this action: 401, 403 or 429 by code.
    Denied {
        code: VerifyCode,
        missing_scopes: Vec<String>,
    },
    /// The key service asked this backend to slow down: 429.
    RateLimited { retry_after_seconds: Option<u64> },
    /// The key service could not be asked in time: 503 (fail closed).
    Unreachable(String),
    /// The guard is set up wrong (an action outside the catalog, or the
    /// extractor on a route without the layer): 500.
    Misconfigured(String),
    /// The [`crate::Verified`] extractor on a route without the layer.
    NotGuarded,
}

impl Refusal {
    pub(crate) fn from_client_error(error: atk_client::Error) -> Self {
        match error {
            atk_client::Error::Api {
                code: ErrorCode::RateLimited,
                retry_after_seconds,
                ..
            } => Self::RateLimited {
                retry_after_seconds,
            },
            atk_client::Error::Api {
                code: ErrorCode::InvalidRequest,
                message,
                ..
            } => Self::Misconfigured(message),
            other => Self::Unreachable(other.to_string()),
        }
    }

    /// The status this refusal is answered with.
    ///
    /// ```
    /// use atk_guard::Refusal;
    /// assert_eq!(Refusal::Malformed.status(), 401);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::Malformed => StatusCode::UNAUTHORIZED,
            Self::Denied { code, .. } => match code {
                VerifyCode::Malformed
                | VerifyCode::NotFound
                | VerifyCode::Revoked
                | VerifyCode::Expired => StatusCode::UNAUTHORIZED,
                VerifyCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                VerifyCode::ForbiddenIp
                | VerifyCode::BrowserOriginBlocked
                | VerifyCode::ScopeMissing
                | VerifyCode::EntitlementDisabled
                | VerifyCode::EntitlementUpgradeRequired
                | VerifyCode::EntitlementTrialEnded => StatusCode::FORBIDDEN,
                // Not refused: verify says allowed with OK. Kept total.
                VerifyCode::Ok => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured(_) | Self::NotGuarded => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorDetail {
        let status = self.status();
        let code = match status {
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        let (message, details) = match self {
            Self::MissingKey => (
                "an API key is required: Authorization: Bearer <key>".to_owned(),
                json!({}),
            ),
            Self::Malformed => (
                "the API key is not a valid key (shape or checksum)".to_owned(),
                json!({ "verify_code": VerifyCode::Malformed.as_str() }),
            ),
            Self::Denied {
                code,
                missing_scopes,
            } => (
                format!("the API key may not do this: {}", code.as_str()),
                if missing_scopes.is_empty() {
                    json!({ "verify_code": code.as_str() })
                } else {
                    json!({ "verify_code": code.as_str(), "missing_scopes": missing_scopes })
                },
            ),
            Self::RateLimited { .. } => (
                "too many requests; retry later".to_owned(),
                json!({ "verify_code": VerifyCode::RateLimited.as_str() }),
            ),
            // The cause is logged, not shown: it may name internal hosts.
            Self::Unreachable(_) => (
                "the API key cannot be checked right now; retry shortly".to_owned(),
                json!({}),
            ),
            Self::Misconfigured(_) | Self::NotGuarded => (
                "this route's key check is set up wrong; the server log has the details".to_owned(),
                json!({}),
            ),
        };
        ErrorDetail {
            code,
            message,
            details,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match &self {
            Self::Unreachable(cause) => {
                tracing::warn!(%cause, "refusing a request: the key service cannot be asked");
            }
            Self::Misconfigured(cause) => {
                tracing::error!(%cause, "refusing a request: the key guard is set up wrong");
            }
            Self::NotGuarded => tracing::error!(
                "a handler takes atk_guard::Verified on a route without KeyGuard::require"
            ),
            _ => {}
        }
        let status = self.status();
        let mut response = (status, Json(ErrorBody { error: self.body() })).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::RateLimited {
            retry_after_seconds: Some(seconds),
        } = self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verify_code_maps_to_the_status_the_guard_promises() {
        let status = |code| {
            Refusal::Denied {
                code,
                missing_scopes: Vec::new(),
            }
            .status()
        };
        for code in [
            VerifyCode::Malformed,
            VerifyCode::NotFound,
            VerifyCode::Revoked,
            VerifyCode::Expired,
        ] {
            assert_eq!(status(code), StatusCode::UNAUTHORIZED, "{code:?}");
        }
        for code in [
            VerifyCode::ForbiddenIp,
            VerifyCode::BrowserOriginBlocked,
            VerifyCode::ScopeMissing,
            VerifyCode::EntitlementDisabled,
            VerifyCode::EntitlementUpgradeRequired,
            VerifyCode::EntitlementTrialEnded,
        ] {
            assert_eq!(status(code), StatusCode::FORBIDDEN, "{code:?}");
        }
        assert_eq!(
            status(VerifyCode::RateLimited),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            Refusal::Unreachable("down".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
