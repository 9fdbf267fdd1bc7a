use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, DEMO, TestApp};
use crate::on_both_stores;

on_both_stores!(
    first_start_creates_the_demo_project_with_the_preview_entitlements,
    the_admin_creates_a_project_once,
    only_catalog_products_have_entitlements,
);

async fn first_start_creates_the_demo_project_with_the_preview_entitlements(app: TestApp) {
    let project = app.admin_get(&format!("/v1/projects/{DEMO}")).await;
    assert_eq!(project.status, StatusCode::OK);
    assert_eq!(project.body["project_id"], DEMO);
    let entitlements = app
        .admin_get(&format!("/v1/projects/{DEMO}/entitlements"))
        .await;
    let mut table: Vec<(String, String)> = entitlements.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["product"].as_str().unwrap().into(),
                e["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    table.sort();
    let expected = [
        ("analytics", "enabled"),
        ("commerce", "enabled"),
        ("identity", "enabled"),
        ("marketing", "upgrade_required"),
        ("notification", "enabled"),
        ("qr", "enabled"),
        ("verification", "trial"),
    ]
    .map(|(p, s)| (p.to_owned(), s.to_owned()));
    assert_eq!(table, expected);
    assert_eq!(entitlements.body["next_cursor"], serde_json::Value::Null);
}

async fn the_admin_creates_a_project_once(app: TestApp) {
    let body = json!({"project_id": "project_two", "name": "Second"});
    let created = app.admin_post("/v1/projects", body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["name"], "Second");
    let again = app.admin_post("/v1/projects", body).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "conflict");
    let keys = app.create_key_in("project_two", json!({})).await;
    assert_eq!(keys.status, StatusCode::CREATED);
    assert_eq!(
        keys.body["blocked_scopes"],
        json!(["marketing.campaign.send"])
    );
}

async fn only_catalog_products_have_entitlements(app: TestApp) {
    let reply = app
        .call(
            Method::PUT,
            &format!("/v1/projects/{DEMO}/entitlements/teleportation"),
            Some(ADMIN_TOKEN),
            Some(json!({"status": "enabled"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");
    let not_trial = app
        .call(
            Method::PUT,
            &format!("/v1/projects/{DEMO}/entitlements/qr"),
            Some(ADMIN_TOKEN),
            Some(json!({"status": "enabled", "trial_ends_at": "2030-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(not_trial.status, StatusCode::BAD_REQUEST);
    let missing_project = app
        .call(
            Method::PUT,
            "/v1/projects/no_such_project/entitlements/qr",
            Some(ADMIN_TOKEN),
            Some(json!({"status": "enabled"})),
        )
        .await;
    assert_eq!(missing_project.status, StatusCode::NOT_FOUND);
}
