//! [`AccountStore`] for SQLite and PostgreSQL, written once like the key
//! store (see `sql.rs`).

use async_trait::async_trait;
use atk_core::access::Role;
use atk_core::account::{Account, AccountRecord, ConsoleLink, LinkPurpose, Session};
use atk_core::audit::AuditEvent;
use atk_core::clock::millis_to_time;
use atk_core::ids::{AccountId, DisplayName, Email, ProjectId};
use atk_core::secret::SecretHash;
use chrono::{DateTime, Utc};

use crate::sql::{append_event, corrupt, millis, on_pool, unique_to_conflict};
use crate::{AccountStore, Redemption, SqlStore, StoreError};

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    email: String,
    display_name: String,
    password_hash: String,
    platform_admin: i64,
    created_at: i64,
}

impl TryFrom<AccountRow> for AccountRecord {
    type Error = StoreError;
    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        Ok(AccountRecord {
            account: Account {
                id: AccountId::parse(&row.id).map_err(|_| corrupt("account id", &row.id))?,
                email: Email::parse(&row.email).map_err(|_| corrupt("email", &row.email))?,
                display_name: DisplayName::stored(row.display_name),
                platform_admin: row.platform_admin != 0,
                created_at: millis_to_time(row.created_at),
            },
            password_hash: row.password_hash,
        })
    }
}

const ACCOUNT_COLUMNS: &str = "id, email, display_name, password_hash, platform_admin, created_at";

#[derive(sqlx::FromRow)]
struct LinkRow {
    token_hash: Vec<u8>,
    purpose: String,
    project_id: Option<String>,
    role: Option<String>,
    created_by: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

fn hash_from(bytes: &[u8], what: &str) -> Result<SecretHash, StoreError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| corrupt(what, "hash"))?;
    Ok(SecretHash(bytes))
}

fn project_from(text: &str) -> Result<ProjectId, StoreError> {
    ProjectId::parse(text).map_err(|_| corrupt("project id", text))
}

fn role_from(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| corrupt("role", text))
}

impl TryFrom<LinkRow> for ConsoleLink {
    type Error = StoreError;
    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        let grant = match (row.project_id.as_deref(), row.role.as_deref()) {
            (Some(project), Some(role)) => Some((project_from(project)?, role_from(role)?)),
            _ => None,
        };
        Ok(ConsoleLink {
            token_hash: hash_from(&row.token_hash, "link")?,
            purpose: LinkPurpose::parse(&row.purpose)
                .ok_or_else(|| corrupt("link purpose", &row.purpose))?,
            grant,
            created_by: row
                .created_by
                .as_deref()
                .map(|id| AccountId::parse(id).map_err(|_| corrupt("account id", id)))
                .transpose()?,
            created_at: millis_to_time(row.created_at),
            expires_at: millis_to_time(row.expires_at),
            used_at: row.used_at.map(millis_to_time),
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    token_hash: Vec<u8>,
    account_id: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct RoleRow {
    project_id: String,
    role: String,
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn has_accounts(&self) -> Result<bool, StoreError> {
        let found: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM accounts LIMIT 1) AS any_account")
                .fetch_one(pool)
                .await?
        });
        Ok(found > 0)
    }

    async fn insert_link(
        &self,
        link: &ConsoleLink,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO console_links (token_hash, purpose, project_id, role, created_by, \
                 created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(link.token_hash.0.as_slice())
            .bind(link.purpose.as_str())
            .bind(link.grant.as_ref().map(|(project, _)| project.as_str()))
            .bind(link.grant.as_ref().map(|(_, role)| role.as_str()))
            .bind(link.created_by.as_ref().map(AccountId::as_str))
            .bind(millis(link.created_at))
            .bind(millis(link.expires_at))
            .bind(link.used_at.map(millis))
            .execute(&mut *tx)
            .await
            .map_err(unique_to_conflict)?;
            for event in events {
                append_event!(&mut *tx, event);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn get_link(&self, hash: &SecretHash) -> Result<Option<ConsoleLink>, StoreError> {
        let row: Option<LinkRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT token_hash, purpose, project_id, role, created_by, created_at, expires_at, \
                 used_at FROM console_links WHERE token_hash = $1",
            )
            .bind(hash.0.as_slice())
            .fetch_optional(pool)
            .await?
        });
        row.map(ConsoleLink::try_from).transpose()
    }

