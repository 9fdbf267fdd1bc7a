use atk_api::error::ErrorBody;
use atk_api::projects::{CreateProject, EntitlementList, PutEntitlement};
use atk_core::entitlement::Entitlement;
use atk_core::project::Project;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::project_id as parse_project;
use super::error::{ApiError, ManagementErrors};
use super::extract::{ApiJson, ApiPath};
use crate::service::Caller;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project))
        .routes(routes!(get_project))
        .routes(routes!(list_entitlements))
        .routes(routes!(put_entitlement))
}

/// Creates a project with the initial entitlement table (platform admin only).
#[utoipa::path(post, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created", body = Project),
        (status = 409, description = "The project id is taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        ManagementErrors,
    ))]
async fn create_project(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let project = state
        .service
        .create_project(&caller, &body.project_id, &body.name)
        .await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// One project: its id, name and creation time.
#[utoipa::path(get, path = "/v1/projects/{project_id}", tag = "projects", security(("bearer" = [])),
    params(("project_id" = String, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project", body = Project),
        ManagementErrors,
    ))]
async fn get_project(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<String>,
) -> Result<Json<Project>, ApiError> {
    let project_id = parse_project(&project_id)?;
    Ok(Json(state.service.get_project(&caller, &project_id).await?))
}

/// The project's Commerce entitlement for every product, with whether it
/// blocks the product's actions today.
#[utoipa::path(get, path = "/v1/projects/{project_id}/entitlements", tag = "projects",
    security(("bearer" = [])),
    params(("project_id" = String, Path, description = "Project id")),
    responses(
        (status = 200, description = "One entitlement per product", body = EntitlementList),
        ManagementErrors,
    ))]
async fn list_entitlements(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<String>,
) -> Result<Json<EntitlementList>, ApiError> {
    let project_id = parse_project(&project_id)?;
    let items = state
        .service
        .list_entitlements(&caller, &project_id)
        .await?;
    Ok(Json(EntitlementList {
        items,
        next_cursor: None,
    }))
}

/// Sets a product's entitlement. Only the platform admin (standing for
/// Commerce) may change entitlements.
#[utoipa::path(put, path = "/v1/projects/{project_id}/entitlements/{product}", tag = "projects",
    security(("bearer" = [])),
    params(
        ("project_id" = String, Path, description = "Project id"),
        ("product" = String, Path, description = "Product id from the catalog"),
    ),
    request_body = PutEntitlement,
    responses(
        (status = 200, description = "The entitlement now in force", body = Entitlement),
        (status = 413, description = "Body too large", body = ErrorBody),
        ManagementErrors,
    ))]
async fn put_entitlement(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((project_id, product)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutEntitlement>,
) -> Result<Json<Entitlement>, ApiError> {
    let project_id = parse_project(&project_id)?;
    let entitlement = state
        .service
        .put_entitlement(
            &caller,
            &project_id,
            &product,
            body.status,
            body.trial_ends_at,
        )
        .await?;
    Ok(Json(entitlement))
}
