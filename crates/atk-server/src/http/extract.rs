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

/// A raw body (at most [`super::BODY_LIMIT`] bytes), for a route that
/// must see the bytes as sent (a signature over them).
pub struct ApiBytes(pub Bytes);

/// A query string.
pub struct ApiQuery<T>(pub T);

/// Path parameters.
pub struct ApiPath<T>(pub T);

/// Whether `error`, or anything in its chain of causes, is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Whether reading the body failed because its deadline passed.
fn body_deadline_passed(rejection: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<super::deadline_body::BodyDeadlinePassed>(rejection)
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
        // The usual request (`Content-Type: application/json`) is read
        // here: axum's extractor parses the media type and deserializes
        // through serde_path_to_error, which on a verify cost more than the
        // verification. Any other media type goes through axum's extractor
        // (its rules for what else is JSON, its messages), as a JSON value
        // that is then read like the usual body.
        let bytes = if is_plain_json(request.headers()) {
            ApiBytes::from_request(request, state).await?.0
        } else {
            let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(request, state)
                .await
                .map_err(json_rejected)?;
            serde_json::to_vec(&value)
                .map_err(|error| ApiError::invalid(format!("the body is not valid: {error}")))?
                .into()
        };
        refuse_array(&bytes)?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Self(value)),
            // Parsed again by axum's parser only for its message, which
            // names the field at fault.
            Err(_) => axum::Json::<T>::from_bytes(&bytes)
                .map(|axum::Json(value)| Self(value))
                .map_err(json_rejected),
        }
    }
}

/// Request bodies are JSON objects. serde reads a struct from an array of
/// its fields in order too (`["atk_live_…"]` would pass as a verify
/// request), which the API's schema does not allow. Only that is refused
/// here: anything else that is not an object gets the parser's message.
fn refuse_array(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'[') => Err(ApiError::invalid(
            "cannot deserialize the JSON body: it must be a JSON object, not an array",
        )),
        _ => Ok(()),
    }
}

impl<S> FromRequest<S> for ApiBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        // The frame already limits every body; the limit here keeps this
        // extractor safe on its own.
        read_whole(request.into_body(), super::BODY_LIMIT)
            .await
            .map(Self)
            .map_err(body_unread)
    }
}

/// The whole body, at most `limit` bytes. A body that arrives in one piece
/// (a verify request does, with its headers) is handed on as it came:
/// `axum::body::to_bytes` queued it, then copied it out of the queue.
async fn read_whole(body: axum::body::Body, limit: usize) -> Result<Bytes, axum::Error> {
    use http_body_util::BodyExt;
    let mut body = http_body_util::Limited::new(body, limit);
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        // Trailers are no part of the content.
        let Ok(data) = frame.map_err(axum::Error::new)?.into_data() else {
            continue;
        };
        if first.is_none() && joined.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(first) = first.take() {
            joined.extend_from_slice(&first);
        }
        joined.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| joined.into()))
}

/// `application/json`, alone or with `; charset=utf-8` (any case): what
/// clients send. Every other spelling goes to axum's extractor, which
/// decides what else is JSON.
fn is_plain_json(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.eq_ignore_ascii_case(b"application/json")
            || value.eq_ignore_ascii_case(b"application/json; charset=utf-8")
    })
}

/// Why a body could not be read, as the API answers it: too large (the
/// frame's limit), too slow (its deadline), or broken off.
fn body_unread(error: axum::Error) -> ApiError {
    if caused_by::<http_body_util::LengthLimitError>(&error) {
        ApiError::PayloadTooLarge
    } else if body_deadline_passed(&error) {
        ApiError::RequestTimeout
    } else {
        ApiError::invalid("the request body could not be read")
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
        refuse_array(&bytes)?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|error| ApiError::invalid(format!("the body is not valid: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::body::Body;
    use hyper::body::{Body as HttpBody, Frame};

    use super::*;

    /// A body sent in the given pieces.
    struct Pieces(VecDeque<&'static str>);

    impl HttpBody for Pieces {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|piece| Ok(Frame::data(piece.into()))),
            )
        }
    }

    fn pieces(parts: &[&'static str]) -> Body {
        Body::new(Pieces(parts.iter().copied().collect()))
    }

    #[tokio::test]
    async fn a_body_in_several_pieces_is_read_whole_and_in_order() {
        let body = pieces(&["{\"key\":", "", "\"atk", "\"}"]);
        assert_eq!(read_whole(body, 64).await.unwrap(), "{\"key\":\"atk\"}");
        assert_eq!(read_whole(pieces(&[]), 64).await.unwrap(), "");
        assert_eq!(read_whole(pieces(&["", "{}"]), 64).await.unwrap(), "{}");
    }

    #[tokio::test]
    async fn a_body_in_one_piece_is_handed_on_without_a_copy() {
        let sent = Bytes::from_static(b"{\"key\":\"atk\"}");
        let read = read_whole(Body::from(sent.clone()), 64).await.unwrap();
        assert_eq!(read, sent);
        assert_eq!(read.as_ptr(), sent.as_ptr());
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_refused_as_too_large_however_it_is_cut() {
        for body in [
            Body::from(vec![b'x'; 65]),
            pieces(&[
                "0123456789012345678901234567890123456789",
                "0123456789012345678901234",
            ]),
        ] {
            let error = read_whole(body, 64).await.unwrap_err();
            assert!(matches!(body_unread(error), ApiError::PayloadTooLarge));
        }
        assert_eq!(
            read_whole(Body::from(vec![b'x'; 64]), 64)
                .await
                .unwrap()
                .len(),
            64
        );
    }
}
