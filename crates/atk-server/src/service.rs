//! Application services: the use cases behind both the HTTP API and the CLI.
//! Each takes already-authorised input, asks the domain for a decision and
//! then the store to keep it; nothing here knows about HTTP.

use std::sync::Arc;

use atk_core::Clock;
use atk_core::catalog::Catalog;
use atk_core::entitlement::{Entitlement, EntitlementStatus};
use atk_core::ids::{DisplayName, IdError, KeyId, ProjectId};
use atk_core::key::{Environment, KeyKind, KeyRecord, KeyStatus, PreviewRow};
use atk_core::policy::{KeyRequest, PolicyError, blocked_scopes};
use atk_core::project::{DEMO_PROJECT_ID, DEMO_PROJECT_NAME, Project, initial_entitlements};
use atk_core::secret::{Pepper, PlaintextSecret};
use atk_store::{KeyCursor, KeyQuery, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use thiserror::Error;

use crate::verifier::Verifier;

// Spans carry only validated identifiers (`skip_all` + explicit fields):
// raw client strings such as names, cursors or unparsed ids could hold
// anything, a pasted secret included, and must not reach the log.

/// Largest page a list call returns, whatever `limit` asks for.
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl From<IdError> for ServiceError {
    fn from(error: IdError) -> Self {
        Self::InvalidRequest(error.to_string())
    }
}

/// A new key and the only copy of its secret there will ever be.
#[derive(Debug)]
pub struct CreatedKey {
    pub secret: PlaintextSecret,
    pub key: PreviewRow,
    pub blocked_scopes: Vec<String>,
}

/// Filters of the key listing, as they come from a query string or flags.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub status: Option<KeyStatus>,
    pub environment: Option<Environment>,
    pub kind: Option<KeyKind>,
    pub expiring_within_days: Option<u32>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct KeyPage {
    pub items: Vec<PreviewRow>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    pepper: Pepper,
    clock: Arc<dyn Clock>,
    catalog: &'static Catalog,
    /// Told about changes, so its caches never serve a stale decision on
    /// this node.
    verifier: Arc<Verifier>,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        pepper: Pepper,
        clock: Arc<dyn Clock>,
        verifier: Arc<Verifier>,
    ) -> Self {
        Self {
            store,
            pepper,
            clock,
            catalog: Catalog::get(),
            verifier,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    #[tracing::instrument(skip_all)]
    pub async fn create_project(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Project, ServiceError> {
        let project = Project {
            project_id: ProjectId::parse(project_id)?,
            name: DisplayName::parse(name)?,
            created_at: self.now(),
        };
        let entitlements = initial_entitlements(self.catalog, project.created_at);
        match self.store.create_project(&project, &entitlements).await {
            Ok(()) => Ok(project),
            Err(StoreError::Conflict) => Err(ServiceError::Conflict(format!(
                "project {} already exists",
                project.project_id
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// First start on an empty store: the preview's demo project. Returns
    /// whether it was created (another node may have done it first).
    pub async fn ensure_demo_project(&self) -> Result<bool, ServiceError> {
        if self.store.has_projects().await? {
            return Ok(false);
        }
        match self
            .create_project(DEMO_PROJECT_ID, DEMO_PROJECT_NAME)
            .await
        {
            Ok(_) => Ok(true),
            Err(ServiceError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn get_project(&self, project_id: &ProjectId) -> Result<Project, ServiceError> {
        self.store
            .get_project(project_id)
            .await?
            .ok_or(ServiceError::NotFound("project"))
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn list_entitlements(
        &self,
        project_id: &ProjectId,
    ) -> Result<Vec<Entitlement>, ServiceError> {
        self.get_project(project_id).await?;
        Ok(self.store.list_entitlements(project_id).await?)
    }

    #[tracing::instrument(skip_all, fields(%project_id, ?status))]
    pub async fn put_entitlement(
        &self,
        project_id: &ProjectId,
        product: &str,
        status: EntitlementStatus,
        trial_ends_at: Option<DateTime<Utc>>,
    ) -> Result<Entitlement, ServiceError> {
        if self.catalog.product(product).is_none() {
            return Err(ServiceError::NotFound("product"));
        }
        if trial_ends_at.is_some() && status != EntitlementStatus::Trial {
            return Err(ServiceError::InvalidRequest(
                "trial_ends_at is only allowed with status trial".into(),
            ));
        }
        self.get_project(project_id).await?;
        let entitlement = Entitlement {
            product: product.to_owned(),
            status,
            trial_ends_at,
            updated_at: self.now(),
        };
        self.store.put_entitlement(project_id, &entitlement).await?;
        self.verifier.forget_entitlement(project_id, product);
        Ok(entitlement)
    }

    /// Creates a key. The plaintext secret is in the result and nowhere else:
    /// only its keyed hash and preview reach the store.
    #[tracing::instrument(skip_all, fields(%project_id, kind = ?request.kind))]
    pub async fn create_key(
        &self,
        project_id: &ProjectId,
        name: &str,
        request: &KeyRequest,
    ) -> Result<CreatedKey, ServiceError> {
        self.get_project(project_id).await?;
        let name = DisplayName::parse(name)?;
        let now = self.now();
        let plan = request.plan(self.catalog, now)?;
        let entitlements = self.store.list_entitlements(project_id).await?;

        let secret = PlaintextSecret::generate(plan.environment.secret_prefix());
        let parsed = secret.parsed();
        let record = KeyRecord {
            id: KeyId::generate(),
            project_id: project_id.clone(),
            name,
            kind: plan.kind,
            environment: plan.environment,
            scopes: plan.scopes,
            expiration: plan.expiration,
            secret_hash: self.pepper.hash(&parsed),
            secret_preview: parsed.preview(),
            created_at: now,
            expires_at: plan.expires_at,
            last_used_at: None,
            revoked_at: None,
            revoke_reason: None,
            rotated_from: None,
            rotated_to: None,
        };
        self.store.insert_key(&record).await?;
        tracing::info!(key_id = %record.id, "key created");
        Ok(CreatedKey {
            blocked_scopes: blocked_scopes(self.catalog, &record.scopes, &entitlements, now),
            key: record.preview_at(now),
            secret,
        })
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn get_key(
        &self,
        project_id: &ProjectId,
        key_id: &str,
    ) -> Result<PreviewRow, ServiceError> {
        // A malformed id cannot name a key: same answer as an unknown one.
        let key_id = KeyId::parse(key_id).map_err(|_| ServiceError::NotFound("key"))?;
        let record = self
            .store
            .get_key(project_id, &key_id)
            .await?
            .ok_or(ServiceError::NotFound("key"))?;
        Ok(record.preview_at(self.now()))
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn list_keys(
        &self,
        project_id: &ProjectId,
        filter: &KeyFilter,
    ) -> Result<KeyPage, ServiceError> {
        self.get_project(project_id).await?;
        let now = self.now();
        let after = match filter.cursor.as_deref() {
            None | Some("") => None,
            Some(text) => Some(KeyCursor::decode(text).ok_or_else(|| {
                ServiceError::InvalidRequest("cursor is not one this API returned".into())
            })?),
        };
        let limit = match filter.limit {
            None => DEFAULT_PAGE,
            Some(limit @ 1..=MAX_PAGE) => limit,
            Some(_) => {
                return Err(ServiceError::InvalidRequest(format!(
                    "limit must be between 1 and {MAX_PAGE}"
                )));
            }
        };
        let expiring_before = match filter.expiring_within_days {
            None => None,
            Some(days @ 0..=3650) => Some(now + TimeDelta::days(i64::from(days))),
            Some(_) => {
                return Err(ServiceError::InvalidRequest(
                    "expiring_within_days must be between 0 and 3650".into(),
                ));
            }
        };
        let query = KeyQuery {
            now,
            status: filter.status,
            environment: filter.environment,
            kind: filter.kind,
            expiring_before,
            limit,
            after,
        };
        let page = self.store.list_keys(project_id, &query).await?;
        Ok(KeyPage {
            items: page
                .items
                .iter()
                .map(|record| record.preview_at(now))
                .collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        })
    }
}
