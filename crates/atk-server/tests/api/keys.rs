use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{DEMO, EVERY_KIND_CONFIRMATIONS, TestApp, start_time};
use crate::on_both_stores;

on_both_stores!(
    creating_a_key_returns_the_secret_once_with_no_store_and_the_preview_row,
    a_default_key_is_a_production_project_key_for_ninety_days_with_every_scope,
    non_production_keys_get_test_secrets_and_never_may_not_expire,
    blocked_scopes_lists_the_chosen_scopes_entitlements_block_today,
    analytics_read_keys_refuse_write_scopes_with_scope_not_allowed,
    product_scoped_keys_need_an_explicit_scope,
    a_service_role_key_needs_the_danger_confirmation,
    a_missing_confirmation_is_refused_and_lists_every_missing_id,
    get_responses_never_contain_the_secret,
    listing_filters_by_status_environment_kind_and_expiry,
    listing_pages_through_every_key_once,
    a_key_is_shown_by_id_and_unknown_ids_are_404,
    keys_survive_a_clean_restart,
);

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn creating_a_key_returns_the_secret_once_with_no_store_and_the_preview_row(app: TestApp) {
    let reply = app.create_key_in(DEMO, json!({})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let secret = reply.body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 47);
    assert!(secret.starts_with("atk_live_"));
    let key = &reply.body["key"];
    let fields: Vec<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "id",
        "project_id",
        "name",
        "kind",
        "environment",
        "scopes",
        "secret_preview",
        "status",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "rotated_from",
        "rotated_to",
        // The key's own restrictions (empty and null here), shown so a
        // rotation visibly keeps them.
        "allowed_ips",
        "rate_limit",
    ];
    expected.sort_unstable();
    let mut fields_sorted = fields.clone();
    fields_sorted.sort_unstable();
    assert_eq!(fields_sorted, expected);
    assert!(key["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(key["project_id"], DEMO);
    assert_eq!(key["name"], "Backend Project API Key");
    assert_eq!(key["allowed_ips"], json!([]));
    assert_eq!(key["rate_limit"], Value::Null);
    assert_eq!(key["status"], "active");
    assert_eq!(
        key["secret_preview"].as_str().unwrap(),
        format!("{}...{}", &secret[..9], &secret[41..])
    );
    assert_eq!(time(&key["created_at"]), start_time());
    assert_eq!(key["last_used_at"], Value::Null);
}

async fn a_default_key_is_a_production_project_key_for_ninety_days_with_every_scope(app: TestApp) {
    let reply = app.create_key_in(DEMO, json!({})).await;
    let key = &reply.body["key"];
    assert_eq!(key["kind"], "project");
    assert_eq!(key["environment"], "production");
    assert_eq!(key["scopes"].as_array().unwrap().len(), 7);
    assert_eq!(time(&key["expires_at"]), start_time() + TimeDelta::days(90));
}

async fn non_production_keys_get_test_secrets_and_never_may_not_expire(app: TestApp) {
    for environment in ["staging", "development"] {
        let reply = app
            .create_key_in(
                DEMO,
                json!({"environment": environment, "expiration": "never"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert!(
            reply.body["secret"]
                .as_str()
                .unwrap()
                .starts_with("atk_test_")
        );
        assert_eq!(reply.body["key"]["environment"], environment);
        assert_eq!(reply.body["key"]["expires_at"], Value::Null);
    }
    let week = app
        .create_key_in(DEMO, json!({"expiration": "7_days"}))
        .await;
    assert_eq!(
        time(&week.body["key"]["expires_at"]),
        start_time() + TimeDelta::days(7)
    );
}

async fn blocked_scopes_lists_the_chosen_scopes_entitlements_block_today(app: TestApp) {
    let all = app.create_key_in(DEMO, json!({})).await;
    assert_eq!(
        all.body["blocked_scopes"],
        json!(["marketing.campaign.send"])
    );
    let qr_only = app
        .create_key_in(
            DEMO,
            json!({"kind": "product_scoped", "scopes": ["qr.scan.read"]}),
        )
        .await;
    assert_eq!(qr_only.body["blocked_scopes"], json!([]));
}

async fn analytics_read_keys_refuse_write_scopes_with_scope_not_allowed(app: TestApp) {
    let refused = app
        .create_key_in(
            DEMO,
            json!({"kind": "analytics_read", "scopes": ["notification.send"]}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(refused.error_code(), "scope_not_allowed");
    assert_eq!(
        refused.body["error"]["details"]["scopes"],
        json!(["notification.send"])
    );

    let default = app
        .create_key_in(DEMO, json!({"kind": "analytics_read"}))
        .await;
    assert_eq!(default.status, StatusCode::CREATED);
    assert_eq!(
        default.body["key"]["scopes"],
        json!(["analytics.report.read"])
    );
}

async fn product_scoped_keys_need_an_explicit_scope(app: TestApp) {
    for body in [
        json!({"kind": "product_scoped"}),
        json!({"kind": "product_scoped", "scopes": []}),
    ] {
        let reply = app.create_key_in(DEMO, body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.error_code(), "scope_not_allowed");
    }
    let reply = app
        .create_key_in(
            DEMO,
            json!({"kind": "product_scoped", "scopes": ["notification.send", "access.evaluate"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.body["key"]["scopes"],
        json!(["access.evaluate", "notification.send"])
    );
}

async fn a_service_role_key_needs_the_danger_confirmation(app: TestApp) {
    let refused = app
        .create_key_in(DEMO, json!({"kind": "service_role"}))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.error_code(), "confirmation_required");
    assert_eq!(
        refused.body["error"]["details"]["missing"],
        json!(["service_role_danger"])
    );

    let mut confirmations = EVERY_KIND_CONFIRMATIONS.to_vec();
    confirmations.push("service_role_danger");
    let created = app
        .create_key_in(
            DEMO,
            json!({"kind": "service_role", "confirmations": confirmations}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
}

async fn a_missing_confirmation_is_refused_and_lists_every_missing_id(app: TestApp) {
    let reply = app
        .create_key_in(DEMO, json!({"confirmations": ["backend_only"]}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "confirmation_required");
    assert_eq!(
        reply.body["error"]["details"]["missing"],
        json!(["secret_shown_once", "entitlements_may_block"])
    );
    let no_field = app
        .admin_post(&format!("/v1/projects/{DEMO}/keys"), json!({"name": "a"}))
        .await;
    assert_eq!(
        no_field.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        no_field.text
    );
    assert_eq!(
        no_field.body["error"]["details"]["missing"],
        json!([
            "backend_only",
            "secret_shown_once",
            "entitlements_may_block"
        ])
    );
    let listed = app.admin_get(&format!("/v1/projects/{DEMO}/keys")).await;
    assert_eq!(
        listed.body["items"],
        json!([]),
        "a refused create writes nothing"
    );
}

async fn get_responses_never_contain_the_secret(app: TestApp) {
    let created = app.create_key_in(DEMO, json!({})).await;
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let id = created.body["key"]["id"].as_str().unwrap().to_owned();
    // The random middle is what must never reappear, in any form.
    let middle = &secret[9..41];
    app.verify(&secret, Some("qr.scan.read")).await;
    for path in [
        format!("/v1/projects/{DEMO}/keys"),
        format!("/v1/projects/{DEMO}/keys/{id}"),
        format!("/v1/projects/{DEMO}"),
        format!("/v1/projects/{DEMO}/entitlements"),
        "/v1/catalog".to_owned(),
        "/openapi.json".to_owned(),
    ] {
        let reply = app.admin_get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(!reply.text.contains(middle), "{path} shows the secret");
    }
    let verified = app.verify(&secret, None).await;
    assert!(
        !verified.to_string().contains(middle),
        "verify echoes the secret"
    );
}

async fn listing_filters_by_status_environment_kind_and_expiry(app: TestApp) {
    let week = app
        .create_key_in(DEMO, json!({"expiration": "7_days", "name": "week"}))
        .await;
    app.clock.advance(TimeDelta::seconds(1));
    let staging = app
        .create_key_in(
            DEMO,
            json!({"environment": "staging", "kind": "backend_secret", "name": "staging"}),
        )
        .await;
    app.clock.advance(TimeDelta::seconds(1));
    let _default = app.create_key_in(DEMO, json!({"name": "default"})).await;
    app.clock.advance(TimeDelta::days(8));
    let names = |reply: crate::helpers::Reply| -> Vec<String> {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: &'static str| {
        let path = format!("/v1/projects/{DEMO}/keys{query}");
        let app = &app;
        async move { app.admin_get(&path).await }
    };
    assert_eq!(names(list("").await), ["default", "staging", "week"]);
    assert_eq!(names(list("?status=expired").await), ["week"]);
    assert_eq!(names(list("?status=active").await), ["default", "staging"]);
    assert_eq!(names(list("?status=revoked").await), Vec::<String>::new());
    assert_eq!(names(list("?environment=staging").await), ["staging"]);
    assert_eq!(names(list("?kind=backend_secret").await), ["staging"]);
    assert_eq!(
        names(list("?expiring_within_days=90").await),
        ["default", "staging"]
    );
    assert_eq!(
        names(list("?expiring_within_days=7").await),
        Vec::<String>::new()
    );
    let expired = app
        .admin_get(&format!(
            "/v1/projects/{DEMO}/keys/{}",
            week.body["key"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(expired.body["status"], "expired");
    assert_eq!(staging.body["key"]["status"], "active");
}

async fn listing_pages_through_every_key_once(app: TestApp) {
    let mut created = Vec::new();
    for i in 0..5 {
        let reply = app
            .create_key_in(DEMO, json!({"name": format!("key {i}")}))
            .await;
        created.push(reply.body["key"]["id"].as_str().unwrap().to_owned());
        app.clock.advance(TimeDelta::seconds(1));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("?limit=2&cursor={cursor}"),
            None => "?limit=2".to_owned(),
        };
        let reply = app
            .admin_get(&format!("/v1/projects/{DEMO}/keys{query}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        for item in reply.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created);
}

async fn a_key_is_shown_by_id_and_unknown_ids_are_404(app: TestApp) {
    let created = app.create_key_in(DEMO, json!({})).await;
    let id = created.body["key"]["id"].as_str().unwrap();
    let shown = app
        .admin_get(&format!("/v1/projects/{DEMO}/keys/{id}"))
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, created.body["key"]);
    for missing in ["key_0000000000000000000000", "not-a-key-id"] {
        let reply = app
            .admin_get(&format!("/v1/projects/{DEMO}/keys/{missing}"))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(reply.error_code(), "not_found");
    }
}

async fn keys_survive_a_clean_restart(app: TestApp) {
    let secret = app.secret(json!({})).await;
    let (config, dir) = app.stop().await;
    let restarted = TestApp::spawn_with(config, dir).await;
    assert_eq!(
        restarted.verify(&secret, Some("notification.send")).await["code"],
        "OK"
    );
    let listed = restarted
        .admin_get(&format!("/v1/projects/{DEMO}/keys"))
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}
