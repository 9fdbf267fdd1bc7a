//! A tiny Notification backend: `POST /v1/notifications/send`, guarded by
//! AuthToolkit Keys. Only a key that may perform `notification.send` now
//! gets through; the handler learns which project (tenant) it acts for.

use atk_guard::{KeyGuard, Verified};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub struct SendRequest {
    pub to: String,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Sent {
    pub project_id: String,
    pub key_id: String,
    pub to: String,
}

/// Runs only after the guard allowed the key for `notification.send`.
async fn send(key: Verified, Json(request): Json<SendRequest>) -> Json<Sent> {
    // The key's project is the tenant the message is sent for.
    Json(Sent {
        project_id: key.project_id.to_string(),
        key_id: key.id.to_string(),
        to: request.to,
    })
}

/// The backend's routes: `send` needs a key allowed for
/// `notification.send`; the health check needs none.
pub fn app(guard: &KeyGuard) -> Router {
    Router::new()
        .route(
            "/v1/notifications/send",
            post(send).route_layer(guard.require("notification.send")),
        )
        .route("/healthz", get(|| async { "ok" }))
}
