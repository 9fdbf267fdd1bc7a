//! The frame around every request, as one service around the router: the
//! request id (the client's, or a new one) on its response and log lines,
//! the body's size limit and deadline, the request's span and response log
//! line, the panic guard, `Cache-Control: no-store`, and the request
//! counter of `/metrics`.
//!
//! These were six tower-http and axum layers, each with its own future
//! around the next; product backends call verify on every request they
//! serve, and on that path the nesting cost more than the work. Then they
//! were one layer on every route (`Router::layer`), which still wrapped
//! each route in a second boxed route, cloned for every request, and had
//! axum note the matched path in every request. Now the frame sits outside
//! the router and names the route itself ([`RouteLabels`]), from the same
//! templates the router was built from.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atk_core::secret::Pepper;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Body as HttpBody;
use pin_project_lite::pin_project;
use tracing::Span;

use super::auth::AdminCredential;
use super::deadline_body::DeadlineBody;
use super::error::ApiError;
use crate::metrics::{HttpLabels, Metrics};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes whose requests are logged at debug level (see [`request_span`]).
const QUIET_ROUTES: [&str; 4] = ["/v1/keys/verify", "/healthz", "/readyz", "/metrics"];

/// What a request that matches no route is counted and logged as.
const UNMATCHED: &str = "unmatched";

/// The route templates the router was built from, to name each request's
/// route in metrics and logs (never the concrete path, which holds ids).
#[derive(Debug)]
pub struct RouteLabels(matchit::Router<&'static str>);

impl RouteLabels {
    /// `templates` in the router's syntax (`/v1/projects/{project_id}`).
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut labels = matchit::Router::new();
        for template in templates {
            // Each template is stored once for the process; the set is the
            // router's, fixed at start.
            let label = crate::metrics::route_label(template);
            labels
                .insert(label, label)
                .unwrap_or_else(|error| panic!("route template {template}: {error}"));
        }
        Self(labels)
    }

    /// The template `path` matches, or `unmatched`.
    pub fn label(&self, path: &str) -> &'static str {
        self.0.at(path).map_or(UNMATCHED, |matched| *matched.value)
    }
}

/// The router inside the frame.
#[derive(Debug, Clone)]
pub struct Frame<S> {
    inner: S,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    ids: RequestIds,
    metrics: Arc<Metrics>,
    admin: AdminCredential,
    pepper: Pepper,
    body_timeout: Duration,
    routes: RouteLabels,
    hot: Vec<HotRoute>,
}

/// The future of a route the frame serves itself (see [`HotRoute`]).
pub type HotFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A route the frame answers itself, without the router's lookup and the
/// boxed route it clones for every request: verify, which product backends
/// call on every request they serve, and `/healthz`, which load balancers
/// call constantly. Its path is a fixed one, so the frame tells it by
/// comparing the path, before any template lookup. The router keeps the
/// route too (the OpenAPI document, and any request the frame does not
/// take), and both call the same handler, so both answer alike. One
/// difference shows only in process: axum's router writes `Content-Length`,
/// which hyper writes on the wire for both.
pub struct HotRoute {
    /// One of the router's templates, without parameters (checked when the
    /// frame is built).
    pub template: &'static str,
    pub method: Method,
    pub answer: Box<dyn Fn(Request) -> HotFuture + Send + Sync>,
}

impl std::fmt::Debug for HotRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotRoute")
            .field("template", &self.template)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl<S> Frame<S> {
    /// `admin` and `pepper` tell a client's request id that is the admin
    /// token from one that may be logged; a request body must have
    /// arrived `body_timeout` after the request started.
    pub fn new(
        inner: S,
        routes: RouteLabels,
        metrics: Arc<Metrics>,
        admin: AdminCredential,
        pepper: Pepper,
        body_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                ids: RequestIds::new(),
                metrics,
                admin,
                pepper,
                body_timeout,
                routes,
                hot: Vec::new(),
            }),
        }
    }

    /// This frame, answering `hot` itself too.
    ///
    /// # Panics
    /// When `hot`'s template is not one of the router's or has a parameter,
    /// a mistake in how the server is put together: the route would never
    /// be taken, or only for one value of its parameter.
    pub fn with_hot_route(self, hot: HotRoute) -> Self {
        let mut shared =
            Arc::into_inner(self.shared).expect("the frame is set up before it is cloned");
        assert_eq!(
            shared.routes.label(hot.template),
            hot.template,
            "the hot route is one of the router's"
        );
        assert!(!hot.template.contains('{'), "a hot route's path is fixed");
        assert!(
            !shared
                .hot
                .iter()
                .any(|other| other.template == hot.template && other.method == hot.method),
            "a hot route is added once"
        );
        shared.hot.push(hot);
        Self {
            inner: self.inner,
            shared: Arc::new(shared),
        }
    }
}

