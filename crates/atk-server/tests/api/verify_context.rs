//! The rest of the verify contract: what the calling backend tells verify
//! about its own caller (`client_ip`, `origin`) and each key's own limits
//! (`allowed_ips`, `rate_limit`), checked after status and before scopes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{DEMO, EVERY_KIND_CONFIRMATIONS, TestApp};
use crate::on_both_stores;

on_both_stores!(
    a_key_with_an_ip_allowlist_answers_forbidden_ip_outside_it_and_keeps_it_on_rotation,
    allowlists_are_refused_on_other_kinds_and_bad_networks_are_a_400,
    a_forwarded_browser_origin_answers_browser_origin_blocked,
    a_key_over_its_rate_limit_answers_rate_limited_counted_and_kept_on_rotation,
    the_checks_run_in_the_documented_order,
    a_service_role_key_manages_only_from_inside_its_allowlist,
    an_address_that_keeps_failing_verifications_waits_with_retry_after,
    an_address_that_keeps_sending_bad_credentials_waits_with_retry_after,
);

/// The same deployment restarted with small per-address limits.
async fn with_limits(app: TestApp, failed_verify: &str, bad_credential: &str) -> TestApp {
    let (config, dir) = app.stop().await;
    let config = atk_server::Config {
        failed_verify_limit: failed_verify.parse().unwrap(),
        bad_credential_limit: bad_credential.parse().unwrap(),
        ..config
    };
    TestApp::spawn_with(config, dir).await
}

async fn create(app: &TestApp, extra: Value) -> (String, String, Value) {
    let reply = app.create_key_in(DEMO, extra).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.body["secret"].as_str().unwrap().to_owned(),
        reply.body["key"]["id"].as_str().unwrap().to_owned(),
        reply.body["key"].clone(),
    )
}

async fn outcome(app: &TestApp, body: Value) -> (String, Value, Value) {
    let answer = app.verify_with(body).await;
    (
        answer["code"].as_str().unwrap().to_owned(),
        answer["valid"].clone(),
        answer["allowed"].clone(),
    )
}

