use std::net::IpAddr;

use atk_core::decision::VerifyContext;
use atk_core::decision::{EntitlementView, VerifyCode};
use atk_core::ids::{KeyId, ProjectId};
use atk_core::key::{Environment, KeyKind, KeyRecord};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::SourceIp;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::verifier::Verification;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The secret presented to the product backend.
    key: String,
    /// A catalog action, for example `notification.send`.
    action: Option<String>,
    /// What the calling backend knows of its own caller's address.
    /// A key with an IP allowlist answers `FORBIDDEN_IP` when this is
    /// outside it or missing.
    #[schema(value_type = Option<String>, format = "ip", example = "203.0.113.7")]
    client_ip: Option<IpAddr>,
    /// The browser `Origin` the calling backend saw, if any: keys are
    /// backend-only, so any origin answers `BROWSER_ORIGIN_BLOCKED`.
    origin: Option<String>,
}

/// The key as verification reports it: no secret, no hash, no name.
/// Borrowed from the (cached) record, so answering copies nothing.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedKey<'a> {
    #[schema(value_type = String)]
    id: &'a KeyId,
    #[schema(value_type = String)]
    project_id: &'a ProjectId,
    environment: Environment,
    kind: KeyKind,
    scopes: &'a [String],
    expires_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a KeyRecord> for VerifiedKey<'a> {
    fn from(key: &'a KeyRecord) -> Self {
        Self {
            id: &key.id,
            project_id: &key.project_id,
            environment: key.environment,
            kind: key.kind,
            scopes: &key.scopes,
            expires_at: key.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    /// The key exists and is active.
    valid: bool,
    /// The key may perform `action` now (equals `valid` without an action).
    allowed: bool,
    code: VerifyCode,
    /// `null` unless the key was found.
    key: Option<VerifiedKey<'a>>,
    entitlement: Option<&'a EntitlementView>,
    missing_scopes: &'a [String],
}

impl<'a> From<&'a Verification> for VerifyResponse<'a> {
    fn from(verification: &'a Verification) -> Self {
        let decision = &verification.decision;
        Self {
            valid: decision.valid,
            allowed: decision.allowed,
            code: decision.code,
            key: verification.key.as_deref().map(VerifiedKey::from),
            entitlement: decision.entitlement.as_ref(),
            missing_scopes: &decision.missing_scopes,
        }
    }
}

/// Verifies a key, optionally for a product action. Always 200 for a
/// well-formed request; `code` says why a key may not act. No credential:
/// product backends call this.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "verify",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The decision", body = VerifyResponse),
        (status = 400, description = "Malformed request or an action outside the catalog", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ))]
async fn verify_key(
    State(state): State<AppState>,
    SourceIp(address): SourceIp,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    // Guessing keys: an address that spent its failed verifications waits.
    let limits = &state.address_limits.failed_verifications;
    let now = state.service.now();
    if let Some(seconds) = address.and_then(|ip| limits.retry_after(ip, now)) {
        return Err(ApiError::TooManyFailures {
            retry_after_seconds: seconds,
        });
    }
    let verification = state
        .verifier
        .verify(
            &body.key,
            VerifyContext {
                action: body.action.as_deref(),
                client_ip: body.client_ip,
                origin: body.origin.as_deref(),
            },
        )
        .await?;
    if let (Some(ip), VerifyCode::Malformed | VerifyCode::NotFound) =
        (address, verification.decision.code)
    {
        limits.failed(ip, now);
    }
    // Serialized here, straight from the borrowed record.
    Ok(Json(VerifyResponse::from(&verification)).into_response())
}
