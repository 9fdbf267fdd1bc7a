use atk_core::usage::hour_of;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, DEMO, EVERY_KIND_CONFIRMATIONS, Reply, TestApp, start_time};
use crate::on_both_stores;

on_both_stores!(
    after_a_rotation_with_one_hour_grace_both_secrets_work_until_the_hour_ends,
    a_rotation_needs_the_secret_shown_once_confirmation,
    rotated_revoked_and_expired_keys_cannot_be_rotated_again,
    of_two_concurrent_rotations_exactly_one_succeeds_a_hundred_times_in_a_row,
    revoke_takes_effect_on_the_very_next_verify_and_is_final,
    expire_takes_effect_on_the_very_next_verify_and_is_final,
    a_revoked_service_role_key_can_no_longer_manage_its_project,
    every_lifecycle_change_produces_exactly_one_audit_event_with_the_right_actor,
    the_audit_log_pages_newest_first_and_filters_by_action,
    usage_counts_every_verification_by_action_code_and_hour,
    usage_windows_are_validated,
);

fn path(key_id: &str, action: &str) -> String {
    format!("/v1/projects/{DEMO}/keys/{key_id}/{action}")
}

async fn create(app: &TestApp, extra: Value) -> (String, String) {
    let reply = app.create_key_in(DEMO, extra).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.body["secret"].as_str().unwrap().to_owned(),
        reply.body["key"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn rotate(app: &TestApp, key_id: &str, grace: &str) -> Reply {
    app.admin_post(
        &path(key_id, "rotate"),
        json!({"grace": grace, "confirmations": ["secret_shown_once"]}),
    )
    .await
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn after_a_rotation_with_one_hour_grace_both_secrets_work_until_the_hour_ends(app: TestApp) {
    let (old_secret, old_id) = create(&app, json!({"kind": "product_scoped", "scopes": ["qr.scan.read"], "environment": "staging", "expiration": "30_days"})).await;
    app.clock.advance(TimeDelta::days(2));
    let rotated = rotate(&app, &old_id, "1_hour").await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("atk_test_"));
    let key = &rotated.body["key"];
    let previous = &rotated.body["previous"];
    let now = start_time() + TimeDelta::days(2);
    assert_eq!(key["rotated_from"], old_id.as_str());
    assert_eq!(previous["rotated_to"], key["id"]);
    assert_eq!(previous["id"], old_id.as_str());
    for field in ["name", "kind", "environment", "scopes"] {
        assert_eq!(key[field], previous[field], "{field} carries over");
    }
    assert_eq!(
        time(&key["expires_at"]),
        now + TimeDelta::days(30),
        "the expiration choice counts from now"
    );
    assert_eq!(time(&previous["expires_at"]), now + TimeDelta::hours(1));
    assert_eq!(previous["status"], "active");

    assert_eq!(
        app.verify(&old_secret, Some("qr.scan.read")).await["code"],
        "OK"
    );
    assert_eq!(
        app.verify(&new_secret, Some("qr.scan.read")).await["code"],
        "OK"
    );
    app.clock.advance(TimeDelta::hours(1));
    assert_eq!(
        app.verify(&old_secret, Some("qr.scan.read")).await["code"],
        "EXPIRED"
    );
    assert_eq!(
        app.verify(&new_secret, Some("qr.scan.read")).await["code"],
        "OK"
    );

    // With no grace the old key stops at once.
    let (other_secret, other_id) = create(&app, json!({})).await;
    let rotated = rotate(&app, &other_id, "none").await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    assert_eq!(app.verify(&other_secret, None).await["code"], "EXPIRED");
}

async fn a_rotation_needs_the_secret_shown_once_confirmation(app: TestApp) {
    let (_, id) = create(&app, json!({})).await;
    let reply = app
        .admin_post(
            &path(&id, "rotate"),
            json!({"grace": "none", "confirmations": []}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "confirmation_required");
    assert_eq!(
        reply.body["error"]["details"]["missing"],
        json!(["secret_shown_once"])
    );
    let no_grace = app
        .admin_post(
            &path(&id, "rotate"),
            json!({"confirmations": ["secret_shown_once"]}),
        )
        .await;
    assert_eq!(no_grace.status, StatusCode::BAD_REQUEST);
    assert!(no_grace.text.contains("grace"), "{}", no_grace.text);
}

async fn rotated_revoked_and_expired_keys_cannot_be_rotated_again(app: TestApp) {
    let (_, rotated) = create(&app, json!({})).await;
    assert_eq!(
        rotate(&app, &rotated, "7_days").await.status,
        StatusCode::CREATED
    );
    let (_, revoked) = create(&app, json!({})).await;
    app.admin_post(&path(&revoked, "revoke"), json!({})).await;
    let (_, expired) = create(&app, json!({})).await;
    app.admin_post(&path(&expired, "expire"), json!({})).await;
    for id in [&rotated, &revoked, &expired] {
        let again = rotate(&app, id, "none").await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{id}: {}", again.text);
        assert_eq!(again.error_code(), "conflict");
    }
    let missing = rotate(&app, "key_0000000000000000000000", "none").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn of_two_concurrent_rotations_exactly_one_succeeds_a_hundred_times_in_a_row(app: TestApp) {
    for round in 0..100 {
        let (_, id) = create(&app, json!({"name": format!("race {round}")})).await;
        let (first, second) =
            tokio::join!(rotate(&app, &id, "1_hour"), rotate(&app, &id, "1_hour"));
        let mut statuses = [first.status, second.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "round {round}: {} / {}",
            first.text,
            second.text
        );
        let successors = app
            .admin_get(&format!(
                "/v1/projects/{DEMO}/audit?action=key.rotate&limit=200"
            ))
            .await;
        let for_this_key = successors.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["target"]["id"] == id.as_str())
            .count();
        assert_eq!(for_this_key, 1, "round {round}: one rotation recorded");
    }
    let keys = app
        .admin_get(&format!("/v1/projects/{DEMO}/keys?limit=200"))
        .await;
    assert_eq!(
        keys.body["items"].as_array().unwrap().len(),
        200,
        "one successor per key"
    );
}

async fn revoke_takes_effect_on_the_very_next_verify_and_is_final(app: TestApp) {
    let (secret, id) = create(&app, json!({})).await;
    assert_eq!(
        app.verify(&secret, Some("notification.send")).await["code"],
        "OK"
    );
    let revoked = app
        .admin_post(
            &path(&id, "revoke"),
            json!({"reason": "leaked in a build log"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(time(&revoked.body["revoked_at"]), start_time());
    let verified = app.verify(&secret, Some("notification.send")).await;
    assert_eq!(verified["code"], "REVOKED");
    assert_eq!(verified["valid"], false);
    for action in ["revoke", "expire"] {
        let again = app.admin_post(&path(&id, action), json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{action}");
    }
    // The body is optional.
    let (_, bare) = create(&app, json!({})).await;
    let no_body = app
        .call(
            Method::POST,
            &path(&bare, "revoke"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(no_body.status, StatusCode::OK, "{}", no_body.text);
    let listed = app
        .admin_get(&format!("/v1/projects/{DEMO}/keys?status=revoked"))
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
}

async fn expire_takes_effect_on_the_very_next_verify_and_is_final(app: TestApp) {
    let (secret, id) = create(&app, json!({})).await;
    assert_eq!(app.verify(&secret, None).await["code"], "OK");
    let expired = app
        .call(Method::POST, &path(&id, "expire"), Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(expired.status, StatusCode::OK, "{}", expired.text);
    assert_eq!(expired.body["status"], "expired");
    assert_eq!(time(&expired.body["expires_at"]), start_time());
    assert_eq!(app.verify(&secret, None).await["code"], "EXPIRED");
    let again = app
        .call(Method::POST, &path(&id, "expire"), Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let unknown_field = app
        .admin_post(&path(&id, "revoke"), json!({"why": "typo"}))
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
}

async fn a_revoked_service_role_key_can_no_longer_manage_its_project(app: TestApp) {
    let mut confirmations = EVERY_KIND_CONFIRMATIONS.to_vec();
    confirmations.push("service_role_danger");
    let (secret, id) = create(
        &app,
        json!({"kind": "service_role", "confirmations": confirmations}),
    )
    .await;
    let before = app
        .call(
            Method::GET,
            &format!("/v1/projects/{DEMO}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(before.status, StatusCode::OK);
    app.admin_post(&path(&id, "revoke"), json!({})).await;
    let after = app
        .call(
            Method::GET,
            &format!("/v1/projects/{DEMO}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

async fn every_lifecycle_change_produces_exactly_one_audit_event_with_the_right_actor(
    app: TestApp,
) {
    let mut confirmations = EVERY_KIND_CONFIRMATIONS.to_vec();
    confirmations.push("service_role_danger");
    let (service_secret, service_id) = create(
        &app,
        json!({"kind": "service_role", "confirmations": confirmations}),
    )
    .await;
    let by_service = app
        .call(
            Method::POST,
            &format!("/v1/projects/{DEMO}/keys"),
            Some(&service_secret),
            Some(
                json!({"name": "made by service role", "confirmations": EVERY_KIND_CONFIRMATIONS}),
            ),
        )
        .await;
    assert_eq!(by_service.status, StatusCode::CREATED);
    let key_id = by_service.body["key"]["id"].as_str().unwrap().to_owned();
    let new_secret = by_service.body["secret"].as_str().unwrap().to_owned();
    let rotated = rotate(&app, &key_id, "1_hour").await;
    let successor = rotated.body["key"]["id"].as_str().unwrap().to_owned();
    let rotated_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    let revoked = app
        .call(
            Method::POST,
            &path(&successor, "revoke"),
            Some(&service_secret),
            Some(json!({"reason": "rotated by mistake"})),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let expired = app.admin_post(&path(&key_id, "expire"), json!({})).await;
    assert_eq!(expired.status, StatusCode::OK);
    app.call(
        Method::PUT,
        &format!("/v1/projects/{DEMO}/entitlements/marketing"),
        Some(ADMIN_TOKEN),
        Some(json!({"status": "enabled"})),
    )
    .await;
    app.create_project("audited_other").await;
    // Refused changes record nothing.
    assert_eq!(
        app.admin_post(&path(&key_id, "expire"), json!({}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        rotate(&app, &key_id, "none").await.status,
        StatusCode::CONFLICT
    );

    let log = app
        .admin_get(&format!("/v1/projects/{DEMO}/audit?limit=200"))
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let events: Vec<(String, String, String, String)> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["action"].as_str().unwrap().to_owned(),
                event["actor"]["type"].as_str().unwrap().to_owned(),
                event["actor"]["id"].as_str().unwrap().to_owned(),
                event["target"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |action: &str, actor_type: &str, actor_id: &str, target: &str| {
        (
            action.to_owned(),
            actor_type.to_owned(),
            actor_id.to_owned(),
            target.to_owned(),
        )
    };
    assert_eq!(
        events,
        [
            row("entitlement.update", "admin", "admin", "marketing"),
            row("key.expire", "admin", "admin", &key_id),
            row("key.revoke", "service_role_key", &service_id, &successor),
            row("key.rotate", "admin", "admin", &key_id),
            row("key.create", "service_role_key", &service_id, &key_id),
            row("key.create", "admin", "admin", &service_id),
            row("project.create", "system", "atk", DEMO),
        ]
    );
    for event in log.body["items"].as_array().unwrap().iter().take(6) {
        assert_eq!(event["source_ip"], "127.0.0.1", "{event}");
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    }
    assert_eq!(
        log.body["items"][2]["details"]["reason"],
        "rotated by mistake"
    );
    assert_eq!(
        log.body["items"][3]["details"]["new_key_id"],
        successor.as_str()
    );
    for secret in [&service_secret, &new_secret, &rotated_secret] {
        assert!(
            !log.text.contains(&secret[9..41]),
            "a secret is in the audit log"
        );
    }
    let other = app.admin_get("/v1/projects/audited_other/audit").await;
    assert_eq!(
        other.body["items"].as_array().unwrap().len(),
        1,
        "events stay in their project"
    );
}

async fn the_audit_log_pages_newest_first_and_filters_by_action(app: TestApp) {
    for i in 0..5 {
        create(&app, json!({"name": format!("key {i}")})).await;
        app.clock.advance(TimeDelta::seconds(1));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let page = app
            .admin_get(&format!(
                "/v1/projects/{DEMO}/audit?action=key.create&limit=2{query}"
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for event in page.body["items"].as_array().unwrap() {
            seen.push(event["details"]["name"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["key 4", "key 3", "key 2", "key 1", "key 0"]);
    let bad = app
        .admin_get(&format!("/v1/projects/{DEMO}/audit?action=key.delete"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad_cursor = app
        .admin_get(&format!("/v1/projects/{DEMO}/audit?cursor=abc"))
        .await;
    assert_eq!(bad_cursor.status, StatusCode::BAD_REQUEST);
}

async fn usage_counts_every_verification_by_action_code_and_hour(app: TestApp) {
    let (secret, id) = create(&app, json!({"kind": "product_scoped", "scopes": ["notification.send", "marketing.campaign.send"]})).await;
    for _ in 0..3 {
        app.verify(&secret, Some("notification.send")).await;
    }
    app.verify(&secret, Some("qr.scan.read")).await;
    app.verify(&secret, Some("marketing.campaign.send")).await;
    app.verify(&secret, None).await;
    app.clock.advance(TimeDelta::hours(2));
    app.verify(&secret, Some("notification.send")).await;
    let last_use = start_time() + TimeDelta::hours(2);

    // A clean stop saves every count; a restart reads them back.
    let (config, dir) = app.stop().await;
    let app = TestApp::spawn_with(config, dir).await;
    app.clock.set(start_time() + TimeDelta::hours(3));
    let usage = app
        .admin_get(&format!("{}?granularity=hour", path(&id, "usage")))
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);
    let body = &usage.body;
    assert_eq!(body["key_id"], id.as_str());
    assert_eq!(body["total"], 7);
    assert_eq!(
        body["by_code"],
        json!({"OK": 5, "SCOPE_MISSING": 1, "ENTITLEMENT_UPGRADE_REQUIRED": 1})
    );
    assert_eq!(
        body["by_action"],
        json!({"notification.send": 4, "qr.scan.read": 1, "marketing.campaign.send": 1, "none": 1})
    );
    let series = body["series"].as_array().unwrap();
    // 24 hours that start and end mid-hour touch 25 hourly buckets.
    assert_eq!(series.len(), 25);
    let hour_of_start = series
        .iter()
        .find(|bucket| time(&bucket["start"]) == hour_of(start_time()))
        .unwrap();
    assert_eq!(hour_of_start["total"], 6);
    let two_hours_later = series
        .iter()
        .find(|bucket| time(&bucket["start"]) == hour_of(start_time() + TimeDelta::hours(2)))
        .unwrap();
    assert_eq!(two_hours_later["by_code"], json!({"OK": 1}));

    let daily = app
        .admin_get(&format!("{}?granularity=day", path(&id, "usage")))
        .await;
    assert_eq!(daily.body["total"], 7);
    assert_eq!(daily.body["series"].as_array().unwrap().len(), 31);
    let key = app
        .admin_get(&format!("/v1/projects/{DEMO}/keys/{id}"))
        .await;
    assert_eq!(time(&key.body["last_used_at"]), last_use);
}

async fn usage_windows_are_validated(app: TestApp) {
    let (_, id) = create(&app, json!({})).await;
    for query in [
        "?from=2026-06-08T00:00:00Z&to=2026-06-07T00:00:00Z",
        "?granularity=minute",
        "?from=2026-01-01T00:00:00Z&to=2026-06-07T00:00:00Z&granularity=hour",
        "?from=yesterday",
        "?to=-262143-01-01T00:00:00Z",
        "?from=%2B262142-12-31T22:00:00Z&to=%2B262142-12-31T23:30:00Z",
        "?window=7d",
    ] {
        let reply = app
            .admin_get(&format!("{}{query}", path(&id, "usage")))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalid_request");
    }
    let missing = app
        .admin_get(&path("key_0000000000000000000000", "usage"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let fresh = app.admin_get(&path(&id, "usage")).await;
    assert_eq!(fresh.body["total"], 0);
}
