//! The client's one error type.

use atk_api::error::{ErrorBody, ErrorCode};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Repeat;

/// Why a call did not return its answer.
///
/// ```no_run
/// use atk_client::{Error, api::error::ErrorCode};
///
/// # async fn run(client: atk_client::Client) -> Result<(), Error> {
/// match client.get_key("project_shop", "key_…").await {
///     Ok(key) => println!("{:?}", key.status),
///     Err(Error::Api { code: ErrorCode::NotFound, .. }) => println!("no such key"),
///     Err(Error::Timeout | Error::Transport { .. }) => println!("try again later"),
///     Err(other) => return Err(other),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service refused the call with the SPEC error shape.
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status (400, 401, 403, 404, 409, 413, 422, 429, 503, …).
        status: u16,
        /// The SPEC error code, for matching.
        code: ErrorCode,
        message: String,
        details: Value,
        /// Seconds the service asked to wait (`Retry-After`), if it did.
        retry_after_seconds: Option<u64>,
    },
    /// The attempt took longer than the client's timeout.
    #[error("the key service did not answer in time")]
    Timeout,
    /// The service could not be reached, or the connection broke.
    #[error("cannot reach the key service: {message}")]
    Transport {
        message: String,
        /// The connection was never opened: nothing was sent.
        unsent: bool,
    },
    /// An answer that is not what the API documents (a proxy's error page,
    /// a different service at that address).
    #[error("unexpected answer from the key service ({status}): {message}")]
    Unexpected { status: u16, message: String },
    /// The base address given to the builder is not usable.
    #[error("invalid base URL {0}")]
    InvalidUrl(String),
}

impl Error {
    pub(crate) fn transport(error: reqwest::Error) -> Self {
        // A connect timeout sent nothing: it is an unsent transport error
        // (safe to retry for any call), not a timeout of a sent request.
        if error.is_timeout() && !error.is_connect() {
            return Self::Timeout;
        }
        // reqwest's Display names the URL, never a header, so no credential.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport {
            unsent: error.is_connect(),
            message,
        }
    }

    /// The SPEC error code of a refusal, if this is one.
    ///
    /// ```
    /// use atk_client::{Error, api::error::ErrorCode};
    /// let error = Error::Timeout;
    /// assert_eq!(error.code(), None);
    /// ```
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether a call that failed this way may be sent again.
    pub(crate) fn may_retry(&self, repeat: Repeat) -> bool {
        match self {
            Self::Transport { unsent: true, .. } => true,
            Self::Transport { unsent: false, .. } | Self::Timeout => repeat == Repeat::Safe,
            Self::Api { status, .. } | Self::Unexpected { status, .. } => {
                repeat == Repeat::Safe && matches!(*status, 502..=504)
            }
            Self::InvalidUrl(_) => false,
        }
    }
}

/// The body of a successful answer, or the error it carries.
pub(crate) async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, Error> {
    let status = response.status();
    let retry_after_seconds = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    let bytes = response.bytes().await.map_err(Error::transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|error| Error::Unexpected {
            status: status.as_u16(),
            message: format!("the body does not match the API: {error}"),
        });
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => Err(Error::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
            details: body.error.details,
            retry_after_seconds,
        }),
        Err(_) => Err(Error::Unexpected {
            status: status.as_u16(),
            message: status
                .canonical_reason()
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR.as_str())
                .to_owned(),
        }),
    }
}
