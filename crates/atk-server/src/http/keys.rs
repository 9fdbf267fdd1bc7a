use atk_api::error::ErrorBody;
use atk_api::keys::{
    CreateKey, CreatedKeyBody, ExpireKey, KeyList, KeyUsage, ListKeysQuery, RevokeKey, RotateKey,
    RotatedKeyBody, UsageQuery,
};
use atk_core::key::PreviewRow;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::project_id as parse_project;
use super::error::{ApiError, ManagementErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::service::Caller;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(get_key))
        .routes(routes!(rotate_key))
        .routes(routes!(revoke_key))
        .routes(routes!(expire_key))
        .routes(routes!(key_usage))
}

/// The secret-bearing responses: never stored by any cache on the way.
fn created_with_secret(body: impl Serialize) -> Response {
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

/// Creates a key and returns its secret, once (`Cache-Control: no-store`).
#[utoipa::path(post, path = "/v1/projects/{project_id}/keys", tag = "keys",
    security(("bearer" = [])),
    params(("project_id" = String, Path, description = "Project id")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; the secret is in this response only", body = CreatedKeyBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "confirmation_required or scope_not_allowed", body = ErrorBody),
        ManagementErrors,
    ))]
async fn create_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let project_id = parse_project(&project_id)?;
    let created = state
        .service
        .create_key(&caller, &project_id, &body.name, &body.policy_request())
        .await?;
    Ok(created_with_secret(CreatedKeyBody::from(created)))
}

/// Lists preview rows, newest first.
#[utoipa::path(get, path = "/v1/projects/{project_id}/keys", tag = "keys",
    security(("bearer" = [])),
    params(("project_id" = String, Path, description = "Project id"), ListKeysQuery),
    responses(
        (status = 200, description = "A page of preview rows", body = KeyList),
        ManagementErrors,
    ))]
async fn list_keys(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListKeysQuery>,
) -> Result<Json<KeyList>, ApiError> {
    let project_id = parse_project(&project_id)?;
    let page = state
        .service
        .list_keys(&caller, &project_id, &query)
        .await?;
    Ok(Json(KeyList {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// One preview row.
#[utoipa::path(get, path = "/v1/projects/{project_id}/keys/{key_id}", tag = "keys",
    security(("bearer" = [])),
    params(
        ("project_id" = String, Path, description = "Project id"),
        ("key_id" = String, Path, description = "Key id (`key_…`)"),
    ),
    responses(
        (status = 200, description = "The preview row", body = PreviewRow),
        ManagementErrors,
    ))]
async fn get_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((project_id, key_id)): ApiPath<(String, String)>,
) -> Result<Json<PreviewRow>, ApiError> {
    let project_id = parse_project(&project_id)?;
    Ok(Json(
        state.service.get_key(&caller, &project_id, &key_id).await?,
    ))
}

/// Rotates a key: a new secret (shown once) for the same name, kind,
/// environment, scopes and expiration choice; the old key ends after the
/// grace period.
#[utoipa::path(post, path = "/v1/projects/{project_id}/keys/{key_id}/rotate", tag = "keys",
    security(("bearer" = [])),
    params(
        ("project_id" = String, Path, description = "Project id"),
        ("key_id" = String, Path, description = "Key id (`key_…`)"),
    ),
    request_body = RotateKey,
    responses(
        (status = 201, description = "Rotated; the new secret is in this response only", body = RotatedKeyBody),
        (status = 409, description = "The key was already rotated, revoked or expired", body = ErrorBody),
        (status = 422, description = "confirmation_required", body = ErrorBody),
        ManagementErrors,
    ))]
async fn rotate_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((project_id, key_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RotateKey>,
) -> Result<Response, ApiError> {
    let project_id = parse_project(&project_id)?;
    let rotated = state
        .service
        .rotate_key(
            &caller,
            &project_id,
            &key_id,
            body.grace,
            &body.confirmations,
        )
        .await?;
    Ok(created_with_secret(RotatedKeyBody::from(rotated)))
}

/// Revokes a key now, for good. The body is optional.
#[utoipa::path(post, path = "/v1/projects/{project_id}/keys/{key_id}/revoke", tag = "keys",
    security(("bearer" = [])),
    params(
        ("project_id" = String, Path, description = "Project id"),
        ("key_id" = String, Path, description = "Key id (`key_…`)"),
    ),
    request_body(content = RevokeKey, description = "Optional"),
    responses(
        (status = 200, description = "The revoked key", body = PreviewRow),
        (status = 409, description = "The key had already ended", body = ErrorBody),
        ManagementErrors,
    ))]
async fn revoke_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((project_id, key_id)): ApiPath<(String, String)>,
    OptionalJson(body): OptionalJson<RevokeKey>,
) -> Result<Json<PreviewRow>, ApiError> {
    let project_id = parse_project(&project_id)?;
    let key = state
        .service
        .revoke_key(
            &caller,
            &project_id,
            &key_id,
            body.reason.as_deref(),
            body.cascade,
        )
        .await?;
    Ok(Json(key))
}

/// Ends a key now (status `expired`). No body.
#[utoipa::path(post, path = "/v1/projects/{project_id}/keys/{key_id}/expire", tag = "keys",
    security(("bearer" = [])),
    params(
        ("project_id" = String, Path, description = "Project id"),
        ("key_id" = String, Path, description = "Key id (`key_…`)"),
    ),
    responses(
        (status = 200, description = "The expired key", body = PreviewRow),
        (status = 409, description = "The key had already ended", body = ErrorBody),
        ManagementErrors,
    ))]
async fn expire_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((project_id, key_id)): ApiPath<(String, String)>,
    OptionalJson(ExpireKey {}): OptionalJson<ExpireKey>,
) -> Result<Json<PreviewRow>, ApiError> {
    let project_id = parse_project(&project_id)?;
    let key = state
        .service
        .expire_key(&caller, &project_id, &key_id)
        .await?;
    Ok(Json(key))
}

/// Verification counts of one key: totals by code and by action, and a
/// series by hour or day.
#[utoipa::path(get, path = "/v1/projects/{project_id}/keys/{key_id}/usage", tag = "keys",
    security(("bearer" = [])),
    params(
        ("project_id" = String, Path, description = "Project id"),
        ("key_id" = String, Path, description = "Key id (`key_…`)"),
        UsageQuery,
    ),
    responses(
        (status = 200, description = "Usage of the key", body = KeyUsage),
        ManagementErrors,
    ))]
async fn key_usage(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((project_id, key_id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<KeyUsage>, ApiError> {
    let project_id = parse_project(&project_id)?;
    let report = state
        .service
        .key_usage(
            &caller,
            &project_id,
            &key_id,
            query.from,
            query.to,
            query.granularity,
        )
        .await?;
    Ok(Json(KeyUsage { key_id, report }))
}
