use std::borrow::Cow;

use atk_api::error::ErrorBody;
use atk_api::verify::{VerifiedKey, VerifyRequest, VerifyResponse};
use atk_core::decision::{VerifyCode, VerifyContext};
use atk_core::key::KeyRecord;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::SourceIp;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::verifier::Verification;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify_key))
}

/// The key as verification reports it, borrowed from the (cached)
/// record, so answering copies nothing.
fn verified_key(key: &KeyRecord) -> VerifiedKey<'_> {
    VerifiedKey {
        id: Cow::Borrowed(&key.id),
        project_id: Cow::Borrowed(&key.project_id),
        environment: key.environment,
        kind: key.kind,
        scopes: Cow::Borrowed(&key.scopes),
        expires_at: key.expires_at,
    }
}

fn verify_response(verification: &Verification) -> VerifyResponse<'_> {
    let decision = &verification.decision;
    VerifyResponse {
        valid: decision.valid,
        allowed: decision.allowed,
        code: decision.code,
        key: verification.key.as_deref().map(verified_key),
        entitlement: decision.entitlement.as_ref().map(Cow::Borrowed),
        missing_scopes: Cow::Borrowed(&decision.missing_scopes),
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
    Ok(Json(verify_response(&verification)).into_response())
}
