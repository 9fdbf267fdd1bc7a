//! Storage for AuthToolkit Keys: one [`Store`] trait, one SQL implementation
//! that runs on SQLite (the default) and PostgreSQL (for several nodes).

/// The SQL implementation of [`Store`] for SQLite and PostgreSQL.
pub mod sql;
/// Fresh databases for tests: a temporary SQLite file or a new PostgreSQL database.
pub mod testing;

use async_trait::async_trait;
use atk_core::entitlement::Entitlement;
use atk_core::ids::{KeyId, ProjectId};
use atk_core::key::{Environment, KeyKind, KeyRecord, KeyStatus};
use atk_core::project::Project;
use atk_core::secret::SecretHash;
use chrono::{DateTime, Utc};
use thiserror::Error;

pub use sql::SqlStore;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique constraint said no: the thing already exists.
    #[error("already exists")]
    Conflict,
    #[error("the database URL is not sqlite:… or postgres://…: {0}")]
    UnsupportedUrl(String),
    /// A stored value no longer parses: the database was edited by hand or
    /// by a newer version.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// Filters and paging for listing a project's keys. `now` decides status,
/// so listing agrees with verification about which keys are active.
#[derive(Debug, Clone)]
pub struct KeyQuery {
    pub now: DateTime<Utc>,
    pub status: Option<KeyStatus>,
    pub environment: Option<Environment>,
    pub kind: Option<KeyKind>,
    /// Only active keys whose `expires_at` is at or before this instant.
    pub expiring_before: Option<DateTime<Utc>>,
    pub limit: u32,
    pub after: Option<KeyCursor>,
}

/// Position in the newest-first key listing: the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCursor {
    pub created_at: DateTime<Utc>,
    pub id: KeyId,
}

impl KeyCursor {
    /// Opaque to clients; `<millis>.<key id>` underneath.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.timestamp_millis(), self.id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (millis, id) = text.split_once('.')?;
        Some(Self {
            created_at: DateTime::from_timestamp_millis(millis.parse().ok()?)?,
            id: KeyId::parse(id).ok()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

/// Everything the service keeps. Implementations must pass the conformance
/// suite in `tests/conformance.rs`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn has_projects(&self) -> Result<bool, StoreError>;

    /// Creates the project with its entitlement table in one transaction.
    /// [`StoreError::Conflict`] when the id is taken.
    async fn create_project(
        &self,
        project: &Project,
        entitlements: &[Entitlement],
    ) -> Result<(), StoreError>;

    async fn get_project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;

    async fn list_entitlements(&self, project: &ProjectId) -> Result<Vec<Entitlement>, StoreError>;

    async fn get_entitlement(
        &self,
        project: &ProjectId,
        product: &str,
    ) -> Result<Option<Entitlement>, StoreError>;

    /// Inserts or replaces one product's entitlement.
    async fn put_entitlement(
        &self,
        project: &ProjectId,
        entitlement: &Entitlement,
    ) -> Result<(), StoreError>;

    /// [`StoreError::Conflict`] when the id or the secret hash is taken.
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;

    async fn get_key(
        &self,
        project: &ProjectId,
        id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// The verification lookup: by keyed hash, across projects.
    async fn find_key_by_hash(&self, hash: &SecretHash) -> Result<Option<KeyRecord>, StoreError>;

    /// Newest first.
    async fn list_keys(
        &self,
        project: &ProjectId,
        query: &KeyQuery,
    ) -> Result<Page<KeyRecord, KeyCursor>, StoreError>;

    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Stores `value` unless `name` is already set; `true` when this call set it.
    /// Lets several nodes starting at once agree on one value.
    async fn insert_setting_if_absent(&self, name: &str, value: &str) -> Result<bool, StoreError>;
}
