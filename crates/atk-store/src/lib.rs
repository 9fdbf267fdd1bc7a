//! Storage for AuthToolkit Keys: one [`Store`] trait, one SQL implementation
//! that runs on SQLite (the default) and PostgreSQL (for several nodes).

/// Change announcements from the changing transaction to every node.
pub mod feed;
/// Whether the database is reachable: the breaker every SQL call goes through.
mod health;
/// The SQL implementation of [`Store`] and [`AccountStore`] for SQLite and PostgreSQL.
pub mod sql;
/// [`AccountStore`] on the same SQL store.
mod sql_accounts;
mod sql_help;
/// Fresh databases for tests: a temporary SQLite file or a new PostgreSQL database.
pub mod testing;

use async_trait::async_trait;
use atk_core::access::Role;
use atk_core::account::{AccountRecord, ConsoleLink, LinkPurpose, Session};
use atk_core::audit::{AuditAction, AuditEvent};
use atk_core::decision::VerifyCode;
use atk_core::entitlement::Entitlement;
use atk_core::ids::{AccountId, Email, KeyId, ProjectId};
use atk_core::key::{Environment, KeyKind, KeyRecord, KeyStatus};
use atk_core::lifecycle::Ending;
use atk_core::project::Project;
use atk_core::secret::SecretHash;
use atk_core::usage::UsageRow;
use chrono::{DateTime, Utc};
use thiserror::Error;

pub use sql::SqlStore;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique constraint said no (the thing already exists), or a
    /// conditional change found the row no longer in a state that allows it.
    #[error("conflict")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("the database URL is not sqlite:… or postgres://…: {0}")]
    UnsupportedUrl(String),
    /// A stored value no longer parses: the database was edited by hand or
    /// by a newer version.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database could not be reached (or is known to be down and the
    /// call was refused at once): callers answer 503 and retry later.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if health::is_unreachable(&error) {
            Self::Unavailable(error.to_string())
        } else {
            Self::Database(error)
        }
    }
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
        // Only what `encode` writes: plain digits, no sign or padding.
        let plain = !millis.is_empty()
            && millis.bytes().all(|b| b.is_ascii_digit())
            && (millis == "0" || !millis.starts_with('0'));
        if !plain {
            return None;
        }
        Some(Self {
            created_at: DateTime::from_timestamp_millis(millis.parse().ok()?)?,
            id: KeyId::parse(id).ok()?,
        })
    }
}

/// A rotation, applied atomically: the old key gets `rotated_to` and its
/// end moved to `old_ends_at` (never later), the new key is inserted, the
/// event is appended. Fails with `Conflict` if the old key was already
/// rotated or had ended at `now`.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub project: &'a ProjectId,
    pub old_id: &'a KeyId,
    pub now: DateTime<Utc>,
    pub old_ends_at: DateTime<Utc>,
    pub new_key: &'a KeyRecord,
    pub event: &'a AuditEvent,
}

/// One counter increment, as the usage recorder flushes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    pub key_id: KeyId,
    pub project_id: ProjectId,
    pub action: Option<&'static str>,
    pub code: VerifyCode,
    pub hour: DateTime<Utc>,
    pub count: u64,
}

/// One flush of the usage recorder. Its id makes the flush idempotent: a
/// batch whose commit succeeded but whose acknowledgement was lost is
/// recognised when it is sent again, and not counted twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBatch {
    /// Random, made once per batch and kept across its retries.
    pub id: String,
    /// When the batch was made; applied ids are forgotten a day later.
    pub made_at: DateTime<Utc>,
    pub counts: Vec<UsageCount>,
    pub last_used: Vec<(KeyId, DateTime<Utc>)>,
}

