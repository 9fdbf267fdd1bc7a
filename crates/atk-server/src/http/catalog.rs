use atk_core::Catalog;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_catalog))
}

/// Products and their actions (scopes), key kinds with their scope policy,
/// expiration choices and safety confirmations.
#[utoipa::path(get, path = "/v1/catalog", tag = "catalog",
    responses((status = 200, description = "The catalog", body = Catalog)))]
async fn get_catalog() -> Json<&'static Catalog> {
    Json(Catalog::get())
}
