//! Extractors that answer bad input in the SPEC error shape: axum's own
//! extractors, with their rejections mapped onto [`ApiError`].

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body (`Content-Type: application/json`, at most
/// [`super::BODY_LIMIT`] bytes) whose fields must all be known.
pub struct ApiJson<T>(pub T);

/// A JSON body that may be left out entirely (an empty body means
/// `T::default()`), for actions whose fields are all optional.
pub struct OptionalJson<T>(pub T);

/// A query string.
pub struct ApiQuery<T>(pub T);

/// Path parameters.
pub struct ApiPath<T>(pub T);

/// Whether reading the body failed because its deadline passed.
fn body_deadline_passed(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(rejection);
    while let Some(error) = cause {
        if error.is::<super::deadline_body::BodyDeadlinePassed>() {
            return true;
        }
        cause = error.source();
    }
    false
}

fn json_rejected(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    if body_deadline_passed(&rejection) {
        return ApiError::RequestTimeout;
    }
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON with Content-Type: application/json".to_owned()
        }
        JsonRejection::JsonSyntaxError(_) => {
            format!("the body is not valid JSON: {}", rejection.body_text())
        }
        _ => rejection.body_text(),
    };
    ApiError::invalid(message)
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(request, state)
            .await
            .map(|axum::Json(value)| Self(value))
            .map_err(json_rejected)
    }
}

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| ApiError::invalid(rejection.body_text()))
    }
}

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection: PathRejection| ApiError::invalid(rejection.body_text()))
    }
}

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else if body_deadline_passed(&rejection) {
                    ApiError::RequestTimeout
                } else {
                    ApiError::invalid(rejection.body_text())
                }
            })?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if !is_json {
            return Err(ApiError::invalid(
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|error| ApiError::invalid(format!("the body is not valid: {error}")))
    }
}
