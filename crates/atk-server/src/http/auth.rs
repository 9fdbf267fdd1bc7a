//! Who is calling the management API. Credentials: the platform admin token
//! or a service role key, as `Authorization: Bearer …`. Other key kinds are
//! recognised but refused (403); anything else is 401.

use std::net::IpAddr;

use atk_core::access::Principal;
use atk_core::catalog::Catalog;
use atk_core::ids::ProjectId;
use atk_core::secret::{Pepper, SecretHash};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::service::Caller;

/// The platform admin token, held only as its keyed hash.
#[derive(Debug, Clone)]
pub struct AdminCredential {
    hash: SecretHash,
}

impl AdminCredential {
    pub fn from_hash(hash: SecretHash) -> Self {
        Self { hash }
    }

    pub fn matches(&self, pepper: &Pepper, token: &str) -> bool {
        pepper.hash_token(token).ct_eq(&self.hash)
    }
}

/// A project id from the path; a malformed one is a 400.
pub fn project_id(raw: &str) -> Result<ProjectId, ApiError> {
    ProjectId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The source address of the request: the client's, as the connection
/// layer worked it out (the peer, or behind a trusted proxy the forwarded
/// client). `None` only for requests that did not come over a connection
/// (driven in process).
pub fn source_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<super::connections::ClientAddress>()
        .map(|client| client.0)
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|credential| !credential.is_empty())
}

/// The bearer credential only says who the caller is; what it may do is
/// decided by the services with the domain's access rules.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let address = source_ip(parts);
        let now = state.service.now();
        let limits = &state.address_limits.bad_credentials;
        // An address that spent its bad credentials is not even checked.
        if let Some(seconds) = address.and_then(|ip| limits.retry_after(ip, now)) {
            return Err(ApiError::TooManyFailures {
                retry_after_seconds: seconds,
            });
        }
        let refused = || {
            if let Some(ip) = address {
                limits.failed(ip, now);
            }
            ApiError::Unauthorized
        };
        let credential = bearer(parts).ok_or_else(refused)?;
        let principal = if state.admin.matches(state.service.pepper(), credential) {
            Principal::PlatformAdmin
        } else {
            match state.verifier.authenticate(credential).await? {
                // A key with an allowlist manages only from inside it.
                Some(key)
                    if !key.allowed_ips.is_empty()
                        && !source_ip(parts).is_some_and(|ip| key.allowed_ips.admits(ip)) =>
                {
                    return Err(ApiError::Forbidden(
                        "this key may not be used from this address (its IP allowlist)".into(),
                    ));
                }
                Some(key) if Catalog::get().kind(key.kind).administers_project => {
                    Principal::ServiceRoleKey {
                        project_id: (*key.project_id).clone(),
                        key_id: key.id.clone(),
                    }
                }
                Some(_) => {
                    return Err(ApiError::Forbidden(
                        "only service role keys and the admin token may call the management API"
                            .into(),
                    ));
                }
                None => return Err(refused()),
            }
        };
        Ok(Caller::new(principal, source_ip(parts)))
    }
}

/// The address a request came from (from the connection), for audit events
/// and throttling. Never fails: a request without connect info has none.
#[derive(Debug, Clone, Copy)]
pub struct SourceIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(source_ip(parts)))
    }
}