impl<S, B> tower::Service<axum::http::Request<B>> for Frame<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FrameFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + self.shared.body_timeout;
        let request = request.map(|body| DeadlineBody::wrap(body, deadline, super::BODY_LIMIT));
        // A new id goes only to the log and the response: nothing reads it
        // from the request, and writing it there cost a header insert and
        // a shared copy of its bytes.
        let request_id = match request.headers().get(REQUEST_ID) {
            Some(id) => RequestId::Client(id.clone()),
            None => RequestId::New(self.shared.ids.next()),
        };
        let path = request.uri().path();
        let hot = self
            .shared
            .hot
            .iter()
            .find(|hot| hot.template == path && hot.method == *request.method());
        let route = hot.map_or_else(|| self.shared.routes.label(path), |hot| hot.template);
        let method = crate::metrics::method_label(request.method());
        let span = request_span(
            request.method(),
            route,
            &request_id,
            &self.shared.admin,
            &self.shared.pepper,
        );
        let inner = {
            let _entered = span.enter();
            match hot {
                Some(hot) => Routed::Hot {
                    future: (hot.answer)(request),
                },
                None => Routed::Router {
                    future: self.inner.call(request),
                },
            }
        };
        FrameFuture {
            inner,
            span,
            started,
            request_id: Some(request_id.into_value()),
            route,
            method,
            metrics: self.shared.metrics.clone(),
        }
    }
}

pin_project! {
    /// The answer of the router, or of the hot route.
    #[project = RoutedProjection]
    pub enum Routed<F> {
        Router { #[pin] future: F },
        Hot { future: HotFuture },
    }
}

impl<F> Future for Routed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RoutedProjection::Router { future } => future.poll(cx),
            RoutedProjection::Hot { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

pin_project! {
    /// A route's answer, then the frame's bookkeeping.
    pub struct FrameFuture<F> {
        #[pin]
        inner: Routed<F>,
        span: Span,
        started: Instant,
        request_id: Option<HeaderValue>,
        route: &'static str,
        method: &'static str,
        metrics: Arc<Metrics>,
    }
}

impl<F> Future for FrameFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let inner = this.inner;
        // A handler's panic becomes a 500 in the SPEC's error shape; the
        // panic hook has already written what happened. The future is not
        // polled again after it, since this one is then ready.
        let mut response = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(response))) => response,
            Ok(Poll::Ready(Err(never))) => match never {},
            Err(_) => {
                tracing::error!("a request handler panicked");
                ApiError::Internal("a request handler panicked".into()).into_response()
            }
        };
        let headers = response.headers_mut();
        // Nothing this API returns belongs in a shared cache; the create
        // and rotate responses hold a secret.
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        if let Some(id) = this.request_id.take() {
            headers.entry(REQUEST_ID).or_insert(id);
        }
        let status = response.status();
        this.metrics.http_requests.count(HttpLabels {
            route: this.route,
            method: this.method,
            status: status.as_u16(),
        });
        log_response(
            status.as_u16(),
            this.started.elapsed(),
            this.span,
            this.route,
            this.method,
        );
        Poll::Ready(Ok(response))
    }
}

