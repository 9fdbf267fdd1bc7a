//! The HTTP API. Each resource module owns its routes, request and response
//! types and handlers; this module merges them over one [`AppState`] and
//! wraps them in the shared middleware (request id, tracing, body limit,
//! panic guard, `Cache-Control`).

mod audit;
pub mod auth;
mod catalog;
pub mod connections;
pub mod console;
mod deadline_body;
pub mod error;
mod extract;
mod frame;
mod health;
mod help;
mod keys;
pub mod openapi;
mod projects;
mod secret_scanning;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
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

/// Every route inside the frame (the middleware stack, see [`frame`]); a
/// request body must arrive within `body_timeout` (a client that stalls
/// mid-body gets 408).
pub fn router(state: AppState, body_timeout: Duration) -> Framed {
    let (router, openapi) = api_router().split_for_parts();
    let metrics = state.verifier.metrics_handle();
    let admin = state.admin.clone();
    let pepper = state.service.pepper().clone();
    let console_templates: Vec<String> = console::templates()
        .map(|template| match template {
            "/" => console::paths::HOME.to_owned(),
            _ => format!("{}{template}", console::paths::HOME),
        })
        .collect();
    let routes = frame::RouteLabels::new(
        openapi
            .paths
            .paths
            .keys()
            .map(String::as_str)
            .chain(console_templates.iter().map(String::as_str))
            .chain([ROOT]),
    );
    let router = router
        .nest(console::paths::HOME, console::router())
        .route(
            ROOT,
            axum::routing::get(|| async { axum::response::Redirect::to(console::paths::HOME) }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state.clone());
    let verify = frame::HotRoute {
        template: crate::metrics::route_label(verify::PATH),
        method: axum::http::Method::POST,
        answer: Box::new(move |request| {
            axum::handler::Handler::call(verify::verify_key, request, state.clone())
        }),
    };
    let healthz = frame::HotRoute {
        template: crate::metrics::route_label(health::PATH),
        method: axum::http::Method::GET,
        answer: Box::new(|_| Box::pin(health::healthz())),
    };
    frame::Frame::new(router, routes, metrics, admin, pepper, body_timeout)
        .with_hot_route(verify)
        .with_hot_route(healthz)
}

/// The root, which sends people to the console.
const ROOT: &str = "/";

/// Every route in its frame, as the server serves them.
pub type Framed = frame::Frame<Router>;

/// A `200` with `body`, already JSON, as its content. Built as it goes out:
/// a string or byte answer (`(headers, body).into_response()`) is first
/// labelled text/plain or binary and then relabelled, two header writes
/// where one does, on the routes called most (verify, `/healthz`).
fn json_response(body: impl Into<axum::body::Body>) -> axum::response::Response {
    let mut response = axum::response::Response::new(body.into());
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}
