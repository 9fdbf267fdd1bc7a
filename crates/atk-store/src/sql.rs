//! One implementation for both databases. Every query is written once in the
//! common subset of SQLite and PostgreSQL (`$n` parameters, `ON CONFLICT`,
//! integer milliseconds for time), and [`on_pool!`] compiles each method body
//! once per driver. That keeps the two stores from drifting apart, which two
//! hand-written copies eventually would.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use atk_core::audit::{Actor, ActorType, AuditAction, AuditEvent, Target};
use atk_core::clock::millis_to_time;
use atk_core::decision::VerifyCode;
use atk_core::entitlement::{Entitlement, EntitlementStatus};
use atk_core::ids::{DisplayName, KeyId, ProjectId};
use atk_core::key::{Environment, Expiration, KeyKind, KeyRecord, KeyStatus};
use atk_core::lifecycle::Ending;
use atk_core::limits::{IpAllowlist, RateLimit};
use atk_core::project::Project;
use atk_core::secret::SecretHash;
use atk_core::usage::UsageRow;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::feed::{Announce, Change, ChangeFeed};
use crate::{AuditQuery, KeyCursor, KeyQuery, Page, Rotation, Store, StoreError, UsageBatch};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Rows per statement when usage sums are added: six parameters each stays
/// far below SQLite's 32,766 and PostgreSQL's 65,535.
const USAGE_ROWS_PER_STATEMENT: usize = 1_000;

/// Runs `$body` with `$pool` bound to whichever driver's pool this store
/// has, through the store's breaker: refused at once while the database is
/// known to be unreachable, and teaching the breaker by its outcome.
/// `$body` may use `?`; its errors end the block, not the caller.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {{
        let store = &$store;
        store.health.admit()?;
        let outcome = async {
            Ok::<_, $crate::StoreError>(match &store.pool {
                $crate::sql::Pool::Sqlite($pool) => $body,
                $crate::sql::Pool::Postgres($pool) => $body,
            })
        }
        .await;
        store.health.observe(outcome)?
    }};
}
pub(crate) use on_pool;

#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) pool: Pool,
    pub(crate) health: std::sync::Arc<crate::health::Health>,
    feed: ChangeFeed,
    /// This process among those sharing a SQLite file: its own rows in
    /// `changes` were announced at commit and are not read back.
    origin: i64,
    /// The listener or poller, started by the first [`Store::change_feed`].
    feed_task: std::sync::Arc<std::sync::OnceLock<tokio::task::JoinHandle<()>>>,
}

impl SqlStore {
    /// Connects without migrating. `url` is `sqlite:path` or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            // Verification reads are short; a modest pool per node keeps a
            // fleet of nodes within PostgreSQL's default 100 connections.
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    // Also how long the first calls wait before a lost
                    // database opens the breaker (see `health`).
                    .acquire_timeout(Duration::from_secs(3))
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // WAL lets verifications read while a create writes. FULL
                // syncs every commit: a revocation must survive a power cut.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let feed = match pool {
            Pool::Sqlite(_) => ChangeFeed::connected(),
            Pool::Postgres(_) => ChangeFeed::disconnected(),
        };
        Ok(Self {
            pool,
            health: std::sync::Arc::new(crate::health::Health::new()),
            feed,
            origin: i64::from(rand_origin()),
            feed_task: std::sync::Arc::default(),
        })
    }

    /// Announces `changes` in process once their transaction committed
    /// (SQLite; PostgreSQL's listener hears its own NOTIFY).
    fn announced(&self, changes: &[Change]) {
        if matches!(self.pool, Pool::Sqlite(_)) {
            for change in changes {
                self.feed.deliver(&change.payload());
            }
        }
    }

    /// Connects and applies pending migrations (safe to run from several
    /// nodes at once: the migrator takes a database lock).
    pub async fn connect_and_migrate(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Runs a statement as is. Only for tests that must try what the API
    /// never does (such as editing the audit log).
    #[doc(hidden)]
    pub async fn execute_raw_for_test(&self, sql: &'static str) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(sql).execute(pool).await?.rows_affected()))
    }

    pub async fn close(&self) {
        if let Some(task) = self.feed_task.get() {
            task.abort();
        }
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// A process-unique number: the process id mixed with the start time.
fn rand_origin() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    std::process::id().rotate_left(16) ^ nanos
}

/// Drops the password from a URL before it goes into an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…{}", &url[..scheme_end], &url[at..])
        }
        _ => url.chars().take(64).collect(),
    }
}

pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn unique_to_conflict(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::from(error),
    }
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}"))
}

#[derive(sqlx::FromRow)]
struct ProjectRow {
    project_id: String,
    name: String,
    created_at: i64,
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;
    fn try_from(row: ProjectRow) -> Result<Self, StoreError> {
        Ok(Project {
            project_id: ProjectId::parse(&row.project_id)
                .map_err(|_| corrupt("project id", &row.project_id))?,
            name: DisplayName::stored(row.name),
            created_at: millis_to_time(row.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct EntitlementRow {
    product: String,
    status: String,
    trial_ends_at: Option<i64>,
    updated_at: i64,
}

impl TryFrom<EntitlementRow> for Entitlement {
    type Error = StoreError;
    fn try_from(row: EntitlementRow) -> Result<Self, StoreError> {
        Ok(Entitlement {
            status: EntitlementStatus::parse(&row.status)
                .ok_or_else(|| corrupt("entitlement status", &row.status))?,
            product: row.product,
            trial_ends_at: row.trial_ends_at.map(millis_to_time),
            updated_at: millis_to_time(row.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    project_id: String,
    name: String,
    kind: String,
    environment: String,
    scopes: String,
    expiration: String,
    secret_hash: Vec<u8>,
    secret_preview: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    revoke_reason: Option<String>,
    rotated_from: Option<String>,
    rotated_to: Option<String>,
    created_by: Option<String>,
    allowed_ips: String,
    rate_limit_requests: Option<i64>,
    rate_limit_per_seconds: Option<i64>,
}

fn parse_key_id(text: &str) -> Result<KeyId, StoreError> {
    KeyId::parse(text).map_err(|_| corrupt("key id", text))
}

impl KeyRow {
    fn hash(&self) -> Result<SecretHash, StoreError> {
        self.secret_hash
            .as_slice()
            .try_into()
            .map(SecretHash)
            .map_err(|_| corrupt("secret hash of key", &self.id))
    }
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let secret_hash = row.hash()?;
        Ok(KeyRecord {
            id: parse_key_id(&row.id)?,
            project_id: ProjectId::parse(&row.project_id)
                .map_err(|_| corrupt("project id", &row.project_id))?,
            name: DisplayName::stored(row.name),
            kind: KeyKind::parse(&row.kind).ok_or_else(|| corrupt("key kind", &row.kind))?,
            environment: Environment::parse(&row.environment)
                .ok_or_else(|| corrupt("environment", &row.environment))?,
            scopes: serde_json::from_str(&row.scopes)
                .map_err(|_| corrupt("scopes", &row.scopes))?,
            expiration: Expiration::parse(&row.expiration)
                .ok_or_else(|| corrupt("expiration", &row.expiration))?,
            secret_hash,
            secret_preview: row.secret_preview,
            created_at: millis_to_time(row.created_at),
            expires_at: row.expires_at.map(millis_to_time),
            last_used_at: row.last_used_at.map(millis_to_time),
            revoked_at: row.revoked_at.map(millis_to_time),
            revoke_reason: row.revoke_reason,
            rotated_from: row.rotated_from.as_deref().map(parse_key_id).transpose()?,
            rotated_to: row.rotated_to.as_deref().map(parse_key_id).transpose()?,
            created_by: row.created_by.as_deref().map(parse_key_id).transpose()?,
            allowed_ips: serde_json::from_str::<Vec<String>>(&row.allowed_ips)
                .ok()
                .and_then(|list| IpAllowlist::parse(&list).ok())
                .ok_or_else(|| corrupt("allowed_ips of key", &row.id))?,
            rate_limit: match (row.rate_limit_requests, row.rate_limit_per_seconds) {
                (Some(requests), Some(per_seconds)) => Some(RateLimit {
                    requests: u32::try_from(requests)
                        .map_err(|_| corrupt("rate limit of key", &row.id))?,
                    per_seconds: u32::try_from(per_seconds)
                        .map_err(|_| corrupt("rate limit of key", &row.id))?,
                }),
                _ => None,
            },
        })
    }
}

fn key_records(rows: Vec<KeyRow>) -> Result<Vec<KeyRecord>, StoreError> {
    rows.into_iter().map(KeyRecord::try_from).collect()
}

/// `SELECT <KEY_COLUMNS> FROM api_keys` + `$rest`, as a `&'static str` so
/// sqlx accepts it as safe SQL.
macro_rules! select_keys {
    ($rest:literal) => {
        concat!(
            "SELECT id, project_id, name, kind, environment, scopes, expiration, ",
            "secret_hash, secret_preview, created_at, expires_at, last_used_at, revoked_at, ",
            "revoke_reason, rotated_from, rotated_to, created_by, allowed_ips, rate_limit_requests, rate_limit_per_seconds FROM api_keys ",
            $rest
        )
    };
}

/// Appends `$event` through `$executor` (a transaction, so the event lands
/// with the change it records or not at all).
macro_rules! append_event {
    ($executor:expr, $event:expr) => {{
        let event: &atk_core::audit::AuditEvent = $event;
        sqlx::query(
            "INSERT INTO audit_events (id, project_id, at, actor_type, actor_id, action, \
             target_type, target_id, source_ip, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(event.id.as_str())
        .bind(
            event
                .project_id
                .as_ref()
                .map(atk_core::ids::ProjectId::as_str),
        )
        .bind($crate::sql::millis(event.at))
        .bind(event.actor.kind.as_str())
        .bind(event.actor.id.as_str())
        .bind(event.action.as_str())
        .bind(event.target.kind.as_str())
        .bind(event.target.id.as_str())
        .bind(event.source_ip.as_deref())
        .bind(event.details.to_string())
        .execute($executor)
        .await?;
    }};
}
pub(crate) use append_event;

/// Inserts `$key` through `$executor`.
macro_rules! insert_key_row {
    ($executor:expr, $key:expr) => {{
        let key: &KeyRecord = $key;
        let scopes = serde_json::to_string(&key.scopes).expect("a list of strings serializes");
        let allowed_ips = serde_json::to_string(&key.allowed_ips.to_strings())
            .expect("a list of strings serializes");
        sqlx::query(concat!(
            "INSERT INTO api_keys (id, project_id, name, kind, environment, scopes, expiration, ",
            "secret_hash, secret_preview, created_at, expires_at, last_used_at, revoked_at, ",
            "revoke_reason, rotated_from, rotated_to, created_by, allowed_ips, rate_limit_requests, rate_limit_per_seconds) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ))
        .bind(key.id.as_str())
        .bind(key.project_id.as_str())
        .bind(key.name.as_str())
        .bind(key.kind.as_str())
        .bind(key.environment.as_str())
        .bind(scopes.as_str())
        .bind(key.expiration.as_str())
        .bind(key.secret_hash.0.as_slice())
        .bind(key.secret_preview.as_str())
        .bind(millis(key.created_at))
        .bind(key.expires_at.map(millis))
        .bind(key.last_used_at.map(millis))
        .bind(key.revoked_at.map(millis))
        .bind(key.revoke_reason.as_deref())
        .bind(key.rotated_from.as_ref().map(KeyId::as_str))
        .bind(key.rotated_to.as_ref().map(KeyId::as_str))
        .bind(key.created_by.as_ref().map(KeyId::as_str))
        .bind(allowed_ips.as_str())
        .bind(key.rate_limit.map(|limit| i64::from(limit.requests)))
        .bind(key.rate_limit.map(|limit| i64::from(limit.per_seconds)))
        .execute($executor)
        .await
        .map_err(unique_to_conflict)?;
    }};
}

/// After a conditional UPDATE matched nothing: `NotFound` when the project
/// has no such key, `Conflict` when it has one in the wrong state.
macro_rules! missing_or_conflict {
    ($executor:expr, $project:expr, $id:expr) => {{
        let exists: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE project_id = $1 AND id = $2")
                .bind($project.as_str())
                .bind($id.as_str())
                .fetch_one($executor)
                .await?;
        if exists > 0 {
            StoreError::Conflict
        } else {
            StoreError::NotFound
        }
    }};
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    id: String,
    project_id: Option<String>,
    at: i64,
    actor_type: String,
    actor_id: String,
    action: String,
    target_type: String,
    target_id: String,
    source_ip: Option<String>,
    details: String,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            id: row.id,
            at: millis_to_time(row.at),
            actor: Actor {
                kind: ActorType::parse(&row.actor_type)
                    .ok_or_else(|| corrupt("actor type", &row.actor_type))?,
                id: row.actor_id,
            },
            action: AuditAction::parse(&row.action)
                .ok_or_else(|| corrupt("audit action", &row.action))?,
            target: Target {
                kind: row.target_type,
                id: row.target_id,
            },
            project_id: row
                .project_id
                .as_deref()
                .map(|id| ProjectId::parse(id).map_err(|_| corrupt("project id", id)))
                .transpose()?,
            source_ip: row.source_ip,
            details: serde_json::from_str(&row.details)
                .map_err(|_| corrupt("audit details", &row.details))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UsageCountRow {
    hour: i64,
    action: String,
    code: String,
    count: i64,
}

#[async_trait]
impl Store for SqlStore {
    /// Always goes to the database, breaker or not: readiness must see a
    /// database that has come back, and it closes the breaker when it has.
    async fn ping(&self) -> Result<(), StoreError> {
        let outcome = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        };
        self.health.observe(outcome.map_err(StoreError::from))
    }

    async fn has_projects(&self) -> Result<bool, StoreError> {
        // COUNT is BIGINT on PostgreSQL and INTEGER on SQLite: both i64.
        let found: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM projects LIMIT 1) AS any_project")
                .fetch_one(pool)
                .await?
        });
        Ok(found > 0)
    }

    async fn create_project(
        &self,
        project: &Project,
        entitlements: &[Entitlement],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO projects (project_id, name, created_at) VALUES ($1, $2, $3)")
                .bind(project.project_id.as_str())
                .bind(project.name.as_str())
                .bind(millis(project.created_at))
                .execute(&mut *tx)
                .await
                .map_err(unique_to_conflict)?;
            for entitlement in entitlements {
                sqlx::query(
                    "INSERT INTO entitlements (project_id, product, status, trial_ends_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(project.project_id.as_str())
                .bind(entitlement.product.as_str())
                .bind(entitlement.status.as_str())
                .bind(entitlement.trial_ends_at.map(millis))
                .bind(millis(entitlement.updated_at))
                .execute(&mut *tx)
                .await?;
            }
            append_event!(&mut *tx, event);
            tx.commit().await?;
        });
        Ok(())
    }

    async fn get_project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        let row: Option<ProjectRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT project_id, name, created_at FROM projects WHERE project_id = $1")
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(Project::try_from).transpose()
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        let rows: Vec<ProjectRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT project_id, name, created_at FROM projects ORDER BY project_id")
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Project::try_from).collect()
    }

    async fn list_entitlements(&self, project: &ProjectId) -> Result<Vec<Entitlement>, StoreError> {
        let rows: Vec<EntitlementRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT product, status, trial_ends_at, updated_at FROM entitlements \
                 WHERE project_id = $1 ORDER BY product",
            )
            .bind(project.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Entitlement::try_from).collect()
    }

    async fn get_entitlement(
        &self,
        project: &ProjectId,
        product: &str,
    ) -> Result<Option<Entitlement>, StoreError> {
        let row: Option<EntitlementRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT product, status, trial_ends_at, updated_at FROM entitlements \
                 WHERE project_id = $1 AND product = $2",
            )
            .bind(project.as_str())
            .bind(product)
            .fetch_optional(pool)
            .await?
        });
        row.map(Entitlement::try_from).transpose()
    }

    async fn put_entitlement(
        &self,
        project: &ProjectId,
        entitlement: &Entitlement,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let changes = [Change::Entitlement {
            project: project.clone(),
            product: entitlement.product.clone(),
        }];
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO entitlements (project_id, product, status, trial_ends_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (project_id, product) DO UPDATE SET \
                 status = excluded.status, trial_ends_at = excluded.trial_ends_at, \
                 updated_at = excluded.updated_at",
            )
            .bind(project.as_str())
            .bind(entitlement.product.as_str())
            .bind(entitlement.status.as_str())
            .bind(entitlement.trial_ends_at.map(millis))
            .bind(millis(entitlement.updated_at))
            .execute(&mut *tx)
            .await?;
            append_event!(&mut *tx, event);
            tx.announce(self.origin, &changes).await?;
            tx.commit().await?;
        });
        self.announced(&changes);
        Ok(())
    }

    async fn insert_key(&self, key: &KeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        let changes = [Change::Key(key.secret_hash)];
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_key_row!(&mut *tx, key);
            append_event!(&mut *tx, event);
            tx.announce(self.origin, &changes).await?;
            tx.commit().await?;
        });
        self.announced(&changes);
        Ok(())
    }

    async fn rotate_key(&self, rotation: Rotation<'_>) -> Result<KeyRecord, StoreError> {
        // The conditional UPDATE comes first: it takes the row (or, on
        // SQLite, the write lock) before anything is read, so of two
        // concurrent rotations exactly one matches and the other then sees
        // `rotated_to` already set.
        let row: KeyRow = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let updated: Option<KeyRow> = sqlx::query_as(concat!(
                "UPDATE api_keys SET rotated_to = $3, ",
                "expires_at = CASE WHEN expires_at IS NULL OR expires_at > $4 THEN $4 ELSE expires_at END ",
                "WHERE project_id = $1 AND id = $2 AND rotated_to IS NULL AND revoked_at IS NULL ",
                "AND (expires_at IS NULL OR expires_at > $5) ",
                "RETURNING id, project_id, name, kind, environment, scopes, expiration, ",
                "secret_hash, secret_preview, created_at, expires_at, last_used_at, revoked_at, ",
                "revoke_reason, rotated_from, rotated_to, created_by, allowed_ips, rate_limit_requests, rate_limit_per_seconds"
            ))
            .bind(rotation.project.as_str())
            .bind(rotation.old_id.as_str())
            .bind(rotation.new_key.id.as_str())
            .bind(millis(rotation.old_ends_at))
            .bind(millis(rotation.now))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(updated) = updated else {
                return Err(missing_or_conflict!(&mut *tx, rotation.project, rotation.old_id));
            };
            insert_key_row!(&mut *tx, rotation.new_key);
            append_event!(&mut *tx, rotation.event);
            tx.announce(self.origin, &[Change::Key(updated.hash()?), Change::Key(rotation.new_key.secret_hash)]).await?;
            tx.commit().await?;
            updated
        });
        let old = KeyRecord::try_from(row)?;
        self.announced(&[
            Change::Key(old.secret_hash),
            Change::Key(rotation.new_key.secret_hash),
        ]);
        Ok(old)
    }

    async fn end_key(
        &self,
        project: &ProjectId,
        id: &KeyId,
        now: DateTime<Utc>,
        ending: &Ending,
        event: &AuditEvent,
    ) -> Result<KeyRecord, StoreError> {
        // Revoke sets `revoked_at`; expire moves `expires_at` to now. Either
        // way status stays derived, and only a key active at `now` changes.
        let (revoked_at, revoke_reason, expires_at) = match ending {
            Ending::Revoke { reason } => (Some(millis(now)), reason.as_deref(), None),
            Ending::Expire => (None, None, Some(millis(now))),
        };
        let row: KeyRow = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let updated: Option<KeyRow> = sqlx::query_as(concat!(
                "UPDATE api_keys SET revoked_at = COALESCE($3, revoked_at), ",
                "revoke_reason = COALESCE($4, revoke_reason), ",
                "expires_at = COALESCE($5, expires_at) ",
                "WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL ",
                "AND (expires_at IS NULL OR expires_at > $6) ",
                "RETURNING id, project_id, name, kind, environment, scopes, expiration, ",
                "secret_hash, secret_preview, created_at, expires_at, last_used_at, revoked_at, ",
                "revoke_reason, rotated_from, rotated_to, created_by, allowed_ips, rate_limit_requests, rate_limit_per_seconds"
            ))
            .bind(project.as_str())
            .bind(id.as_str())
            .bind(revoked_at)
            .bind(revoke_reason)
            .bind(expires_at)
            .bind(millis(now))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(updated) = updated else {
                return Err(missing_or_conflict!(&mut *tx, project, id));
            };
            append_event!(&mut *tx, event);
            tx.announce(self.origin, &[Change::Key(updated.hash()?)]).await?;
            tx.commit().await?;
            updated
        });
        let ended = KeyRecord::try_from(row)?;
        self.announced(&[Change::Key(ended.secret_hash)]);
        Ok(ended)
    }

    async fn get_key(
        &self,
        project: &ProjectId,
        id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let row: Option<KeyRow> = on_pool!(self, pool => {
            sqlx::query_as(select_keys!("WHERE project_id = $1 AND id = $2"))
                .bind(project.as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(KeyRecord::try_from).transpose()
    }

    async fn keys_created_by(
        &self,
        project: &ProjectId,
        creator: &KeyId,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows: Vec<KeyRow> = on_pool!(self, pool => {
            sqlx::query_as(select_keys!(
                "WHERE project_id = $1 AND created_by = $2 ORDER BY created_at, id"
            ))
            .bind(project.as_str())
            .bind(creator.as_str())
            .fetch_all(pool)
            .await?
        });
        key_records(rows)
    }

    async fn find_key_by_hash(&self, hash: &SecretHash) -> Result<Option<KeyRecord>, StoreError> {
        let row: Option<KeyRow> = on_pool!(self, pool => {
            sqlx::query_as(select_keys!("WHERE secret_hash = $1"))
                .bind(hash.0.as_slice())
                .fetch_optional(pool)
                .await?
        });
        row.map(KeyRecord::try_from).transpose()
    }

    async fn list_keys(
        &self,
        project: &ProjectId,
        query: &KeyQuery,
    ) -> Result<Page<KeyRecord, KeyCursor>, StoreError> {
        // One fixed statement with optional filters (`$n IS NULL OR …`)
        // instead of string-built SQL: the plan is cached and nothing from
        // the request can reach the SQL text. The status filter mirrors
        // `KeyRecord::status_at`: revoked wins, then expired from
        // `expires_at` on, else active.
        let limit = i64::from(query.limit.max(1));
        let rows: Vec<KeyRow> = on_pool!(self, pool => {
            sqlx::query_as(select_keys!(
                "WHERE project_id = $1 \
                 AND ($2 IS NULL OR environment = $2) \
                 AND ($3 IS NULL OR kind = $3) \
                 AND ($4 IS NULL \
                      OR ($4 = 'revoked' AND revoked_at IS NOT NULL) \
                      OR ($4 = 'expired' AND revoked_at IS NULL AND expires_at <= $5) \
                      OR ($4 = 'active' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $5))) \
                 AND ($6 IS NULL \
                      OR (revoked_at IS NULL AND expires_at > $5 AND expires_at <= $6)) \
                 AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8)) \
                 ORDER BY created_at DESC, id DESC \
                 LIMIT $9"
            ))
            .bind(project.as_str())
            .bind(query.environment.map(Environment::as_str))
            .bind(query.kind.map(KeyKind::as_str))
            .bind(query.status.map(KeyStatus::as_str))
            .bind(millis(query.now))
            .bind(query.expiring_before.map(millis))
            .bind(query.after.as_ref().map(|cursor| millis(cursor.created_at)))
            .bind(query.after.as_ref().map(|cursor| cursor.id.as_str()))
            .bind(limit + 1)
            .fetch_all(pool)
            .await?
        });
        let mut items = key_records(rows)?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|last| KeyCursor {
                created_at: last.created_at,
                id: last.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn list_audit(
        &self,
        project: &ProjectId,
        query: &AuditQuery,
    ) -> Result<Page<AuditEvent, i64>, StoreError> {
        let limit = i64::from(query.limit.max(1));
        let rows: Vec<AuditRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, id, project_id, at, actor_type, actor_id, action, target_type, \
                 target_id, source_ip, details FROM audit_events \
                 WHERE project_id = $1 AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR seq < $3) \
                 ORDER BY seq DESC LIMIT $4",
            )
            .bind(project.as_str())
            .bind(query.action.map(AuditAction::as_str))
            .bind(query.before)
            .bind(limit + 1)
            .fetch_all(pool)
            .await?
        });
        let more = rows.len() as i64 > limit;
        let mut items = Vec::with_capacity(rows.len());
        let mut last_seq = None;
        for row in rows.into_iter().take(limit as usize) {
            last_seq = Some(row.seq);
            items.push(AuditEvent::try_from(row)?);
        }
        Ok(Page {
            items,
            next: if more { last_seq } else { None },
        })
    }

    async fn add_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let first_time = sqlx::query(
                "INSERT INTO usage_batches (batch_id, applied_at) VALUES ($1, $2) \
                 ON CONFLICT (batch_id) DO NOTHING",
            )
            .bind(batch.id.as_str())
            .bind(millis(batch.made_at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if first_time {
                // Many rows per statement: one statement per counter made
                // a flush of a million keys' sums take minutes on SQLite,
                // and a stopping node waits for its flush.
                for chunk in batch.counts.chunks(USAGE_ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO usage_counts (key_id, project_id, action, code, hour, count) ",
                    );
                    insert.push_values(chunk, |mut row, count| {
                        row.push_bind(count.key_id.as_str())
                            .push_bind(count.project_id.as_str())
                            .push_bind(count.action.unwrap_or(""))
                            .push_bind(count.code.as_str())
                            .push_bind(millis(count.hour))
                            .push_bind(i64::try_from(count.count).unwrap_or(i64::MAX));
                    });
                    // The counters of a batch are distinct, as one
                    // statement's conflicting rows must be.
                    insert.push(
                        " ON CONFLICT (key_id, action, code, hour) \
                         DO UPDATE SET count = usage_counts.count + excluded.count",
                    );
                    insert.build().execute(&mut *tx).await?;
                }
                for chunk in batch.last_used.chunks(USAGE_ROWS_PER_STATEMENT) {
                    // PostgreSQL locks an UPDATE ... FROM's rows in whatever
                    // order its plan visits them; locking them first, in
                    // key order, keeps two nodes flushing the same keys from
                    // deadlocking (SQLite has one writer at a time).
                    if postgres {
                        let mut lock = sqlx::QueryBuilder::new("SELECT id FROM api_keys WHERE id IN (");
                        let mut ids = lock.separated(", ");
                        for (key_id, _) in chunk {
                            ids.push_bind(key_id.as_str());
                        }
                        lock.push(") ORDER BY id FOR UPDATE");
                        lock.build().execute(&mut *tx).await?;
                    }
                    // `column1` and `column2` are what both SQLite and
                    // PostgreSQL call a VALUES list's columns.
                    let mut update =
                        sqlx::QueryBuilder::new("UPDATE api_keys SET last_used_at = used.column2 FROM (");
                    update.push_values(chunk, |mut row, (key_id, at)| {
                        row.push_bind(key_id.as_str()).push_bind(millis(*at));
                    });
                    update.push(
                        ") AS used WHERE api_keys.id = used.column1 \
                         AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < used.column2)",
                    );
                    update.build().execute(&mut *tx).await?;
                }
                // A retry comes within seconds; a day of applied ids is
                // ample, and keeps the table small.
                sqlx::query("DELETE FROM usage_batches WHERE applied_at < $1")
                    .bind(millis(batch.made_at - chrono::TimeDelta::days(1)))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn usage(
        &self,
        project: &ProjectId,
        key: &KeyId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let rows: Vec<UsageCountRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT hour, action, code, count FROM usage_counts \
                 WHERE project_id = $1 AND key_id = $2 AND hour >= $3 AND hour < $4",
            )
            .bind(project.as_str())
            .bind(key.as_str())
            .bind(millis(from))
            .bind(millis(to))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| {
                Ok(UsageRow {
                    hour: millis_to_time(row.hour),
                    code: VerifyCode::parse(&row.code)
                        .ok_or_else(|| corrupt("usage code", &row.code))?,
                    action: (!row.action.is_empty()).then_some(row.action),
                    count: u64::try_from(row.count)
                        .map_err(|_| corrupt("usage count", &row.count.to_string()))?,
                })
            })
            .collect()
    }

    fn change_feed(&self) -> ChangeFeed {
        self.feed_task.get_or_init(|| match &self.pool {
            Pool::Sqlite(pool) => tokio::spawn(crate::feed::poll_sqlite(
                pool.clone(),
                self.origin,
                self.feed.clone(),
            )),
            Pool::Postgres(pool) => tokio::spawn(crate::feed::listen_postgres(
                pool.clone(),
                self.feed.clone(),
            )),
        });
        self.feed.clone()
    }

    async fn all_key_hashes(&self) -> Result<Vec<SecretHash>, StoreError> {
        let rows: Vec<Vec<u8>> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT secret_hash FROM api_keys")
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|bytes| {
                bytes
                    .as_slice()
                    .try_into()
                    .map(SecretHash)
                    .map_err(|_| corrupt("secret hash", "of some key"))
            })
            .collect()
    }

    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    async fn insert_setting_if_absent(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        let result = on_pool!(self, pool => {
            sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(value)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(result == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_error_messages() {
        let shown = redact_url("mysql://user:hunter2@db:3306/x");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
