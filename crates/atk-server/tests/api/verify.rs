use atk_core::secret::{BASE62, PlaintextSecret, SecretPrefix};
use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, DEMO, TestApp, start_time};
use crate::on_both_stores;

on_both_stores!(
    a_created_key_verifies_ok_for_an_allowed_action,
    an_action_outside_the_keys_scopes_is_scope_missing_with_missing_scopes,
    marketing_is_blocked_by_its_upgrade_required_entitlement_even_with_the_scope,
    changing_any_one_character_of_a_secret_makes_it_malformed,
    a_well_formed_secret_that_was_never_issued_is_not_found,
    a_key_stops_verifying_at_the_instant_it_expires,
    a_trial_that_has_ended_blocks_with_entitlement_trial_ended,
    a_disabled_entitlement_blocks_until_it_is_enabled,
    an_action_outside_the_catalog_is_a_400,
);

async fn a_created_key_verifies_ok_for_an_allowed_action(app: TestApp) {
    let secret = app.secret(json!({})).await;
    let verified = app.verify(&secret, Some("notification.send")).await;
    assert_eq!(verified["code"], "OK");
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["allowed"], true);
    assert_eq!(verified["missing_scopes"], json!([]));
    assert_eq!(
        verified["entitlement"],
        json!({"product": "notification", "status": "enabled"})
    );
    assert_eq!(verified["key"]["project_id"], DEMO);
    assert_eq!(verified["key"]["kind"], "project");
    assert_eq!(verified["key"]["environment"], "production");

    let without_action = app.verify(&secret, None).await;
    assert_eq!(without_action["code"], "OK");
    assert_eq!(without_action["allowed"], true);
    assert_eq!(without_action["entitlement"], Value::Null);

    // A trial that has no end date lets the action run.
    let trial = app.verify(&secret, Some("verification.read")).await;
    assert_eq!(trial["code"], "OK");
    assert_eq!(trial["entitlement"]["status"], "trial");
}

async fn an_action_outside_the_keys_scopes_is_scope_missing_with_missing_scopes(app: TestApp) {
    let secret = app
        .secret(json!({"kind": "product_scoped", "scopes": ["qr.scan.read"]}))
        .await;
    let verified = app.verify(&secret, Some("notification.send")).await;
    assert_eq!(verified["code"], "SCOPE_MISSING");
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["allowed"], false);
    assert_eq!(verified["missing_scopes"], json!(["notification.send"]));
}

async fn marketing_is_blocked_by_its_upgrade_required_entitlement_even_with_the_scope(
    app: TestApp,
) {
    let secret = app.secret(json!({})).await;
    let verified = app.verify(&secret, Some("marketing.campaign.send")).await;
    assert_eq!(verified["code"], "ENTITLEMENT_UPGRADE_REQUIRED");
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["allowed"], false);
    assert_eq!(
        verified["entitlement"],
        json!({"product": "marketing", "status": "upgrade_required"})
    );
    assert!(
        verified["key"]["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("marketing.campaign.send"))
    );
}

async fn changing_any_one_character_of_a_secret_makes_it_malformed(app: TestApp) {
    let secret = app.secret(json!({})).await;
    for position in 0..secret.len() {
        let mut bytes = secret.clone().into_bytes();
        // The next base62 digit: stays in the alphabet, so only the format
        // rules and the checksum can catch it.
        let index = BASE62
            .iter()
            .position(|&b| b == bytes[position])
            .unwrap_or(0);
        bytes[position] = BASE62[(index + 1) % 62];
        let changed = String::from_utf8(bytes).unwrap();
        let verified = app.verify(&changed, Some("notification.send")).await;
        assert_eq!(
            verified["code"], "MALFORMED",
            "position {position}: {changed}"
        );
        assert_eq!(verified["valid"], false);
        assert_eq!(verified["key"], Value::Null);
    }
    for garbage in [
        "",
        "atk_live_",
        "hello",
        &format!("{secret}x"),
        &secret[..46],
    ] {
        assert_eq!(
            app.verify(garbage, None).await["code"],
            "MALFORMED",
            "{garbage:?}"
        );
    }
}

async fn a_well_formed_secret_that_was_never_issued_is_not_found(app: TestApp) {
    let stranger = PlaintextSecret::generate(SecretPrefix::Live);
    let verified = app.verify(stranger.expose(), Some("qr.scan.read")).await;
    assert_eq!(verified["code"], "NOT_FOUND");
    assert_eq!(verified["valid"], false);
    assert_eq!(verified["key"], Value::Null);
}

async fn a_key_stops_verifying_at_the_instant_it_expires(app: TestApp) {
    let secret = app.secret(json!({"expiration": "7_days"})).await;
    app.clock
        .advance(TimeDelta::days(7) - TimeDelta::milliseconds(1));
    assert_eq!(app.verify(&secret, None).await["code"], "OK");
    app.clock.advance(TimeDelta::milliseconds(1));
    let expired = app.verify(&secret, Some("qr.scan.read")).await;
    assert_eq!(expired["code"], "EXPIRED");
    assert_eq!(expired["valid"], false);
    assert_eq!(expired["allowed"], false);
    assert_eq!(
        expired["key"]["project_id"], DEMO,
        "a found key is reported"
    );
}

async fn put_entitlement(app: &TestApp, product: &str, body: Value) {
    let reply = app
        .call(
            Method::PUT,
            &format!("/v1/projects/{DEMO}/entitlements/{product}"),
            Some(ADMIN_TOKEN),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

async fn a_trial_that_has_ended_blocks_with_entitlement_trial_ended(app: TestApp) {
    let ends = start_time() + TimeDelta::days(1);
    put_entitlement(
        &app,
        "verification",
        json!({"status": "trial", "trial_ends_at": ends}),
    )
    .await;
    let secret = app.secret(json!({})).await;
    assert_eq!(
        app.verify(&secret, Some("verification.read")).await["code"],
        "OK"
    );
    app.clock.advance(TimeDelta::days(1));
    let ended = app.verify(&secret, Some("verification.read")).await;
    assert_eq!(ended["code"], "ENTITLEMENT_TRIAL_ENDED");
    assert_eq!(ended["allowed"], false);
    assert_eq!(
        ended["entitlement"],
        json!({"product": "verification", "status": "trial"})
    );
}

async fn a_disabled_entitlement_blocks_until_it_is_enabled(app: TestApp) {
    let secret = app.secret(json!({})).await;
    put_entitlement(&app, "qr", json!({"status": "disabled"})).await;
    assert_eq!(
        app.verify(&secret, Some("qr.scan.read")).await["code"],
        "ENTITLEMENT_DISABLED"
    );
    put_entitlement(&app, "qr", json!({"status": "enabled"})).await;
    assert_eq!(
        app.verify(&secret, Some("qr.scan.read")).await["code"],
        "OK"
    );
    put_entitlement(&app, "marketing", json!({"status": "enabled"})).await;
    assert_eq!(
        app.verify(&secret, Some("marketing.campaign.send")).await["code"],
        "OK"
    );
}

async fn an_action_outside_the_catalog_is_a_400(app: TestApp) {
    let secret = app.secret(json!({})).await;
    let reply = app
        .call(
            Method::POST,
            "/v1/keys/verify",
            None,
            Some(json!({"key": secret, "action": "identity.delete_everything"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "invalid_request");
}