#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub action: Option<AuditAction>,
    pub limit: u32,
    /// Events older than this position (the `seq` of the last one seen).
    pub before: Option<i64>,
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

    /// Creates the project with its entitlement table and its audit event in
    /// one transaction. [`StoreError::Conflict`] when the id is taken.
    async fn create_project(
        &self,
        project: &Project,
        entitlements: &[Entitlement],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    async fn get_project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;

    /// Every project, by id.
    async fn list_projects(&self) -> Result<Vec<Project>, StoreError>;

    async fn list_entitlements(&self, project: &ProjectId) -> Result<Vec<Entitlement>, StoreError>;

    async fn get_entitlement(
        &self,
        project: &ProjectId,
        product: &str,
    ) -> Result<Option<Entitlement>, StoreError>;

    /// Inserts or replaces one product's entitlement, with its audit event.
    async fn put_entitlement(
        &self,
        project: &ProjectId,
        entitlement: &Entitlement,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Inserts a key with its audit event. [`StoreError::Conflict`] when the
    /// id or the secret hash is taken.
    async fn insert_key(&self, key: &KeyRecord, event: &AuditEvent) -> Result<(), StoreError>;

    /// See [`Rotation`]. Returns the old key as it is now.
    async fn rotate_key(&self, rotation: Rotation<'_>) -> Result<KeyRecord, StoreError>;

    /// Revokes or expires a key that is active at `now`, with its audit
    /// event. [`StoreError::Conflict`] when it had already ended,
    /// [`StoreError::NotFound`] when the project has no such key.
    async fn end_key(
        &self,
        project: &ProjectId,
        id: &KeyId,
        now: DateTime<Utc>,
        ending: &Ending,
        event: &AuditEvent,
    ) -> Result<KeyRecord, StoreError>;

    async fn get_key(
        &self,
        project: &ProjectId,
        id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// The verification lookup: by keyed hash, across projects.
    async fn find_key_by_hash(&self, hash: &SecretHash) -> Result<Option<KeyRecord>, StoreError>;

    /// Every key of the project that `creator` created (`created_by`),
    /// whatever its status, oldest first.
    async fn keys_created_by(
        &self,
        project: &ProjectId,
        creator: &KeyId,
    ) -> Result<Vec<KeyRecord>, StoreError>;

    /// Newest first.
    async fn list_keys(
        &self,
        project: &ProjectId,
        query: &KeyQuery,
    ) -> Result<Page<KeyRecord, KeyCursor>, StoreError>;

    /// Newest first; the page cursor is the last event's position.
    async fn list_audit(
        &self,
        project: &ProjectId,
        query: &AuditQuery,
    ) -> Result<Page<AuditEvent, i64>, StoreError>;

    /// Adds counts (never overwrites, so several nodes sum) and moves
    /// `last_used_at` forward, in one transaction with the batch's id: a
    /// batch lands whole or not at all, and once only (a batch already
    /// applied is acknowledged again without counting).
    async fn add_usage(&self, batch: &UsageBatch) -> Result<(), StoreError>;

    /// A key's counters for the hours in `[from, to)`.
    async fn usage(
        &self,
        project: &ProjectId,
        key: &KeyId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, StoreError>;

    /// Every change a cache may hold, announced by the transaction that
    /// made it (see [`feed`]). The first call starts the listener.
    fn change_feed(&self) -> feed::ChangeFeed;

    /// The secret hash of every key, whatever its status: the verifier's
    /// membership filter, kept current afterwards through the change feed.
    async fn all_key_hashes(&self) -> Result<Vec<SecretHash>, StoreError>;

    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Stores `value` unless `name` is already set; `true` when this call set it.
    /// Lets several nodes starting at once agree on one value.
    async fn insert_setting_if_absent(&self, name: &str, value: &str) -> Result<bool, StoreError>;
}

/// A new account made by redeeming a one-time link: the link is spent, the
/// account and its roles are created and the events appended, all at once
/// or not at all.
#[derive(Debug, Clone, Copy)]
pub struct Redemption<'a> {
    pub link_hash: &'a SecretHash,
    pub purpose: LinkPurpose,
    pub now: DateTime<Utc>,
    pub account: &'a AccountRecord,
    pub roles: &'a [(ProjectId, Role)],
    pub events: &'a [AuditEvent],
}

/// Console accounts, their roles, sessions and one-time links: a narrow
/// trait beside [`Store`], so neither grows with the other's features.
/// Implementations must pass the conformance suite in `tests/conformance.rs`.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug + 'static {
    async fn has_accounts(&self) -> Result<bool, StoreError>;

    /// Stores a one-time link with its audit events, in one transaction.
    async fn insert_link(
        &self,
        link: &ConsoleLink,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;

    async fn get_link(&self, hash: &SecretHash) -> Result<Option<ConsoleLink>, StoreError>;

    /// Spends the link (only if it has the purpose, is unused and open at
    /// `now`) and creates the account with its roles and events in one
    /// transaction. A setup link creates the first owner only: once one
    /// exists, every setup link is spent. [`StoreError::NotFound`] when the
    /// link cannot be spent, [`StoreError::Conflict`] when the email is
    /// taken (the link stays unspent).
    async fn redeem_link(&self, redemption: Redemption<'_>) -> Result<(), StoreError>;

    /// Spends an open invite link and gives an existing account the role it
    /// grants, with the events, in one transaction. [`StoreError::NotFound`]
    /// when the link cannot be spent, [`StoreError::Conflict`] when the
    /// account already has a role in the project (the link stays unspent).
    async fn redeem_invite_for_account(
        &self,
        link_hash: &SecretHash,
        now: DateTime<Utc>,
        account: &AccountId,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;

    async fn find_account_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<AccountRecord>, StoreError>;

    async fn get_account(&self, id: &AccountId) -> Result<Option<AccountRecord>, StoreError>;

    /// The account's roles, by project id.
    async fn roles_of(&self, account: &AccountId) -> Result<Vec<(ProjectId, Role)>, StoreError>;

    /// The project's members and their roles, by email.
    async fn members_of(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<(AccountRecord, Role)>, StoreError>;

    /// Sets the account's role in the project, with its audit event.
    async fn set_role(
        &self,
        project: &ProjectId,
        account: &AccountId,
        role: Role,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;

    async fn get_session(&self, hash: &SecretHash) -> Result<Option<Session>, StoreError>;

    /// Moves `last_seen_at` forward (never back).
    async fn touch_session(&self, hash: &SecretHash, now: DateTime<Utc>) -> Result<(), StoreError>;

    async fn delete_session(&self, hash: &SecretHash) -> Result<(), StoreError>;

    /// Records that a form was submitted; `false` when it already was.
    async fn claim_form_nonce(
        &self,
        hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes what can no longer be used at `now`: ended sessions, spent
    /// or expired links, form nonces older than `keep_nonces_since`.
    /// Returns how many rows went.
    async fn prune(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
        keep_nonces_since: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Appends events that record no change of their own (sign-in attempts).
    async fn append_events(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
}

/// Distinct questions kept per project and route; past it, misses are only
/// counted (under the withheld question).
pub const HELP_MISS_QUESTIONS_PER_ROUTE: i64 = 200;

/// One question Page Help or the Knowledge Hub answered with the fallback.
#[derive(Debug, Clone, Copy)]
pub struct HelpMiss<'a> {
    pub project: Option<&'a ProjectId>,
    /// A help route id, or `knowledge-hub`.
    pub route: &'a str,
    /// `None` when the question must not be kept (it looked like a secret).
    pub question: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// How often a question went unanswered on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpMissCount {
    pub route: String,
    /// `None`: withheld (looked like a secret) or past the per-route cap.
    pub question: Option<String>,
    pub asked: u64,
    pub last_asked_at: DateTime<Utc>,
}

/// Page Help's unanswered questions, as coverage gaps for writers.
/// Implementations must pass the conformance suite in `tests/conformance.rs`.
#[async_trait]
pub trait HelpGapStore: Send + Sync + std::fmt::Debug + 'static {
    /// Counts one miss: a new question is kept until the route has
    /// [`HELP_MISS_QUESTIONS_PER_ROUTE`] of them in the project.
    async fn record_help_miss(&self, miss: &HelpMiss<'_>) -> Result<(), StoreError>;

    /// The project's misses, most asked first (then most recent), at most
    /// `limit`.
    async fn help_misses(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> Result<Vec<HelpMissCount>, StoreError>;
}
