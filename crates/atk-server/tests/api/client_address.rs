//! The caller's address (audit `source_ip`, per-address limits): the TCP
//! peer, unless the peer is a configured trusted proxy, in which case the
//! last `X-Forwarded-For` address that is not itself a trusted proxy.

use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, DEMO, EVERY_KIND_CONFIRMATIONS, TestApp};

/// Creates a key sending `X-Forwarded-For: forwarded`; the source address
/// its audit event recorded.
async fn recorded_source(app: &TestApp, forwarded: &str) -> String {
    let response = app
        .client
        .post(app.url(&format!("/v1/projects/{DEMO}/keys")))
        .bearer_auth(ADMIN_TOKEN)
        .header("X-Forwarded-For", forwarded)
        .json(&json!({"name": "behind a proxy", "confirmations": EVERY_KIND_CONFIRMATIONS}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let audit = app
        .admin_get(&format!(
            "/v1/projects/{DEMO}/audit?action=key.create&limit=1"
        ))
        .await;
    audit.body["items"][0]["source_ip"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn forwarded_addresses_count_only_from_a_trusted_proxy(app: TestApp) {
    // No proxy configured: a client cannot name its own address.
    assert_eq!(recorded_source(&app, "203.0.113.9").await, "127.0.0.1");
    let (mut config, dir) = app.stop().await;
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let app = TestApp::spawn_with(config, dir).await;
    assert_eq!(
        recorded_source(&app, "198.51.100.7, 203.0.113.9").await,
        "203.0.113.9",
        "the address the trusted proxy saw, not one the client wrote before it"
    );
    assert_eq!(
        recorded_source(&app, "not an address").await,
        "127.0.0.1",
        "a forwarded header that does not parse is not believed"
    );
}

crate::on_both_stores!(forwarded_addresses_count_only_from_a_trusted_proxy);
