use atk_api::audit::{AuditList, AuditListQuery};
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::project_id as parse_project;
use super::error::{ApiError, ManagementErrors};
use super::extract::{ApiPath, ApiQuery};
use crate::service::Caller;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// The project's audit log, newest first. Append-only: no API changes or
/// deletes events.
#[utoipa::path(get, path = "/v1/projects/{project_id}/audit", tag = "audit",
    security(("bearer" = [])),
    params(("project_id" = String, Path, description = "Project id"), AuditListQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditList),
        ManagementErrors,
    ))]
async fn list_audit(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditListQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let project_id = parse_project(&project_id)?;
    let page = state
        .service
        .list_audit(
            &caller,
            &project_id,
            query.action,
            query.limit,
            query.cursor.as_deref(),
        )
        .await?;
    Ok(Json(AuditList {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}
