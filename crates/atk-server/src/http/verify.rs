use atk_api::error::ErrorBody;
use atk_api::verify::{VerifyRequest, VerifyResponse};
use atk_core::decision::{VerifyCode, VerifyContext};
use axum::extract::State;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::SourceIp;
use super::error::ApiError;
use super::extract::ApiJson;

/// Room for an answer with a dozen scopes, written without growing.
const USUAL_ANSWER_LENGTH: usize = 512;

/// The route, which the frame also answers itself (see `frame::HotRoute`).
pub const PATH: &str = "/v1/keys/verify";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify_key))
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
pub(super) async fn verify_key(
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
        .verify_at(
            &body.key,
            VerifyContext {
                action: body.action.as_deref(),
                client_ip: body.client_ip,
                origin: body.origin.as_deref(),
            },
            now,
        )
        .await?;
    if let (Some(ip), VerifyCode::Malformed | VerifyCode::NotFound) =
        (address, verification.decision.code)
    {
        limits.failed(ip, now);
    }
    // Written here, straight from the borrowed record, by the wire type's
    // own writer (serde's cost more than the verification).
    let mut body = Vec::with_capacity(USUAL_ANSWER_LENGTH);
    verification.write_json(&mut body);
    Ok(super::json_response(body))
}
