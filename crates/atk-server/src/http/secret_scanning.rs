//! `POST /v1/secret-scanning/report`: a secret-scanning partner reports
//! tokens it found in public places. The signature over the raw body is
//! checked first; nothing is parsed or revoked before it verifies.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::SourceIp;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiBytes;
use crate::service::Caller;
use crate::service::leaks::{LeakLabel, LeakReport, MAX_REPORTED_TOKENS};
use atk_core::access::Principal;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report_leaks))
}

/// The headers a partner signs with (GitHub's names).
const KEY_IDENTIFIER: &str = "github-public-key-identifier";
const SIGNATURE: &str = "github-public-key-signature";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Revokes every reported token that is an active key of this deployment
/// and answers each token `true_positive` or `false_positive` (by the
/// token's SHA-256; the token itself is never echoed). The body must be
/// signed with ECDSA P-256 by a key of `--secret-scanning-keys`
/// (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`: base64
/// of the DER signature over the raw body); otherwise 401 and nothing is
/// revoked. A token whose checksum fails is labelled without a lookup.
#[utoipa::path(post, path = "/v1/secret-scanning/report", tag = "keys",
    request_body(content = Vec<LeakReport>, description = "Up to 1,000 reported tokens, and at most 64 KiB (the API's body limit)"),
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "Which configured key signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the ASN.1 DER ECDSA P-256 signature over the raw body"),
    ),
    responses(
        (status = 200, description = "One label per reported token", body = Vec<LeakLabel>),
        (status = 400, description = "The body is not a list of reports", body = ErrorBody),
        (status = 401, description = "The signature does not verify with a configured key", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ))]
async fn report_leaks(
    State(state): State<AppState>,
    SourceIp(address): SourceIp,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Vec<LeakLabel>>, ApiError> {
    let signed = match (
        header(&headers, KEY_IDENTIFIER),
        header(&headers, SIGNATURE),
    ) {
        (Some(identifier), Some(signature)) => {
            state.scanning_keys.verifies(identifier, signature, &body)
        }
        _ => false,
    };
    if !signed {
        return Err(ApiError::SignatureRefused);
    }
    let reports: Vec<LeakReport> = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!("the body is not a list of reports: {error}"))
    })?;
    if reports.len() > MAX_REPORTED_TOKENS {
        return Err(ApiError::invalid(format!(
            "a report holds at most {MAX_REPORTED_TOKENS} tokens"
        )));
    }
    let caller = Caller::new(Principal::System, address);
    Ok(Json(state.service.report_leaks(&caller, &reports).await?))
}
