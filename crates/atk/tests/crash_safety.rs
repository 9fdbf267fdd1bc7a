//! Crash safety: the server is killed with SIGKILL in the middle of a
//! stream of key creations, and every key whose 201 reached the client
//! verifies after a restart, on SQLite and on PostgreSQL. A 201 is only
//! sent after the key's transaction committed (with a full sync on
//! SQLite), so nothing the client was told exists may be missing.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::Server;

const ADMIN_TOKEN: &str = "crash-test-admin-token-0123456789abcdefghij";
const DEMO: &str = "project_identity_demo";
/// Creations that must have succeeded before the kill.
const BEFORE_KILL: usize = 150;
const CREATORS: usize = 8;

/// Creates keys until the server stops answering; each secret whose 201
/// arrived is pushed to `created`.
async fn create_until_the_server_dies(
    url: String,
    created: Arc<Mutex<Vec<String>>>,
    enough: Arc<tokio::sync::Notify>,
) {
    let client = reqwest::Client::new();
    loop {
        let response = client
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "name": "crash test",
                "confirmations": ["backend_only", "secret_shown_once", "entitlements_may_block"],
            }))
            .send()
            .await;
        let Ok(response) = response else { return };
        if response.status() != 201 {
            return;
        }
        let Ok(body) = response.json::<Value>().await else {
            return;
        };
        let mut created = created.lock().unwrap();
        created.push(body["secret"].as_str().unwrap().to_owned());
        if created.len() == BEFORE_KILL {
            enough.notify_one();
        }
    }
}

async fn every_acknowledged_key_survives_a_sigkill(data_dir: &Path, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("ATK_ADMIN_TOKEN", ADMIN_TOKEN));
    let server = Server::start(data_dir, &env);
    let url = server.url(&format!("/v1/projects/{DEMO}/keys"));
    let created = Arc::new(Mutex::new(Vec::new()));
    let enough = Arc::new(tokio::sync::Notify::new());
    let creators: Vec<_> = (0..CREATORS)
        .map(|_| {
            tokio::spawn(create_until_the_server_dies(
                url.clone(),
                created.clone(),
                enough.clone(),
            ))
        })
        .collect();
    // Killed while creations are in flight: the creators are still going.
    enough.notified().await;
    server.kill();
    for creator in creators {
        creator.await.unwrap();
    }
    let created = created.lock().unwrap().clone();
    assert!(created.len() >= BEFORE_KILL);

    let server = Server::start(data_dir, &env);
    let client = reqwest::Client::new();
    let mut missing = Vec::new();
    for secret in &created {
        let answer: Value = client
            .post(server.url("/v1/keys/verify"))
            .json(&json!({"key": secret}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["code"] != "OK" {
            missing.push(answer["code"].clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged keys do not verify after the restart: {missing:?}",
        missing.len(),
        created.len()
    );
    assert!(server.stop().success());
}

#[tokio::test]
async fn every_key_whose_creation_was_acknowledged_survives_a_sigkill_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    every_acknowledged_key_survives_a_sigkill(data.path(), &[]).await;
}

#[tokio::test]
async fn every_key_whose_creation_was_acknowledged_survives_a_sigkill_on_postgres() {
    let Some(url) = atk_store::testing::fresh_postgres_url().await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    every_acknowledged_key_survives_a_sigkill(data.path(), &[("ATK_DATABASE_URL", &url)]).await;
}