    async fn redeem_link(&self, redemption: Redemption<'_>) -> Result<(), StoreError> {
        let account = &redemption.account.account;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if redemption.purpose == LinkPurpose::Setup {
                // One first owner, however many setup links were printed
                // (every start without accounts prints one, on every node).
                // The claim comes first: a concurrent setup waits here,
                // holding no link row, and then finds the claim taken (the
                // other order can deadlock two setups on PostgreSQL).
                let claimed = sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ('first_owner', $1) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(account.id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if claimed != 1 {
                    return Err(StoreError::NotFound);
                }
            }
            // The conditional UPDATE spends the link: of two redemptions
            // racing, exactly one matches the unused row.
            let spent = sqlx::query(
                "UPDATE console_links SET used_at = $3 \
                 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
            )
            .bind(redemption.link_hash.0.as_slice())
            .bind(redemption.purpose.as_str())
            .bind(millis(redemption.now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if spent != 1 {
                return Err(StoreError::NotFound);
            }
            if redemption.purpose == LinkPurpose::Setup {
                // The first owner exists now: no other setup link may work.
                sqlx::query(
                    "UPDATE console_links SET used_at = $1 WHERE purpose = 'setup' AND used_at IS NULL",
                )
                .bind(millis(redemption.now))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO accounts (id, email, display_name, password_hash, platform_admin, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(account.id.as_str())
            .bind(account.email.as_str())
            .bind(account.display_name.as_str())
            .bind(redemption.account.password_hash.as_str())
            .bind(i64::from(account.platform_admin))
            .bind(millis(account.created_at))
            .execute(&mut *tx)
            .await
            .map_err(unique_to_conflict)?;
            for (project, role) in redemption.roles {
                sqlx::query(
                    "INSERT INTO memberships (account_id, project_id, role) VALUES ($1, $2, $3)",
                )
                .bind(account.id.as_str())
                .bind(project.as_str())
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
            }
            for event in redemption.events {
                append_event!(&mut *tx, event);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn redeem_invite_for_account(
        &self,
        link_hash: &SecretHash,
        now: DateTime<Utc>,
        account: &AccountId,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Spending first takes the row (PostgreSQL) or the write lock
            // (SQLite): of two redemptions racing, one finds it spent.
            let grant: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                "UPDATE console_links SET used_at = $2 \
                 WHERE token_hash = $1 AND purpose = 'invite' AND used_at IS NULL AND expires_at > $2 \
                 RETURNING project_id, role",
            )
            .bind(link_hash.0.as_slice())
            .bind(millis(now))
            .fetch_optional(&mut *tx)
            .await?;
            let Some((Some(project), Some(role))) = grant else {
                return Err(StoreError::NotFound);
            };
            let added = sqlx::query(
                "INSERT INTO memberships (account_id, project_id, role) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, project_id) DO NOTHING",
            )
            .bind(account.as_str())
            .bind(project.as_str())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if added != 1 {
                return Err(StoreError::Conflict);
            }
            for event in events {
                append_event!(&mut *tx, event);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn find_account_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let row: Option<AccountRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1"
            )))
            .bind(email.as_str())
            .fetch_optional(pool)
            .await?
        });
        row.map(AccountRecord::try_from).transpose()
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<AccountRecord>, StoreError> {
        let row: Option<AccountRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
            )))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
        });
        row.map(AccountRecord::try_from).transpose()
    }

    async fn roles_of(&self, account: &AccountId) -> Result<Vec<(ProjectId, Role)>, StoreError> {
        let rows: Vec<RoleRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT project_id, role FROM memberships WHERE account_id = $1 ORDER BY project_id",
            )
            .bind(account.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| Ok((project_from(&row.project_id)?, role_from(&row.role)?)))
            .collect()
    }

    async fn members_of(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<(AccountRecord, Role)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct MemberRow {
            #[sqlx(flatten)]
            account: AccountRow,
            role: String,
        }
        let rows: Vec<MemberRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT a.id, a.email, a.display_name, a.password_hash, a.platform_admin, \
                 a.created_at, m.role FROM memberships m JOIN accounts a ON a.id = m.account_id \
                 WHERE m.project_id = $1 ORDER BY a.email",
            )
            .bind(project.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| Ok((AccountRecord::try_from(row.account)?, role_from(&row.role)?)))
            .collect()
    }

    async fn set_role(
        &self,
        project: &ProjectId,
        account: &AccountId,
        role: Role,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO memberships (account_id, project_id, role) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, project_id) DO UPDATE SET role = excluded.role",
            )
            .bind(account.as_str())
            .bind(project.as_str())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
            append_event!(&mut *tx, event);
            tx.commit().await?;
        });
        Ok(())
    }

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO console_sessions (token_hash, account_id, created_at, last_seen_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(session.token_hash.0.as_slice())
            .bind(session.account_id.as_str())
            .bind(millis(session.created_at))
            .bind(millis(session.last_seen_at))
            .bind(millis(session.expires_at))
            .execute(pool)
            .await
            .map_err(unique_to_conflict)?;
        });
        Ok(())
    }

    async fn get_session(&self, hash: &SecretHash) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT token_hash, account_id, created_at, last_seen_at, expires_at \
                 FROM console_sessions WHERE token_hash = $1",
            )
            .bind(hash.0.as_slice())
            .fetch_optional(pool)
            .await?
        });
        row.map(|row| {
            Ok(Session {
                token_hash: hash_from(&row.token_hash, "session")?,
                account_id: AccountId::parse(&row.account_id)
                    .map_err(|_| corrupt("account id", &row.account_id))?,
                created_at: millis_to_time(row.created_at),
                last_seen_at: millis_to_time(row.last_seen_at),
                expires_at: millis_to_time(row.expires_at),
            })
        })
        .transpose()
    }

    async fn touch_session(&self, hash: &SecretHash, now: DateTime<Utc>) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE console_sessions SET last_seen_at = $2 \
                 WHERE token_hash = $1 AND last_seen_at < $2",
            )
            .bind(hash.0.as_slice())
            .bind(millis(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn delete_session(&self, hash: &SecretHash) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
                .bind(hash.0.as_slice())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn claim_form_nonce(
        &self,
        hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO console_form_nonces (nonce_hash, used_at) VALUES ($1, $2) \
                 ON CONFLICT (nonce_hash) DO NOTHING",
            )
            .bind(hash.0.as_slice())
            .bind(millis(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    async fn prune(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
        keep_nonces_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let deleted = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let sessions = sqlx::query(
                "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
            )
            .bind(millis(now))
            .bind(millis(idle_since))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let links = sqlx::query(
                "DELETE FROM console_links WHERE expires_at <= $1 OR used_at IS NOT NULL",
            )
            .bind(millis(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let nonces = sqlx::query("DELETE FROM console_form_nonces WHERE used_at < $1")
                .bind(millis(keep_nonces_since))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            sessions + links + nonces
        });
        Ok(deleted)
    }

    async fn append_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for event in events {
                append_event!(&mut *tx, event);
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
