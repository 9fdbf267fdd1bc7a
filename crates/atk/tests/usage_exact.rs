//! Usage counts are exact: 100,000 verifications across three actions and
//! mixed outcomes, a SIGTERM, a restart, and the usage API reports exactly
//! what was sent, per action and per code. Then the same with two server
//! processes sharing one PostgreSQL database.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use support::Server;

const ADMIN_TOKEN: &str = "usage-test-admin-token-0123456789abcdefgh";
const DEMO: &str = "project_identity_demo";
const TOTAL: usize = 100_000;
const CONCURRENCY: usize = 32;
const ACTIONS: [&str; 3] = [
    "notification.send",
    "marketing.campaign.send",
    "qr.scan.read",
];
const CONFIRMATIONS: [&str; 3] = [
    "backend_only",
    "secret_shown_once",
    "entitlements_may_block",
];

struct TestKey {
    id: String,
    secret: String,
    /// The code each action gets, in `ACTIONS` order.
    expected: [&'static str; 3],
}

async fn create_key(client: &reqwest::Client, server: &Server, body: Value) -> Value {
    let mut body = body;
    body["confirmations"] = json!(CONFIRMATIONS);
    let response = client
        .post(server.url(&format!("/v1/projects/{DEMO}/keys")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// A project key (OK, upgrade required, OK), a product-scoped key with only
/// notification.send (OK, scope missing, scope missing), and a revoked key.
async fn create_keys(client: &reqwest::Client, server: &Server) -> Vec<TestKey> {
    let project = create_key(client, server, json!({"name": "project"})).await;
    let scoped = create_key(
        client,
        server,
        json!({"name": "scoped", "kind": "product_scoped", "scopes": ["notification.send"]}),
    )
    .await;
    let revoked = create_key(client, server, json!({"name": "revoked"})).await;
    let revoked_id = revoked["key"]["id"].as_str().unwrap();
    let response = client
        .post(server.url(&format!("/v1/projects/{DEMO}/keys/{revoked_id}/revoke")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let key = |created: &Value, expected| TestKey {
        id: created["key"]["id"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap().to_owned(),
        expected,
    };
    vec![
        key(&project, ["OK", "ENTITLEMENT_UPGRADE_REQUIRED", "OK"]),
        key(&scoped, ["OK", "SCOPE_MISSING", "SCOPE_MISSING"]),
        key(&revoked, ["REVOKED", "REVOKED", "REVOKED"]),
    ]
}

/// Request `i` uses key `i % 3` and action `(i / 3) % 3`.
fn plan(i: usize) -> (usize, usize) {
    (i % 3, (i / 3) % 3)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    total: u64,
    by_code: BTreeMap<String, u64>,
    by_action: BTreeMap<String, u64>,
}

fn expected_totals(keys: &[TestKey]) -> Vec<Totals> {
    let mut totals: Vec<Totals> = keys.iter().map(|_| Totals::default()).collect();
    for i in 0..TOTAL {
        let (key, action) = plan(i);
        let entry = &mut totals[key];
        entry.total += 1;
        *entry
            .by_code
            .entry(keys[key].expected[action].to_owned())
            .or_default() += 1;
        *entry
            .by_action
            .entry(ACTIONS[action].to_owned())
            .or_default() += 1;
    }
    totals
}

/// Sends every planned verification, request `i` to `servers[i % n]`,
/// `CONCURRENCY` at a time, and checks each answer.
async fn send_all(servers: &[String], keys: Arc<Vec<TestKey>>) {
    let client = reqwest::Client::new();
    let servers = Arc::new(servers.to_vec());
    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let (client, keys, servers) = (client.clone(), keys.clone(), servers.clone());
        workers.push(tokio::spawn(async move {
            for i in (worker..TOTAL).step_by(CONCURRENCY) {
                let (key, action) = plan(i);
                let url = format!("http://{}/v1/keys/verify", servers[i % servers.len()]);
                let response = client
                    .post(url)
                    .json(&json!({"key": keys[key].secret, "action": ACTIONS[action]}))
                    .send()
                    .await
                    .expect("the server answers");
                assert_eq!(response.status(), 200);
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["code"], keys[key].expected[action], "request {i}");
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

async fn read_totals(client: &reqwest::Client, server: &Server, key: &TestKey) -> Totals {
    let response = client
        .get(server.url(&format!(
            "/v1/projects/{DEMO}/keys/{}/usage?granularity=day",
            key.id
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let map = |value: &Value| -> BTreeMap<String, u64> {
        value
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, count)| (name.clone(), count.as_u64().unwrap()))
            .collect()
    };
    Totals {
        total: body["total"].as_u64().unwrap(),
        by_code: map(&body["by_code"]),
        by_action: map(&body["by_action"]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_verifications_survive_sigterm_and_restart_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ATK_ADMIN_TOKEN", ADMIN_TOKEN)];
    let server = Server::start(dir.path(), &env);
    let client = reqwest::Client::new();
    let keys = Arc::new(create_keys(&client, &server).await);
    send_all(std::slice::from_ref(&server.address), keys.clone()).await;
    let exit = server.stop();
    assert!(exit.success(), "serve exits cleanly on SIGTERM: {exit:?}");

    let restarted = Server::start(dir.path(), &env);
    let expected = expected_totals(&keys);
    for (key, expected) in keys.iter().zip(&expected) {
        assert_eq!(
            &read_totals(&client, &restarted, key).await,
            expected,
            "key {}",
            key.id
        );
    }
    let sum: u64 = expected.iter().map(|totals| totals.total).sum();
    assert_eq!(sum, TOTAL as u64);
    assert!(restarted.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_add_up_exactly() {
    let Some(database_url) = atk_store::testing::fresh_postgres_url().await else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let pepper = shared.path().join("pepper");
    std::fs::write(&pepper, "5f".repeat(32)).unwrap();
    let pepper = pepper.to_str().unwrap().to_owned();
    let env = [
        ("ATK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("ATK_DATABASE_URL", database_url.as_str()),
        ("ATK_PEPPER_FILE", pepper.as_str()),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_a = Server::start(dir_a.path(), &env);
    let node_b = Server::start(dir_b.path(), &env);
    assert_ne!(node_a.pid(), node_b.pid());
    let client = reqwest::Client::new();
    let keys = Arc::new(create_keys(&client, &node_a).await);
    send_all(
        &[node_a.address.clone(), node_b.address.clone()],
        keys.clone(),
    )
    .await;
    assert!(node_a.stop().success());
    assert!(node_b.stop().success());

    let reader = Server::start(dir_a.path(), &env);
    let expected = expected_totals(&keys);
    for (key, expected) in keys.iter().zip(&expected) {
        assert_eq!(
            &read_totals(&client, &reader, key).await,
            expected,
            "key {}",
            key.id
        );
    }
    assert!(reader.stop().success());
}
