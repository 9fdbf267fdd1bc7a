//! A lost database: `/readyz` fails, requests answer 503 at once instead of
//! waiting on the pool, and the node recovers by itself when PostgreSQL is
//! back, all while a load of verifications and creations runs. The test
//! starts its own PostgreSQL server (initdb into a temporary folder), so it
//! can stop and restart it without disturbing anything else.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;

const ADMIN_TOKEN: &str = "outage-test-admin-token-0123456789abcdefgh";
const DEMO: &str = "project_identity_demo";

/// PostgreSQL's server programs, from Debian's versioned folder.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

/// PostgreSQL refuses to run as root: run its programs as `postgres` then.
fn as_postgres(bin: &Path, program: &str) -> Command {
    let program = bin.join(program);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A private PostgreSQL server on a free port, removed on drop.
struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    fn create(bin: PathBuf) -> Self {
        let parent = tempfile::Builder::new()
            .prefix("atk-outage-")
            .tempdir()
            .unwrap()
            .keep();
        let dir = parent.join("cluster");
        if running_as_root() {
            assert!(
                Command::new("chown")
                    .args(["postgres", parent.to_str().unwrap()])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let made = as_postgres(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&dir)
            .output()
            .expect("initdb runs");
        assert!(made.status.success(), "initdb: {made:?}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let postgres = Self { bin, dir, port };
        postgres.start();
        postgres
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let done = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(args)
            .output()
            .expect("pg_ctl runs");
        assert!(done.status.success(), "pg_ctl {args:?}: {done:?}");
    }

    /// Starts and waits until it accepts connections (`-w`).
    fn start(&self) {
        self.pg_ctl(&["-w", "start"]);
    }

    /// Stops at once, dropping every connection (as a crash would).
    fn stop(&self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(self.dir.parent().unwrap());
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn create_key(server: &Server) -> reqwest::Response {
    client()
        .post(server.url(&format!("/v1/projects/{DEMO}/keys")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "name": "outage test key",
            "confirmations": ["backend_only", "secret_shown_once", "entitlements_may_block"],
        }))
        .send()
        .await
        .unwrap()
}

async fn secret_of_new_key(server: &Server) -> String {
    let response = create_key(server).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["secret"].as_str().unwrap().to_owned()
}

async fn verify(server: &Server, secret: &str) -> reqwest::Response {
    client()
        .post(server.url("/v1/keys/verify"))
        .json(&json!({"key": secret, "action": "notification.send"}))
        .send()
        .await
        .unwrap()
}

async fn readyz(server: &Server) -> reqwest::StatusCode {
    client()
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Verifies and creates keys until told to stop; every status it saw.
async fn load(server: Arc<Server>, secret: String, stop: Arc<AtomicBool>) -> Vec<u16> {
    let mut statuses = Vec::new();
    while !stop.load(Ordering::Acquire) {
        statuses.push(verify(&server, &secret).await.status().as_u16());
        statuses.push(create_key(&server).await.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn a_lost_database_answers_503_at_once_and_the_node_recovers_when_it_returns() {
    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the outage test: PostgreSQL's server programs are missing"
        );
        println!("skipped: PostgreSQL's server programs (initdb, pg_ctl) are not installed");
        return;
    };
    let postgres = Postgres::create(bin);
    let data = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(
        data.path(),
        &[
            ("ATK_DATABASE_URL", &postgres.url()),
            ("ATK_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    ));
    let secret = secret_of_new_key(&server).await;
    assert_eq!(verify(&server, &secret).await.status(), 200);
    assert_eq!(readyz(&server).await, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(load(server.clone(), secret.clone(), stop.clone())))
        .collect();

    postgres.stop();
    assert_eq!(
        readyz(&server).await,
        503,
        "readiness fails without the database"
    );
    // The first calls find the database gone (within the pool's 3 s
    // acquire timeout); from then on the answer is immediate.
    let first = create_key(&server).await;
    assert_eq!(first.status(), 503);
    assert_eq!(first.headers()["retry-after"], "1");
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(create_key(&server).await.status(), 503);
    }
    let per_call = started.elapsed() / 20;
    assert!(
        per_call < Duration::from_secs(1),
        "a 503 comes at once while the database is down, far below the pool's 3 s timeout: {per_call:?}"
    );

    postgres.start();
    // Readiness always asks the database itself, so the first check after
    // the restart sees it, and closes the breaker for everything else.
    assert_eq!(
        readyz(&server).await,
        200,
        "ready again once PostgreSQL is back"
    );
    let after = secret_of_new_key(&server).await;
    assert_eq!(verify(&server, &after).await.status(), 200);
    assert_eq!(verify(&server, &secret).await.status(), 200);

    stop.store(true, Ordering::Release);
    let mut statuses = Vec::new();
    for worker in workers {
        statuses.extend(worker.await.unwrap());
    }
    let unexpected: Vec<u16> = statuses
        .iter()
        .copied()
        .filter(|status| !matches!(status, 200 | 201 | 503))
        .collect();
    assert!(
        unexpected.is_empty(),
        "under load through the outage, only answers, creations and 503s: {unexpected:?}"
    );
    assert!(statuses.contains(&503), "the load saw the outage");
    let server = Arc::into_inner(server).expect("the workers are done");
    assert!(server.stop().success());
}
