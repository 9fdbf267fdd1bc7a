//! Who is calling the management API. Credentials: the platform admin token
//! or a service role key, as `Authorization: Bearer …`. Other key kinds are
//! recognised but refused (403); anything else is 401.

use std::net::{IpAddr, SocketAddr};

use atk_core::audit::{Actor, ActorType};
use atk_core::catalog::Catalog;
use atk_core::ids::{KeyId, ProjectId};
use atk_core::secret::{Pepper, SecretHash};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::service::Origin;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Admin,
    ServiceRole {
        project_id: ProjectId,
        key_id: KeyId,
    },
}

/// An authenticated management caller and the address it called from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub identity: Identity,
    pub source_ip: Option<IpAddr>,
}

impl Caller {
    /// Parses a project id from the path and checks the caller may see it.
    /// Another project's resources answer 404, as if they did not exist.
    pub fn project(&self, raw: &str) -> Result<ProjectId, ApiError> {
        let project_id = ProjectId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))?;
        match &self.identity {
            Identity::Admin => Ok(project_id),
            Identity::ServiceRole {
                project_id: own, ..
            } if *own == project_id => Ok(project_id),
            Identity::ServiceRole { .. } => Err(ApiError::NotFound("project not found".into())),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.identity {
            Identity::Admin => Ok(()),
            Identity::ServiceRole { .. } => Err(ApiError::Forbidden(
                "only the platform admin may do this".into(),
            )),
        }
    }

    /// The actor and address an audit event records for this caller.
    pub fn origin(&self) -> Origin {
        let actor = match &self.identity {
            Identity::Admin => Actor::admin(),
            Identity::ServiceRole { key_id, .. } => Actor {
                kind: ActorType::ServiceRoleKey,
                id: key_id.to_string(),
            },
        };
        Origin::new(actor, self.source_ip)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|credential| !credential.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let identity = if state.admin.matches(state.service.pepper(), credential) {
            Identity::Admin
        } else {
            match state.verifier.authenticate(credential).await? {
                Some(key) if Catalog::get().kind(key.kind).administers_project => {
                    Identity::ServiceRole {
                        project_id: key.project_id.clone(),
                        key_id: key.id.clone(),
                    }
                }
                Some(_) => {
                    return Err(ApiError::Forbidden(
                        "only service role keys and the admin token may call the management API"
                            .into(),
                    ));
                }
                None => return Err(ApiError::Unauthorized),
            }
        };
        Ok(Self {
            identity,
            source_ip,
        })
    }
}
