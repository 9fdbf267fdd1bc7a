//! Where management commands go: straight to the store this process opens
//! (the default), or over HTTP to a running deployment (`--url`). Both
//! answer with the API's wire types, so `--json` prints the same either way.

use atk_api::audit::{AuditList, AuditListQuery};
use atk_api::error::ErrorCode;
use atk_api::keys::{
    CreateKey, CreatedKeyBody, KeyList, KeyUsage, ListKeysQuery, RevokeKey, RotateKey,
    RotatedKeyBody, UsageQuery,
};
use atk_api::projects::CreateProject;
use atk_api::verify::{VerifyOutcome, VerifyRequest};
use atk_api::{Confirmation, PreviewRow, Project};
use atk_core::decision::VerifyContext;
use atk_core::ids::ProjectId;
use atk_core::policy::PolicyError;
use atk_server::service::{Caller, ServiceError};
use atk_server::startup::Services;

use crate::CliError;

pub enum Backend {
    /// This process opened the store (and saves usage counts on exit).
    Store(Services),
    /// A deployment's API, through `atk-client`.
    Remote(atk_client::Client),
}

fn project_id(raw: &str) -> Result<ProjectId, CliError> {
    ProjectId::parse(raw).map_err(|error| CliError::Service(error.into()))
}

impl Backend {
    pub async fn create_project(&self, request: &CreateProject) -> Result<Project, CliError> {
        match self {
            Self::Store(services) => Ok(services
                .service
                .create_project(&Caller::cli(), &request.project_id, &request.name)
                .await?),
            Self::Remote(client) => Ok(client.create_project(request).await?),
        }
    }

    pub async fn create_key(
        &self,
        project: &str,
        request: &CreateKey,
    ) -> Result<CreatedKeyBody, CliError> {
        match self {
            Self::Store(services) => Ok(services
                .service
                .create_key(
                    &Caller::cli(),
                    &project_id(project)?,
                    &request.name,
                    &request.policy_request(),
                )
                .await?
                .into()),
            Self::Remote(client) => Ok(client.create_key(project, request).await?),
        }
    }

    pub async fn list_keys(
        &self,
        project: &str,
        query: &ListKeysQuery,
    ) -> Result<KeyList, CliError> {
        match self {
            Self::Store(services) => {
                let page = services
                    .service
                    .list_keys(&Caller::cli(), &project_id(project)?, query)
                    .await?;
                Ok(KeyList {
                    items: page.items,
                    next_cursor: page.next_cursor,
                })
            }
            Self::Remote(client) => Ok(client.list_keys(project, query).await?),
        }
    }

    pub async fn get_key(&self, project: &str, key_id: &str) -> Result<PreviewRow, CliError> {
        match self {
            Self::Store(services) => Ok(services
                .service
                .get_key(&Caller::cli(), &project_id(project)?, key_id)
                .await?),
            Self::Remote(client) => Ok(client.get_key(project, key_id).await?),
        }
    }

    pub async fn rotate_key(
        &self,
        project: &str,
        key_id: &str,
        request: &RotateKey,
    ) -> Result<RotatedKeyBody, CliError> {
        match self {
            Self::Store(services) => Ok(services
                .service
                .rotate_key(
                    &Caller::cli(),
                    &project_id(project)?,
                    key_id,
                    request.grace,
                    &request.confirmations,
                )
                .await?
                .into()),
            Self::Remote(client) => Ok(client.rotate_key(project, key_id, request).await?),
        }
    }

    pub async fn revoke_key(
        &self,
        project: &str,
        key_id: &str,
        request: &RevokeKey,
    ) -> Result<PreviewRow, CliError> {
        match self {
            Self::Store(services) => Ok(services
                .service
                .revoke_key(
                    &Caller::cli(),
                    &project_id(project)?,
                    key_id,
                    request.reason.as_deref(),
                    request.cascade,
                )
                .await?),
            Self::Remote(client) => Ok(client.revoke_key(project, key_id, request).await?),
        }
    }

    pub async fn expire_key(&self, project: &str, key_id: &str) -> Result<PreviewRow, CliError> {
        match self {
            Self::Store(services) => Ok(services
                .service
                .expire_key(&Caller::cli(), &project_id(project)?, key_id)
                .await?),
            Self::Remote(client) => Ok(client.expire_key(project, key_id).await?),
        }
    }

    pub async fn key_usage(
        &self,
        project: &str,
        key_id: &str,
        query: &UsageQuery,
    ) -> Result<KeyUsage, CliError> {
        match self {
            Self::Store(services) => {
                let report = services
                    .service
                    .key_usage(
                        &Caller::cli(),
                        &project_id(project)?,
                        key_id,
                        query.from,
                        query.to,
                        query.granularity,
                    )
                    .await?;
                Ok(KeyUsage {
                    key_id: key_id.to_owned(),
                    report,
                })
            }
            Self::Remote(client) => Ok(client.key_usage(project, key_id, query).await?),
        }
    }

    pub async fn list_audit(
        &self,
        project: &str,
        query: &AuditListQuery,
    ) -> Result<AuditList, CliError> {
        match self {
            Self::Store(services) => {
                let page = services
                    .service
                    .list_audit(
                        &Caller::cli(),
                        &project_id(project)?,
                        query.action,
                        query.limit,
                        query.cursor.as_deref(),
                    )
                    .await?;
                Ok(AuditList {
                    items: page.items,
                    next_cursor: page.next_cursor,
                })
            }
            Self::Remote(client) => Ok(client.list_audit(project, query).await?),
        }
    }

    pub async fn verify(&self, request: &VerifyRequest) -> Result<VerifyOutcome, CliError> {
        match self {
            Self::Store(services) => {
                let context = VerifyContext {
                    action: request.action.as_deref(),
                    client_ip: request.client_ip,
                    origin: request.origin.as_deref(),
                };
                let verification = services.verifier.verify(&request.key, context).await?;
                Ok(verification.response().into_owned())
            }
            Self::Remote(client) => Ok(client.verify(request).await?),
        }
    }
}

/// The confirmations a refused create or rotate still needs, whichever
/// way it was sent.
pub fn missing_confirmations(error: &CliError) -> Option<Vec<Confirmation>> {
    match error {
        CliError::Service(ServiceError::Policy(PolicyError::MissingConfirmations(missing))) => {
            Some(missing.clone())
        }
        CliError::Client(error) => missing_confirmations_of(error),
        _ => None,
    }
}

/// The confirmations a remote refusal lists as missing, if it is one.
pub fn missing_confirmations_of(error: &atk_client::Error) -> Option<Vec<Confirmation>> {
    match error {
        atk_client::Error::Api {
            code: ErrorCode::ConfirmationRequired,
            details,
            ..
        } => serde_json::from_value(details.get("missing")?.clone()).ok(),
        _ => None,
    }
}
