//! The HTTP API. Each resource module owns its routes, request and response
//! types and handlers; this module merges them over one [`AppState`] and
//! wraps them in the shared middleware (request id, tracing, body limit,
//! panic guard, `Cache-Control`).

mod audit;
pub mod auth;
mod catalog;
pub mod connections;
pub mod console;
pub mod error;
mod extract;
mod health;
mod help;
mod keys;
pub mod openapi;
mod projects;
mod secret_scanning;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use atk_core::secret::Pepper;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa_axum::router::OpenApiRouter;

use crate::service::{Accounts, Service};
use crate::verifier::Verifier;
use auth::AdminCredential;
use error::ApiError;

/// Largest request body accepted (SPEC: 64 KiB); larger bodies get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares. Cloned for every request (axum clones the
/// handler with its state), so it is one `Arc`: a clone is one atomic add,
/// not one per field.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub struct Shared {
    pub service: Arc<Service>,
    pub accounts: Arc<Accounts>,
    pub verifier: Arc<Verifier>,
    pub help_gaps: Arc<crate::service::HelpGaps>,
    pub address_limits: Arc<crate::limiter::AddressLimits>,
    pub admin: AdminCredential,
    pub console: console::ConsoleSettings,
    pub help: Arc<crate::help::Help>,
    /// The secret-scanning partner's public keys (`--secret-scanning-keys`).
    pub scanning_keys: Arc<crate::service::leaks::ScanningKeys>,
}

/// Every route, with its OpenAPI document. Routes are only ever added through
/// `routes!` here, so a route cannot exist without being documented.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(health::router())
        .merge(catalog::router())
        .merge(projects::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(verify::router())
        .merge(secret_scanning::router())
        .merge(help::router())
        .merge(openapi::router())
}

/// Every route with the middleware stack; a request body must arrive
/// within `body_timeout` (a client that stalls mid-body gets 408).
pub fn router(state: AppState, body_timeout: Duration) -> Router {
    let (router, _) = api_router().split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    let (admin, pepper) = (state.admin.clone(), state.service.pepper().clone());
    router
        .nest(console::paths::HOME, console::router())
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to(console::paths::HOME) }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.verifier.metrics_handle(),
            count_request,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyDeadlineLayer::new(body_timeout))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    request_id.clone(),
                    RequestIds::new(),
                ))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(move |request: &Request| {
                            request_span(request, &admin, &pepper)
                        })
                        .on_response(log_response),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(|_panic| {
                    ApiError::Internal("a request handler panicked".into()).into_response()
                }))
                // Nothing this API returns belongs in a shared cache; the
                // create and rotate responses hold a secret.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )),
        )
        .with_state(state)
}

/// Counts each answered request by route template, method and status.
/// The labels are static strings, so counting allocates nothing.
async fn count_request(
    axum::extract::State(metrics): axum::extract::State<Arc<crate::metrics::Metrics>>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| {
            crate::metrics::route_label(path.as_str())
        });
    let method = crate::metrics::method_label(request.method());
    let response = next.run(request).await;
    metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The span every log line of a request carries. It names the route
/// template, never the concrete path or query, so nothing a client put in
/// the URL is logged.
fn request_span(request: &Request, admin: &AdminCredential, pepper: &Pepper) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    // A client may send its own request id; it is logged only when it is
    // short and is no secret: not key-shaped, and not the admin token
    // (which an operator may have configured without the `atk_` prefix).
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            id.len() <= 64 && !atk_core::secret::looks_like_secret(id) && !admin.matches(pepper, id)
        })
        .unwrap_or("-");
    // Verifications are the product backends' hot path: their outcomes go
    // to `/metrics`, and their lines to the debug level only, so a busy
    // node does not spend its time writing one line per verification.
    // Probes and scrapes come every few seconds and say nothing new.
    if QUIET_ROUTES.contains(&route) {
        return tracing::debug_span!("request", method = %request.method(), route, request_id);
    }
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

/// Routes whose requests are logged at debug level (see `request_span`).
const QUIET_ROUTES: [&str; 4] = ["/v1/keys/verify", "/healthz", "/readyz", "/metrics"];

fn log_response<B>(response: &axum::http::Response<B>, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    // A disabled span is a verification's below the debug level: its line
    // is written only when debug is on. Failures are always logged.
    if span.is_disabled() && status < 500 {
        tracing::debug!(status, latency_us, "response");
    } else {
        tracing::info!(status, latency_us, "response");
    }
}

/// Request ids only need to be unique, not unguessable: a random prefix per
/// process and a counter, so no request pays for a trip to the OS random
/// source.
#[derive(Debug, Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: atk_core::secret::random_base62(8).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:x}", self.prefix);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}
