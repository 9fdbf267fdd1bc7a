//! Fresh databases for tests. Every test gets its own, so tests never see
//! each other's rows and can run in parallel.
//!
//! PostgreSQL: `ATK_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) names a server and a database
//! to connect to first; each test then gets `CREATE DATABASE atk_test_<pid>_<random>`.
//! Databases left by test processes that have exited are dropped on the
//! next run. When the server cannot be reached the PostgreSQL tests print
//! one line and pass, except with `CI=true`, where they fail.

use std::io::Write;
use std::sync::OnceLock;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tempfile::TempDir;

pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A SQLite database in a temporary directory that lives as long as this value.
pub struct TempSqlite {
    pub dir: TempDir,
    pub url: String,
}

pub fn temp_sqlite() -> TempSqlite {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let url = format!("sqlite://{}", dir.path().join("atk.sqlite").display());
    TempSqlite { dir, url }
}

fn base_url() -> String {
    std::env::var("ATK_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The URL of a brand-new, empty PostgreSQL database, or `None` (after
/// printing why, once per process) when no server is reachable outside CI.
pub async fn fresh_postgres_url() -> Option<String> {
    static SKIP_NOTICE: OnceLock<()> = OnceLock::new();
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

    let base = base_url();
    let mut admin = match PgConnection::connect(&base).await {
        Ok(connection) => connection,
        Err(error) if !in_ci() => {
            // Straight to stderr: the test harness captures `eprintln!`,
            // and this line is meant to be seen.
            SKIP_NOTICE.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping PostgreSQL tests: cannot connect to {base}: {error}"
                );
            });
            return None;
        }
        Err(error) => panic!("CI=true and PostgreSQL at {base} is unreachable: {error}"),
    };
    SWEPT
        .get_or_init(|| async {
            drop_databases_of_exited_processes(&base).await;
        })
        .await;
    let name = format!(
        "atk_test_{}_{}",
        std::process::id(),
        atk_core::secret::random_base62(10).to_lowercase()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("the test user may create databases");
    let _ = admin.close().await;
    Some(with_database(&base, &name))
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base, None),
    };
    let authority_end = without_query
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| without_query[start..].find('/').map(|i| start + i))
        .unwrap_or(without_query.len());
    let mut url = format!("{}/{name}", &without_query[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

async fn drop_databases_of_exited_processes(base: &str) {
    let Ok(mut admin) = PgConnection::connect(base).await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'atk_test_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
