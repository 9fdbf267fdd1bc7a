use atk_core::key::{Environment, Expiration, KeyKind, KeyStatus, PreviewRow};
use atk_core::policy::{Confirmation, KeyRequest};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::KeyFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(get_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// 1–100 characters, trimmed, no control characters.
    #[schema(example = "Backend Project API Key")]
    name: String,
    /// Default `project`.
    kind: Option<KeyKind>,
    /// Default `production`.
    environment: Option<Environment>,
    /// Catalog actions; default depends on the kind (`product_scoped` has none).
    scopes: Option<Vec<String>>,
    /// Default `90_days`.
    expiration: Option<Expiration>,
    /// `backend_only`, `secret_shown_once`, `entitlements_may_block`, and for
    /// `service_role` also `service_role_danger`.
    confirmations: Vec<Confirmation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyBody {
    /// The plaintext secret. This response is the only time it is shown.
    #[schema(example = "atk_live_4fT0cQ9vR2mX7bN1kP5sW8zY3hJ6dL0aGq7K2B")]
    secret: String,
    key: PreviewRow,
    /// Chosen scopes that the project's Commerce entitlements block today.
    blocked_scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    items: Vec<PreviewRow>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListKeysQuery {
    status: Option<KeyStatus>,
    environment: Option<Environment>,
    kind: Option<KeyKind>,
    /// Active keys whose expiry falls within this many days.
    expiring_within_days: Option<u32>,
    /// 1–200, default 50.
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Creates a key and returns its secret, once (`Cache-Control: no-store`).
#[utoipa::path(post, path = "/v1/projects/{project_id}/keys", tag = "keys",
    security(("bearer" = [])),
    params(("project_id" = String, Path, description = "Project id")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; the secret is in this response only", body = CreatedKeyBody),
        (status = 400, description = "Invalid request (unknown field, kind, scope, …)", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The credential may not manage keys", body = ErrorBody),
        (status = 404, description = "No such project (or not yours)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "confirmation_required or scope_not_allowed", body = ErrorBody),
    ))]
async fn create_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let project_id = caller.project(&project_id)?;
    let request = KeyRequest {
        kind: body.kind,
        environment: body.environment,
        scopes: body.scopes,
        expiration: body.expiration,
        confirmations: body.confirmations,
    };
    let created = state
        .service
        .create_key(&project_id, &body.name, &request)
        .await?;
    let body = CreatedKeyBody {
        secret: created.secret.expose().to_owned(),
        key: created.key,
        blocked_scopes: created.blocked_scopes,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response())
}

/// Lists preview rows, newest first.
#[utoipa::path(get, path = "/v1/projects/{project_id}/keys", tag = "keys",
    security(("bearer" = [])),
    params(("project_id" = String, Path, description = "Project id"), ListKeysQuery),
    responses(
        (status = 200, description = "A page of preview rows", body = KeyList),
        (status = 400, description = "Invalid filter or cursor", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The credential may not manage keys", body = ErrorBody),
        (status = 404, description = "No such project (or not yours)", body = ErrorBody),
    ))]
async fn list_keys(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListKeysQuery>,
) -> Result<Json<KeyList>, ApiError> {
    let project_id = caller.project(&project_id)?;
    let filter = KeyFilter {
        status: query.status,
        environment: query.environment,
        kind: query.kind,
        expiring_within_days: query.expiring_within_days,
        limit: query.limit,
        cursor: query.cursor,
    };
    let page = state.service.list_keys(&project_id, &filter).await?;
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
        (status = 400, description = "Malformed project id", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The credential may not manage keys", body = ErrorBody),
        (status = 404, description = "No such key in this project", body = ErrorBody),
    ))]
async fn get_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((project_id, key_id)): ApiPath<(String, String)>,
) -> Result<Json<PreviewRow>, ApiError> {
    let project_id = caller.project(&project_id)?;
    Ok(Json(state.service.get_key(&project_id, &key_id).await?))
}