/// The span every log line of a request carries. It names the route
/// template, never the concrete path or query, so nothing a client put in
/// the URL is logged.
fn request_span(
    method: &Method,
    route: &str,
    request_id: &RequestId,
    admin: &AdminCredential,
    pepper: &Pepper,
) -> Span {
    // Verifications are the product backends' hot path: their outcomes go
    // to `/metrics`, and their lines to the debug level only, so a busy
    // node does not spend its time writing one line per verification.
    // Probes and scrapes come every few seconds and say nothing new.
    let quiet = QUIET_ROUTES.contains(&route);
    if quiet && !tracing::enabled!(tracing::Level::DEBUG) {
        return Span::none();
    }
    // A client may send its own request id; it is logged only when it is
    // short and is no secret: not key-shaped, and not the admin token
    // (which an operator may have configured without the `atk_` prefix).
    let request_id = match request_id {
        RequestId::New(id) => id.to_str().ok(),
        RequestId::Client(id) => id.to_str().ok().filter(|id| {
            id.len() <= 64 && !atk_core::secret::looks_like_secret(id) && !admin.matches(pepper, id)
        }),
    }
    .unwrap_or("-");
    if quiet {
        return tracing::debug_span!("request", %method, route, request_id);
    }
    tracing::info_span!("request", %method, route, request_id)
}

fn log_response(
    status: u16,
    latency: Duration,
    span: &Span,
    route: &'static str,
    method: &'static str,
) {
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    match (status >= 500, span.is_disabled()) {
        // A quiet route's span is off below the debug level: its failure
        // line names the route itself, so it can still be told apart.
        (true, true) => tracing::error!(status, latency_us, route, method, "response failed"),
        (true, false) => tracing::error!(status, latency_us, "response failed"),
        // A disabled span is a quiet route's below the debug level: its
        // line is written only when debug is on.
        (false, true) => tracing::debug!(status, latency_us, "response"),
        (false, false) => tracing::info!(status, latency_us, "response"),
    }
}

/// The request's id: the client's own (`x-request-id`), or a new one.
enum RequestId {
    Client(HeaderValue),
    New(HeaderValue),
}

impl RequestId {
    fn into_value(self) -> HeaderValue {
        match self {
            Self::Client(id) | Self::New(id) => id,
        }
    }
}

/// Request ids only need to be unique, not unguessable: a random prefix per
/// process and a counter, so no request pays for a trip to the OS random
/// source.
#[derive(Debug)]
struct RequestIds {
    prefix: [u8; PREFIX_LEN],
    next: AtomicU64,
}

const PREFIX_LEN: usize = 8;

