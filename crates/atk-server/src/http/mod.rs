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

/// Every route with the middleware stack; a request body must arrive
/// within `body_timeout` (a client that stalls mid-body gets 408).
pub fn router(state: AppState, body_timeout: Duration) -> Router {
    let (router, _) = api_router().split_for_parts();
    let frame = frame::FrameLayer::new(
        state.verifier.metrics_handle(),
        state.admin.clone(),
        state.service.pepper().clone(),
        body_timeout,
    );
    router
        .nest(console::paths::HOME, console::router())
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to(console::paths::HOME) }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(frame)
        .with_state(state)
}
