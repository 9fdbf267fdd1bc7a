//! `GET /metrics`: what a node counts, in the Prometheus text format, with
//! nothing that identifies a key or a project in it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{DEMO, TestApp, metric_value};
use crate::on_both_stores;

on_both_stores!(
    verifications_are_counted_by_code_and_requests_by_route_template,
    no_secret_key_id_project_id_or_hash_appears_in_the_metrics,
);

async fn metrics(app: &TestApp) -> String {
    let reply = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        reply.text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    reply.text
}

async fn verifications_are_counted_by_code_and_requests_by_route_template(app: TestApp) {
    const APPLIED: &str = "atk_change_feed_lag_seconds_count";
    let before = metric_value(&metrics(&app).await, APPLIED);
    let secret = app.secret(json!({})).await;
    // The key's own announcement drops it from the cache when it arrives:
    // wait for it, so the cache counts below do not depend on timing.
    while metric_value(&metrics(&app).await, APPLIED) <= before {
        tokio::task::yield_now().await;
    }
    for _ in 0..3 {
        assert_eq!(
            app.verify(&secret, Some("notification.send")).await["code"],
            "OK"
        );
    }
    assert_eq!(app.verify("atk_live_nope", None).await["code"], "MALFORMED");
    let text = metrics(&app).await;
    assert_eq!(
        metric_value(&text, "atk_verifications_total{code=\"OK\"}"),
        3.0
    );
    assert_eq!(
        metric_value(&text, "atk_verifications_total{code=\"MALFORMED\"}"),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "atk_http_requests_total{route=\"/v1/keys/verify\",method=\"POST\",status=\"200\"}"
        ),
        4.0
    );
    assert_eq!(
        metric_value(
            &text,
            "atk_http_requests_total{route=\"/v1/projects/{project_id}/keys\",method=\"POST\",status=\"201\"}"
        ),
        1.0
    );
    // The first verification read the key and the entitlements; the
    // others were served from the cache.
    assert_eq!(
        metric_value(&text, "atk_verifier_cache_hits_total{cache=\"keys\"}"),
        2.0
    );
    assert_eq!(
        metric_value(
            &text,
            "atk_store_queries_total{kind=\"entitlement_lookup\"}"
        ),
        1.0
    );
    for family in [
        "atk_verify_duration_seconds_count",
        "atk_change_feed_lag_seconds_count",
        "atk_change_feed_reconnects_total",
        "atk_usage_queue_depth",
        "atk_usage_flush_duration_seconds_count",
        "atk_membership_filter_keys",
        "atk_unknown_keys_filtered_total",
        "atk_verifier_cache_evictions_total{cache=\"keys\"}",
    ] {
        metric_value(&text, family);
    }
}

async fn no_secret_key_id_project_id_or_hash_appears_in_the_metrics(app: TestApp) {
    let created = app.create_key_in(DEMO, json!({})).await;
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let key_id = created.body["key"]["id"].as_str().unwrap().to_owned();
    app.verify(&secret, Some("qr.scan.read")).await;
    app.admin_get(&format!("/v1/projects/{DEMO}/keys/{key_id}"))
        .await;
    let text = metrics(&app).await;
    for needle in [
        secret.as_str(),
        &secret[..20],
        key_id.as_str(),
        DEMO,
        "atk_live_",
    ] {
        assert!(!text.contains(needle), "{needle} is in the metrics");
    }
    // A key hash in hex would be a run of 64 hex digits.
    let longest_hex_run = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest_hex_run < 32, "a long hex string is in the metrics");
    // Paths are labelled by template, never as requested.
    assert!(text.contains("route=\"/v1/projects/{project_id}/keys/{key_id}\""));
}