impl RequestIds {
    fn new() -> Self {
        let mut prefix = [0; PREFIX_LEN];
        prefix.copy_from_slice(atk_core::secret::random_base62(PREFIX_LEN).as_bytes());
        Self {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// `prefix-counter`, the counter in hex. Written on the stack: going
    /// through `format!` cost more than the rest of the frame.
    fn next(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0; PREFIX_LEN + 1 + 16];
        id[..PREFIX_LEN].copy_from_slice(&self.prefix);
        id[PREFIX_LEN] = b'-';
        let digits = (u64::BITS - n.leading_zeros()).div_ceil(4).max(1) as usize;
        for (i, digit) in id[PREFIX_LEN + 1..][..digits].iter_mut().enumerate() {
            *digit = HEX[((n >> (4 * (digits - 1 - i))) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&id[..PREFIX_LEN + 1 + digits])
            .expect("base62 and hex digits are a valid header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atk_core::secret::SecretHash;
    use tower::ServiceExt;

    fn frame<S>(inner: S) -> Frame<S> {
        Frame::new(
            inner,
            RouteLabels::new(["/healthz", "/v1/keys/verify", "/v1/projects/{project_id}"]),
            Arc::new(Metrics::new()),
            AdminCredential::from_hash(SecretHash([7; 32])),
            Pepper::from_bytes(&[9; 32]).unwrap(),
            Duration::from_secs(10),
        )
    }

    fn answering(text: &'static str) -> HotRoute {
        answering_on(Method::POST, "/healthz", text)
    }

    fn answering_on(method: Method, template: &str, text: &'static str) -> HotRoute {
        HotRoute {
            template: crate::metrics::route_label(template),
            method,
            answer: Box::new(move |_| Box::pin(async move { text.into_response() })),
        }
    }

    async fn text_of(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_hot_route_is_answered_by_the_frame_and_everything_else_by_the_router() {
        let router = tower::service_fn(|_: Request| async {
            Ok::<Response, Infallible>("router".into_response())
        });
        let framed = frame(router)
            .with_hot_route(answering("hot"))
            .with_hot_route(answering_on(Method::GET, "/v1/keys/verify", "second"));
        for (method, path, expected) in [
            (Method::POST, "/healthz", "hot"),
            (Method::POST, "/healthz?probe=1", "hot"),
            (Method::GET, "/v1/keys/verify", "second"),
            (Method::GET, "/healthz", "router"),
            (Method::POST, "/v1/keys/verify", "router"),
            (Method::POST, "/healthz/", "router"),
            (Method::POST, "/elsewhere", "router"),
        ] {
            let request = axum::http::Request::builder()
                .method(method.clone())
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = framed.clone().oneshot(request).await.unwrap();
            assert!(response.headers().contains_key("x-request-id"));
            assert_eq!(text_of(response).await, expected, "{method} {path}");
        }
    }

    #[test]
    #[should_panic(expected = "the hot route is one of the router's")]
    fn a_hot_route_the_router_does_not_have_is_refused_at_start() {
        let router = tower::service_fn(|_: Request| async {
            Ok::<Response, Infallible>(Response::default())
        });
        let mut stray = answering("hot");
        stray.template = "/v1/keys/rotate";
        let _ = frame(router).with_hot_route(stray);
    }

    #[test]
    #[should_panic(expected = "a hot route is added once")]
    fn the_same_hot_route_twice_is_refused_at_start() {
        let router = tower::service_fn(|_: Request| async {
            Ok::<Response, Infallible>(Response::default())
        });
        let _ = frame(router)
            .with_hot_route(answering("first"))
            .with_hot_route(answering("second"));
    }

    #[test]
    #[should_panic(expected = "a hot route's path is fixed")]
    fn a_hot_route_with_a_parameter_is_refused_at_start() {
        let router = tower::service_fn(|_: Request| async {
            Ok::<Response, Infallible>(Response::default())
        });
        let _ = frame(router).with_hot_route(answering_on(
            Method::GET,
            "/v1/projects/{project_id}",
            "hot",
        ));
    }

    #[test]
    fn requests_are_named_by_the_template_they_match_and_others_are_unmatched() {
        let labels = RouteLabels::new([
            "/v1/projects/{project_id}/keys",
            "/v1/projects/{project_id}/keys/{key_id}",
            "/console/projects/{project_id}/keys/new",
            "/console/projects/{project_id}/keys/{key_id}",
            "/console",
        ]);
        assert_eq!(
            labels.label("/v1/projects/p1/keys"),
            "/v1/projects/{project_id}/keys"
        );
        assert_eq!(
            labels.label("/v1/projects/p1/keys/key_1"),
            "/v1/projects/{project_id}/keys/{key_id}"
        );
        assert_eq!(
            labels.label("/console/projects/p1/keys/new"),
            "/console/projects/{project_id}/keys/new"
        );
        assert_eq!(
            labels.label("/console/projects/p1/keys/key_1"),
            "/console/projects/{project_id}/keys/{key_id}"
        );
        assert_eq!(labels.label("/console"), "/console");
        for unknown in ["/", "/v1/projects", "/v1/projects/p1/keys/k/x", "/nope", ""] {
            assert_eq!(labels.label(unknown), UNMATCHED, "{unknown}");
        }
    }

    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex() {
        let ids = RequestIds::new();
        let prefix = std::str::from_utf8(&ids.prefix).unwrap().to_owned();
        assert_eq!(ids.next(), format!("{prefix}-1").as_str());
        ids.next.store(0xabc, Ordering::Relaxed);
        assert_eq!(ids.next(), format!("{prefix}-abc").as_str());
        ids.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(ids.next(), format!("{prefix}-ffffffffffffffff").as_str());
        assert_eq!(ids.next(), format!("{prefix}-0").as_str());
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_shape_with_the_frames_headers() {
        let route = tower::service_fn(|_: Request| async {
            if true {
                panic!("boom");
            }
            Ok::<Response, Infallible>(Response::default())
        });
        let response = frame(route)
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(response.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal", "{body}");
    }
}
