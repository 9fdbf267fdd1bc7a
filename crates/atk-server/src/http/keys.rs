use atk_core::key::{Environment, Expiration, KeyKind, KeyStatus, PreviewRow};
use atk_core::lifecycle::Grace;
use atk_core::limits::RateLimit;
use atk_core::policy::{BlockedScope, Confirmation, KeyRequest};
use atk_core::usage::{Granularity, UsageReport};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::project_id as parse_project;
use super::error::{ApiError, ErrorBody, ManagementErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::service::Caller;
use crate::service::KeyFilter;

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
    /// `service_role` also `service_role_danger`. Missing ones are a 422
    /// listing them, also when the field is left out.
    #[serde(default)]
    confirmations: Vec<Confirmation>,
    /// Backend Secret and Service Role keys only: the networks (CIDR, or a
    /// single address) the key may be used from; verify answers
    /// `FORBIDDEN_IP` for a `client_ip` outside them. Up to 50. Kept on
    /// rotation.
    #[schema(example = json!(["10.1.0.0/16", "2001:db8::/32"]))]
    allowed_ips: Option<Vec<String>>,
    /// The key's own limit, per node: verify answers `RATE_LIMITED` past
    /// it. Kept on rotation.
    rate_limit: Option<RateLimit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyBody {
    /// The plaintext secret. This response is the only time it is shown.
    #[schema(example = "atk_live_4fT0cQ9vR2mX7bN1kP5sW8zY3hJ6dL0aGq7K2B")]
    secret: String,
    key: PreviewRow,
    /// Chosen scopes that the project's Commerce entitlements block today.
    blocked_scopes: Vec<String>,
    /// The same scopes, each with the entitlement status that blocks it
    /// (and, for a trial, when it ended).
    blocked_scope_reasons: Vec<BlockedScope>,
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
    let request = KeyRequest {
        kind: body.kind,
        environment: body.environment,
        scopes: body.scopes,
        expiration: body.expiration,
        confirmations: body.confirmations,
        allowed_ips: body.allowed_ips,
        rate_limit: body.rate_limit,
    };
    let created = state
        .service
        .create_key(&caller, &project_id, &body.name, &request)
        .await?;
    Ok(created_with_secret(CreatedKeyBody {
        secret: created.secret.expose().to_owned(),
        key: created.key,
        blocked_scopes: created
            .blocked_scopes
            .iter()
            .map(|blocked| blocked.scope.clone())
            .collect(),
        blocked_scope_reasons: created.blocked_scopes,
    }))
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
    let filter = KeyFilter {
        status: query.status,
        environment: query.environment,
        kind: query.kind,
        expiring_within_days: query.expiring_within_days,
        limit: query.limit,
        cursor: query.cursor,
    };
    let page = state
        .service
        .list_keys(&caller, &project_id, &filter)
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working: `none`, `1_hour`, `24_hours`, `7_days`.
    grace: Grace,
    /// Must include `secret_shown_once` (a 422 otherwise).
    #[serde(default)]
    confirmations: Vec<Confirmation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKeyBody {
    /// The new key's secret. This response is the only time it is shown.
    secret: String,
    /// The new key.
    key: PreviewRow,
    /// The old key, now linked by `rotated_to` and ending after the grace.
    previous: PreviewRow,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    /// Why; kept with the key and in the audit log (up to 500 characters).
    reason: Option<String>,
    /// Also revoke every key this key created (a Service Role Key's keys),
    /// each with its own audit event.
    #[serde(default)]
    cascade: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpireKey {}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// RFC 3339; default: 24 hours (hour) or 30 days (day) before `to`.
    from: Option<DateTime<Utc>>,
    /// RFC 3339; default: now.
    to: Option<DateTime<Utc>>,
    /// `hour` (default) or `day`.
    granularity: Option<Granularity>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsage {
    key_id: String,
    #[serde(flatten)]
    report: UsageReport,
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
    Ok(created_with_secret(RotatedKeyBody {
        secret: rotated.secret.expose().to_owned(),
        key: rotated.key,
        previous: rotated.previous,
    }))
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