async fn a_key_with_an_ip_allowlist_answers_forbidden_ip_outside_it_and_keeps_it_on_rotation(
    app: TestApp,
) {
    let (secret, id, row) = create(
        &app,
        json!({"kind": "backend_secret", "allowed_ips": ["10.1.0.0/16", "2001:db8::/32"]}),
    )
    .await;
    assert_eq!(row["allowed_ips"], json!(["10.1.0.0/16", "2001:db8::/32"]));
    for inside in ["10.1.2.3", "2001:db8::5", "::ffff:10.1.9.9"] {
        let (code, _, _) = outcome(
            &app,
            json!({"key": secret, "action": "notification.send", "client_ip": inside}),
        )
        .await;
        assert_eq!(code, "OK", "{inside}");
    }
    for outside in [json!("10.2.0.1"), json!("2001:db9::1"), Value::Null] {
        let (code, valid, allowed) = outcome(
            &app,
            json!({"key": secret, "action": "notification.send", "client_ip": outside}),
        )
        .await;
        assert_eq!(
            (code.as_str(), valid, allowed),
            ("FORBIDDEN_IP", json!(true), json!(false)),
            "{outside}"
        );
    }
    let rotated = app
        .admin_post(
            &format!("/v1/projects/{DEMO}/keys/{id}/rotate"),
            json!({"grace": "none", "confirmations": ["secret_shown_once"]}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    assert_eq!(
        rotated.body["key"]["allowed_ips"],
        json!(["10.1.0.0/16", "2001:db8::/32"])
    );
    let new_secret = rotated.body["secret"].as_str().unwrap();
    let (code, _, _) = outcome(&app, json!({"key": new_secret, "client_ip": "10.2.0.1"})).await;
    assert_eq!(code, "FORBIDDEN_IP");
}

async fn allowlists_are_refused_on_other_kinds_and_bad_networks_are_a_400(app: TestApp) {
    for (extra, message) in [
        (
            json!({"kind": "project", "allowed_ips": ["10.0.0.0/8"]}),
            "allowed_ips is only for Backend Secret and Service Role keys",
        ),
        (
            json!({"kind": "backend_secret", "allowed_ips": ["10.0.0.0/33"]}),
            "is not an IP address or CIDR network",
        ),
        (
            json!({"kind": "backend_secret", "rate_limit": {"requests": 0, "per_seconds": 60}}),
            "rate_limit.requests must be 1 to 1000000",
        ),
        (
            json!({"kind": "backend_secret", "rate_limit": {"requests": 5, "per_seconds": 86401}}),
            "rate_limit.per_seconds must be 1 to 86400",
        ),
    ] {
        let reply = app.create_key_in(DEMO, extra.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{extra}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalid_request");
        assert!(reply.text.contains(message), "{extra}: {}", reply.text);
    }
    let listed = app.admin_get(&format!("/v1/projects/{DEMO}/keys")).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was created");
}

async fn a_forwarded_browser_origin_answers_browser_origin_blocked(app: TestApp) {
    let (secret, _, _) = create(&app, json!({})).await;
    let (code, valid, allowed) = outcome(
        &app,
        json!({"key": secret, "action": "notification.send", "origin": "https://app.example"}),
    )
    .await;
    assert_eq!(
        (code.as_str(), valid, allowed),
        ("BROWSER_ORIGIN_BLOCKED", json!(true), json!(false))
    );
    let (without, _, _) =
        outcome(&app, json!({"key": secret, "action": "notification.send"})).await;
    assert_eq!(without, "OK");
}

async fn a_key_over_its_rate_limit_answers_rate_limited_counted_and_kept_on_rotation(app: TestApp) {
    let (secret, id, row) = create(
        &app,
        json!({"rate_limit": {"requests": 2, "per_seconds": 3600}}),
    )
    .await;
    assert_eq!(
        row["rate_limit"],
        json!({"requests": 2, "per_seconds": 3600})
    );
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            outcome(&app, json!({"key": secret, "action": "notification.send"}))
                .await
                .0,
        );
    }
    assert_eq!(codes, ["OK", "OK", "RATE_LIMITED", "RATE_LIMITED"]);
    let (_, valid, allowed) = outcome(&app, json!({"key": secret})).await;
    assert_eq!((valid, allowed), (json!(true), json!(false)));

    // Rotation keeps the limit; the new key has its own bucket.
    let rotated = app
        .admin_post(
            &format!("/v1/projects/{DEMO}/keys/{id}/rotate"),
            json!({"grace": "1_hour", "confirmations": ["secret_shown_once"]}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    assert_eq!(
        rotated.body["key"]["rate_limit"],
        json!({"requests": 2, "per_seconds": 3600})
    );
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(outcome(&app, json!({"key": new_secret})).await.0);
    }
    assert_eq!(codes, ["OK", "OK", "RATE_LIMITED"]);

    // Refusals are counted like any outcome (a clean stop saves them).
    let (config, dir) = app.stop().await;
    let app = TestApp::spawn_with(config, dir).await;
    let usage = app
        .admin_get(&format!("/v1/projects/{DEMO}/keys/{id}/usage"))
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);
    assert_eq!(
        usage.body["by_code"],
        json!({"OK": 2, "RATE_LIMITED": 3}),
        "{}",
        usage.text
    );
}

async fn the_checks_run_in_the_documented_order(app: TestApp) {
    // Status before the allowlist.
    let (revoked, revoked_id, _) = create(
        &app,
        json!({"kind": "backend_secret", "allowed_ips": ["10.0.0.0/8"]}),
    )
    .await;
    let reply = app
        .admin_post(
            &format!("/v1/projects/{DEMO}/keys/{revoked_id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (first, _, _) = outcome(&app, json!({"key": revoked, "client_ip": "192.0.2.1"})).await;
    assert_eq!(first, "REVOKED");
    // The allowlist before the origin; the origin before the rate limit,
    // which it does not spend; the rate limit before scopes.
    let (secret, _, _) = create(
        &app,
        json!({
            "kind": "backend_secret",
            "allowed_ips": ["10.0.0.0/8"],
            "rate_limit": {"requests": 1, "per_seconds": 3600},
        }),
    )
    .await;
    let browser = "https://app.example";
    let (first, _, _) = outcome(
        &app,
        json!({"key": secret, "client_ip": "192.0.2.1", "origin": browser}),
    )
    .await;
    assert_eq!(first, "FORBIDDEN_IP");
    for _ in 0..3 {
        let (first, _, _) = outcome(
            &app,
            json!({"key": secret, "client_ip": "10.0.0.1", "origin": browser}),
        )
        .await;
        assert_eq!(first, "BROWSER_ORIGIN_BLOCKED");
    }
    let (spent, _, _) = outcome(
        &app,
        json!({"key": secret, "client_ip": "10.0.0.1", "action": "notification.send"}),
    )
    .await;
    assert_eq!(spent, "OK", "refused requests did not spend the limit");
    let (limited, _, _) = outcome(
        &app,
        json!({"key": secret, "client_ip": "10.0.0.1", "action": "marketing.campaign.send"}),
    )
    .await;
    assert_eq!(limited, "RATE_LIMITED");
}

async fn a_service_role_key_manages_only_from_inside_its_allowlist(app: TestApp) {
    let mut confirmations = EVERY_KIND_CONFIRMATIONS.to_vec();
    confirmations.push("service_role_danger");
    let path = format!("/v1/projects/{DEMO}/keys");
    // The tests connect from 127.0.0.1.
    for (allowed, status) in [
        ("10.0.0.0/8", StatusCode::FORBIDDEN),
        ("127.0.0.0/8", StatusCode::OK),
    ] {
        let (secret, _, _) = create(
            &app,
            json!({"kind": "service_role", "confirmations": confirmations, "allowed_ips": [allowed]}),
        )
        .await;
        let reply = app.call(Method::GET, &path, Some(&secret), None).await;
        assert_eq!(reply.status, status, "{allowed}: {}", reply.text);
    }
}

async fn an_address_that_keeps_failing_verifications_waits_with_retry_after(app: TestApp) {
    let app = with_limits(app, "3/3600", "30/300").await;
    let (good, _, _) = create(&app, json!({})).await;
    // Successful verifications cost nothing.
    for _ in 0..5 {
        assert_eq!(outcome(&app, json!({"key": good})).await.0, "OK");
    }
    let unknown = atk_core::secret::PlaintextSecret::generate(atk_core::secret::SecretPrefix::Live);
    for key in ["atk_live_garbage", unknown.expose(), "not a key"] {
        let (code, _, _) = outcome(&app, json!({"key": key})).await;
        assert!(code == "MALFORMED" || code == "NOT_FOUND", "{code}");
    }
    // The fourth try, even with a good key, waits for one failure to be
    // earned back (3 per hour: 1,200 s each).
    let waited = app
        .call(
            Method::POST,
            "/v1/keys/verify",
            None,
            Some(json!({"key": good})),
        )
        .await;
    assert_eq!(
        waited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        waited.text
    );
    assert_eq!(waited.error_code(), "rate_limited");
    assert_eq!(waited.headers["retry-after"], "1200");
    assert_eq!(waited.body["error"]["details"]["retry_after_seconds"], 1200);
    app.clock.advance(chrono::TimeDelta::seconds(1200));
    assert_eq!(outcome(&app, json!({"key": good})).await.0, "OK");
}

async fn an_address_that_keeps_sending_bad_credentials_waits_with_retry_after(app: TestApp) {
    let app = with_limits(app, "600/60", "2/3600").await;
    let path = format!("/v1/projects/{DEMO}/keys");
    let admin = crate::helpers::ADMIN_TOKEN;
    assert_eq!(
        app.call(Method::GET, &path, Some(admin), None).await.status,
        StatusCode::OK
    );
    for wrong in ["wrong", "also-wrong"] {
        let reply = app.call(Method::GET, &path, Some(wrong), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right token waits: guessing gets no answer at all.
    let waited = app.call(Method::GET, &path, Some(admin), None).await;
    assert_eq!(
        waited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        waited.text
    );
    assert_eq!(waited.headers["retry-after"], "1800");
    app.clock.advance(chrono::TimeDelta::seconds(1800));
    assert_eq!(
        app.call(Method::GET, &path, Some(admin), None).await.status,
        StatusCode::OK
    );
}
