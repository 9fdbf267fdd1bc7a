//! Two nodes on one database. What one node changes, the other node's
//! verifier learns from the store's change feed (PostgreSQL NOTIFY; on
//! SQLite the `changes` table another process writes), not from its cache
//! running out: cached entries live for minutes now. Each test waits for
//! the other node with a deadline far below the cache lifetime, so only
//! the feed can make it pass; `bench/revocation.sh` measures the delay.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, DEMO, TestApp, metric_value};
use crate::on_both_stores;

on_both_stores!(
    a_revocation_on_one_node_is_refused_by_the_other_without_waiting_for_its_cache,
    a_node_whose_clock_is_behind_the_revoking_nodes_refuses_the_revoked_key_at_once,
    an_entitlement_change_on_one_node_blocks_on_the_other_without_waiting_for_its_cache,
    a_rotation_on_one_node_ends_the_old_key_on_the_other_and_the_new_key_verifies_there,
    a_key_created_on_one_node_verifies_on_the_other_at_once,
    well_formed_keys_that_were_never_issued_cost_no_store_query_each,
);

/// Far below the five-minute cache lifetime, far above the feed's delay.
const DEADLINE: Duration = Duration::from_secs(5);

/// Verifies on `node` until the code is `expected`; how long that took.
async fn until_code(
    node: &TestApp,
    secret: &str,
    action: Option<&str>,
    expected: &str,
) -> Duration {
    let started = Instant::now();
    loop {
        let code = node.verify(secret, action).await["code"].clone();
        if code == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "still {code} after {DEADLINE:?}, expected {expected}"
        );
        tokio::task::yield_now().await;
    }
}

