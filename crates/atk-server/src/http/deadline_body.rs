//! A request body that must have arrived by a deadline (a client that
//! stalls mid-body gets 408, see `extract.rs`), with the timer armed only
//! when the body is still on its way: a verify body arrives with its
//! headers, so it never touches the timer wheel. It is also where the size
//! limit is set: axum's `DefaultBodyLimit` does the same as a layer of its
//! own around every route, a boxed service cloned for every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyDeadlinePassed;

pin_project! {
    pub struct DeadlineBody<B> {
        #[pin]
        body: B,
        deadline: Instant,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<B> DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// `body` as axum's body: unchanged when it is already complete (a
    /// `GET`), else wrapped so that reading it fails after `deadline`, or
    /// past `limit` bytes with the error axum's extractors answer 413 for.
    /// Boxed once, whatever `B` is (hyper's body, in the server).
    pub fn wrap(body: B, deadline: Instant, limit: usize) -> Body {
        if body.is_end_stream() {
            return Body::new(body);
        }
        Body::new(http_body_util::Limited::new(
            Self {
                body,
                deadline,
                timer: None,
            },
            limit,
        ))
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        if this.timer.is_none() {
            this.timer
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(BodyDeadlinePassed)))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::FromRequest;
    use std::time::Duration;

    /// A body that never sends anything.
    struct Stalled;

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_its_deadline_one_already_here_is_read_and_one_too_large_is_413()
     {
        let deadline = Instant::now() + Duration::from_millis(50);
        let stalled = DeadlineBody::wrap(Body::new(Stalled), deadline, 1024);
        let error = axum::body::to_bytes(stalled, 1024).await.unwrap_err();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        let mut found = false;
        while let Some(error) = cause {
            found |= error.is::<BodyDeadlinePassed>();
            cause = error.source();
        }
        assert!(found, "{error:?}");
        assert!(Instant::now() >= deadline);

        let here = DeadlineBody::wrap(Body::from("{\"key\":\"x\"}"), deadline, 1024);
        assert_eq!(
            axum::body::to_bytes(here, 1024).await.unwrap(),
            "{\"key\":\"x\"}"
        );

        let large = DeadlineBody::wrap(Body::from(vec![b'x'; 1025]), deadline, 1024);
        let rejection = axum::body::Bytes::from_request(axum::http::Request::new(large), &())
            .await
            .unwrap_err();
        assert_eq!(
            rejection.status(),
            axum::http::StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
