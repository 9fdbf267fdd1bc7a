//! One implementation for both databases. Every query is written once in the
//! common subset of SQLite and PostgreSQL (`$n` parameters, `ON CONFLICT`,
//! integer milliseconds for time), and [`on_pool!`] compiles each method body
//! once per driver. That keeps the two stores from drifting apart, which two
//! hand-written copies eventually would.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use atk_core::clock::millis_to_time;
use atk_core::entitlement::{Entitlement, EntitlementStatus};
use atk_core::ids::{DisplayName, KeyId, ProjectId};
use atk_core::key::{Environment, Expiration, KeyKind, KeyRecord, KeyStatus};
use atk_core::project::Project;
use atk_core::secret::SecretHash;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{KeyCursor, KeyQuery, Page, Store, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever driver's pool this store has.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool,
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
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // WAL lets verifications read while a create writes.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
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
        Ok(Self { pool })
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

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
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

fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn unique_to_conflict(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(error),
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
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
            name: DisplayName::parse(&row.name).map_err(|_| corrupt("project name", &row.name))?,
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
}

fn parse_key_id(text: &str) -> Result<KeyId, StoreError> {
    KeyId::parse(text).map_err(|_| corrupt("key id", text))
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let secret_hash: [u8; 32] = row
            .secret_hash
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("secret hash of key", &row.id))?;
        Ok(KeyRecord {
            id: parse_key_id(&row.id)?,
            project_id: ProjectId::parse(&row.project_id)
                .map_err(|_| corrupt("project id", &row.project_id))?,
            name: DisplayName::parse(&row.name).map_err(|_| corrupt("key name", &row.name))?,
            kind: KeyKind::parse(&row.kind).ok_or_else(|| corrupt("key kind", &row.kind))?,
            environment: Environment::parse(&row.environment)
                .ok_or_else(|| corrupt("environment", &row.environment))?,
            scopes: serde_json::from_str(&row.scopes)
                .map_err(|_| corrupt("scopes", &row.scopes))?,
            expiration: Expiration::parse(&row.expiration)
                .ok_or_else(|| corrupt("expiration", &row.expiration))?,
            secret_hash: SecretHash(secret_hash),
            secret_preview: row.secret_preview,
            created_at: millis_to_time(row.created_at),
            expires_at: row.expires_at.map(millis_to_time),
            last_used_at: row.last_used_at.map(millis_to_time),
            revoked_at: row.revoked_at.map(millis_to_time),
            revoke_reason: row.revoke_reason,
            rotated_from: row.rotated_from.as_deref().map(parse_key_id).transpose()?,
            rotated_to: row.rotated_to.as_deref().map(parse_key_id).transpose()?,
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
            "revoke_reason, rotated_from, rotated_to FROM api_keys ",
            $rest
        )
    };
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
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
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
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
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let scopes = serde_json::to_string(&key.scopes).expect("a list of strings serializes");
        on_pool!(self, pool => {
            sqlx::query(concat!(
                "INSERT INTO api_keys (id, project_id, name, kind, environment, scopes, expiration, ",
                "secret_hash, secret_preview, created_at, expires_at, last_used_at, revoked_at, ",
                "revoke_reason, rotated_from, rotated_to) ",
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
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
            .execute(pool)
            .await
            .map_err(unique_to_conflict)?;
        });
        Ok(())
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
