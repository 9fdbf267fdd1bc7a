use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub(super) async fn healthz() -> axum::response::Response {
    // Written out once, as bytes the binary holds: load balancers and probes
    // call this constantly.
    super::json_response(HEALTHZ_BODY)
}

/// Where [`healthz`] answers (the frame answers it without the router).
pub(super) const PATH: &str = "/healthz";

const HEALTHZ_BODY: &str = r#"{"status":"ok"}"#;

/// A readiness check answers within this, reachable database or not
/// (orchestrators' probes commonly give up after a second).
const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(900);

/// Readiness: the store answers a query.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The store is reachable", body = Health),
        (status = 503, description = "The store is not reachable", body = Health),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let ping = tokio::time::timeout(READINESS_TIMEOUT, state.service.store().ping()).await;
    let failure = match ping {
        Ok(Ok(())) => return (StatusCode::OK, Json(Health { status: "ready" })),
        Ok(Err(error)) => format!("{error:?}"),
        Err(_) => "no answer in time".to_owned(),
    };
    tracing::warn!(error = %failure, "readiness check failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Health {
            status: "unavailable",
        }),
    )
}

/// What this node counts, in the Prometheus (OpenMetrics) text format: no
/// secret, key hash, key id or project id in any label.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition",
        content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    state.verifier.refresh_gauges();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.verifier.metrics().render(),
    )
}