async fn created(app: &TestApp, extra: Value) -> (String, String) {
    let reply = app.create_key_in(DEMO, extra).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.body["secret"].as_str().unwrap().to_owned(),
        reply.body["key"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn a_revocation_on_one_node_is_refused_by_the_other_without_waiting_for_its_cache(
    app: TestApp,
) {
    let other = app.second_node().await;
    let (secret, id) = created(&app, json!({})).await;
    // The other node reads the key and caches it.
    assert_eq!(other.verify(&secret, None).await["code"], "OK");
    assert_eq!(other.verify(&secret, None).await["code"], "OK");

    let revoked = app
        .admin_post(&format!("/v1/projects/{DEMO}/keys/{id}/revoke"), json!({}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let took = until_code(&other, &secret, None, "REVOKED").await;
    eprintln!("the other node refused the revoked key after {took:?}");
    assert_eq!(other.verify(&secret, None).await["code"], "REVOKED");
}

/// The revocation carries the revoking node's time; the other node must
/// not wait for its own clock to reach it.
async fn a_node_whose_clock_is_behind_the_revoking_nodes_refuses_the_revoked_key_at_once(
    app: TestApp,
) {
    let other = app.second_node().await;
    let (secret, id) = created(&app, json!({})).await;
    assert_eq!(other.verify(&secret, None).await["code"], "OK");
    app.clock.advance(chrono::TimeDelta::hours(1));

    let revoked = app
        .admin_post(&format!("/v1/projects/{DEMO}/keys/{id}/revoke"), json!({}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    until_code(&other, &secret, None, "REVOKED").await;
    let listed = other
        .admin_get(&format!("/v1/projects/{DEMO}/keys/{id}"))
        .await;
    assert_eq!(listed.body["status"], "revoked", "{}", listed.text);
}

async fn an_entitlement_change_on_one_node_blocks_on_the_other_without_waiting_for_its_cache(
    app: TestApp,
) {
    let other = app.second_node().await;
    let (secret, _) = created(&app, json!({})).await;
    assert_eq!(
        other.verify(&secret, Some("qr.scan.read")).await["code"],
        "OK"
    );
    let reply = app
        .call(
            Method::PUT,
            &format!("/v1/projects/{DEMO}/entitlements/qr"),
            Some(ADMIN_TOKEN),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    until_code(
        &other,
        &secret,
        Some("qr.scan.read"),
        "ENTITLEMENT_DISABLED",
    )
    .await;
}

async fn a_rotation_on_one_node_ends_the_old_key_on_the_other_and_the_new_key_verifies_there(
    app: TestApp,
) {
    let other = app.second_node().await;
    let (old_secret, id) = created(&app, json!({})).await;
    assert_eq!(other.verify(&old_secret, None).await["code"], "OK");
    let rotated = app
        .admin_post(
            &format!("/v1/projects/{DEMO}/keys/{id}/rotate"),
            json!({"grace": "none", "confirmations": ["secret_shown_once"]}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert_eq!(other.verify(new_secret, None).await["code"], "OK");
    until_code(&other, &old_secret, None, "EXPIRED").await;
}

async fn a_key_created_on_one_node_verifies_on_the_other_at_once(app: TestApp) {
    let other = app.second_node().await;
    // The other node has loaded its membership filter and served lookups.
    let (first, _) = created(&app, json!({})).await;
    until_code(&other, &first, None, "OK").await;
    for _ in 0..20 {
        let (secret, _) = created(&app, json!({})).await;
        // No retry: a new key must never be NOT_FOUND anywhere.
        assert_eq!(other.verify(&secret, None).await["code"], "OK");
    }
}

/// A well-formed secret with a valid checksum that no one was issued.
fn never_issued(n: usize) -> String {
    let body = format!("atk_live_{n:0>32}");
    let checksum = atk_core::secret::checksum(&body);
    format!("{body}{}", std::str::from_utf8(&checksum).unwrap())
}

async fn well_formed_keys_that_were_never_issued_cost_no_store_query_each(app: TestApp) {
    // A node that lets one address fail as often as it likes, so the
    // flood reaches the verifier.
    let node = app
        .second_node_with(|config| {
            config.failed_verify_limit = atk_core::limits::RateLimit {
                requests: 1_000_000,
                per_seconds: 1,
            };
        })
        .await;
    let (secret, _) = created(&app, json!({})).await;
    // Until the filter is loaded, unknown keys are looked up; a found key
    // says the feed is live and the node has served lookups.
    until_code(&node, &secret, None, "OK").await;
    let lookups_before = metric(&node, "atk_store_queries_total{kind=\"key_lookup\"}").await;
    let filtered_before = filtered(&node).await;
    const FLOOD: u64 = 2000;
    let started = Instant::now();
    for n in 0..FLOOD {
        let reply = node
            .call(
                Method::POST,
                "/v1/keys/verify",
                None,
                Some(json!({"key": never_issued(n as usize)})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["code"], "NOT_FOUND");
    }
    // Counted in whole-second windows: the flood touched at most this many.
    let windows = started.elapsed().as_secs() + 2;
    // The node looks up at most 100 absent keys a second (so that a key
    // created on another node a moment ago is still found); the filter
    // refuses the rest without a query.
    let lookups =
        metric(&node, "atk_store_queries_total{kind=\"key_lookup\"}").await - lookups_before;
    assert!(
        lookups <= 100 * windows,
        "{lookups} store lookups for {FLOOD} never-issued keys over {windows} one-second windows"
    );
    assert_eq!(filtered(&node).await - filtered_before, FLOOD - lookups);
}

async fn filtered(app: &TestApp) -> u64 {
    metric(app, "atk_unknown_keys_filtered_total").await
}

/// The propagation promise, timed: on PostgreSQL, node B refuses a key
/// revoked on node A within 100 ms, 100 times in a row, and again after
/// every database connection of both nodes was cut and came back.
#[tokio::test]
async fn on_postgres_a_revocation_reaches_the_other_node_within_100_ms_even_after_a_cut() {
    let Some(app) = TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let other = app.second_node().await;
    let before = timed_revocations(&app, &other, 100).await;

    let reconnects = feed_reconnects(&other).await;
    let database_url = app.config.database_url.clone().expect("a PostgreSQL URL");
    let admin = atk_store::SqlStore::connect(&database_url).await.unwrap();
    let cut = admin
        .execute_raw_for_test(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    assert!(cut > 0, "no connection was cut");
    // The other node's listener notices and reconnects by itself, and
    // both nodes serve again once their pools have new connections.
    let started = Instant::now();
    while feed_reconnects(&other).await == reconnects
        || !serving(&app).await
        || !serving(&other).await
    {
        assert!(started.elapsed() < DEADLINE, "the nodes did not recover");
        tokio::task::yield_now().await;
    }
    let after = timed_revocations(&app, &other, 100).await;
    for (when, delays) in [("before the cut", before), ("after the cut", after)] {
        let max = delays.iter().max().unwrap();
        let at = |share: usize| delays[(delays.len() - 1) * share / 100];
        eprintln!(
            "{when}, {} revocations: min {:?}, median {:?}, p90 {:?}, p99 {:?}, max {max:?}",
            delays.len(),
            at(0),
            at(50),
            at(90),
            at(99),
        );
        assert!(
            *max < Duration::from_millis(100),
            "{when}: a revocation took {max:?} to reach the other node"
        );
    }
}

/// Revokes `rounds` keys on `node`, each cached on `other` first; the
/// delays until `other` refused each, sorted.
async fn timed_revocations(node: &TestApp, other: &TestApp, rounds: usize) -> Vec<Duration> {
    let mut delays = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (secret, id) = created(node, json!({})).await;
        until_code(other, &secret, None, "OK").await;
        let revoked = node
            .admin_post(&format!("/v1/projects/{DEMO}/keys/{id}/revoke"), json!({}))
            .await;
        assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
        delays.push(until_code(other, &secret, None, "REVOKED").await);
    }
    delays.sort();
    delays
}

/// Whether the node is ready and its verifications reach the database.
async fn serving(node: &TestApp) -> bool {
    let ready = node.call(Method::GET, "/readyz", None, None).await;
    let verify = node
        .call(
            Method::POST,
            "/v1/keys/verify",
            None,
            Some(json!({"key": never_issued(usize::MAX)})),
        )
        .await;
    ready.status == StatusCode::OK && verify.status == StatusCode::OK
}

async fn feed_reconnects(node: &TestApp) -> u64 {
    metric(node, "atk_change_feed_reconnects_total").await
}

async fn metric(node: &TestApp, series: &str) -> u64 {
    let reply = node.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    metric_value(&reply.text, series) as u64
}
