use std::sync::Arc;

use atk_core::SystemClock;
use atk_server::{Application, Config};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, DEMO, EVERY_KIND_CONFIRMATIONS, TestApp};
use crate::on_both_stores;

on_both_stores!(
    management_calls_without_a_valid_credential_are_401,
    keys_of_other_kinds_are_403_on_management_calls,
    a_service_role_key_manages_its_own_project_and_sees_no_other,
    only_the_admin_creates_projects_and_changes_entitlements,
    a_service_role_key_cannot_create_or_rotate_another_service_role_key,
    rotating_a_service_role_key_needs_the_danger_confirmation,
    a_cascading_revoke_ends_every_key_the_service_role_key_created_each_audited,
    the_configured_admin_token_is_refused_in_names_and_reasons,
);

async fn service_role_secret(app: &TestApp, project: &str) -> String {
    let mut confirmations = EVERY_KIND_CONFIRMATIONS.to_vec();
    confirmations.push("service_role_danger");
    let reply = app
        .create_key_in(
            project,
            json!({"kind": "service_role", "confirmations": confirmations}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["secret"].as_str().unwrap().to_owned()
}

async fn management_calls_without_a_valid_credential_are_401(app: TestApp) {
    let path = format!("/v1/projects/{DEMO}/keys");
    let unknown_key =
        atk_core::secret::PlaintextSecret::generate(atk_core::secret::SecretPrefix::Live);
    for token in [None, Some("wrong"), Some(unknown_key.expose()), Some("")] {
        let reply = app.call(Method::GET, &path, token, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(reply.error_code(), "unauthorized");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    let basic = app
        .client
        .get(app.url(&path))
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let lower_case_scheme = app
        .client
        .get(app.url(&path))
        .header("authorization", format!("bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower_case_scheme.status(), StatusCode::OK);
}

async fn keys_of_other_kinds_are_403_on_management_calls(app: TestApp) {
    for kind in ["project", "backend_secret", "analytics_read"] {
        let secret = app.secret(json!({"kind": kind})).await;
        let reply = app
            .call(
                Method::GET,
                &format!("/v1/projects/{DEMO}/keys"),
                Some(&secret),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{kind}");
        assert_eq!(reply.error_code(), "forbidden");
    }
}

async fn a_service_role_key_manages_its_own_project_and_sees_no_other(app: TestApp) {
    app.create_project("project_other").await;
    let secret = service_role_secret(&app, DEMO).await;
    let own = app
        .call(
            Method::GET,
            &format!("/v1/projects/{DEMO}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let created = app
        .call(
            Method::POST,
            &format!("/v1/projects/{DEMO}/keys"),
            Some(&secret),
            Some(
                json!({"name": "made by service role", "confirmations": EVERY_KIND_CONFIRMATIONS}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

    for path in [
        "/v1/projects/project_other".to_owned(),
        "/v1/projects/project_other/keys".to_owned(),
        "/v1/projects/project_other/entitlements".to_owned(),
        "/v1/projects/no_such_project".to_owned(),
    ] {
        let reply = app.call(Method::GET, &path, Some(&secret), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "not_found");
    }
    let foreign_key = app.create_key_in("project_other", json!({})).await;
    let foreign_id = foreign_key.body["key"]["id"].as_str().unwrap();
    let peek = app
        .call(
            Method::GET,
            &format!("/v1/projects/{DEMO}/keys/{foreign_id}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(
        peek.status,
        StatusCode::NOT_FOUND,
        "another project's key through one's own path"
    );
}

async fn only_the_admin_creates_projects_and_changes_entitlements(app: TestApp) {
    let secret = service_role_secret(&app, DEMO).await;
    let project = app
        .call(
            Method::POST,
            "/v1/projects",
            Some(&secret),
            Some(json!({"project_id": "sneaky", "name": "Sneaky"})),
        )
        .await;
    assert_eq!(project.status, StatusCode::FORBIDDEN);
    let entitlement = app
        .call(
            Method::PUT,
            &format!("/v1/projects/{DEMO}/entitlements/marketing"),
            Some(&secret),
            Some(json!({"status": "enabled"})),
        )
        .await;
    assert_eq!(entitlement.status, StatusCode::FORBIDDEN);
    assert_eq!(entitlement.error_code(), "forbidden");
    let unchanged = app
        .admin_get(&format!("/v1/projects/{DEMO}/entitlements"))
        .await;
    assert!(unchanged.text.contains("upgrade_required"));
}

#[tokio::test]
async fn a_generated_admin_token_is_shown_on_first_start_only_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let first = Application::build_with_clock(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let token = first
        .bootstrap
        .new_admin_token
        .clone()
        .expect("first start generates a token");
    assert!(first.bootstrap.demo_project_created);
    assert!(token.starts_with("atk_admin_"));
    drop(first);

    let second = Application::build_with_clock(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(
        second.bootstrap.new_admin_token.is_none(),
        "the token is shown once"
    );
    assert!(!second.bootstrap.demo_project_created);
    drop(second);

    let app = TestApp::spawn_with(config, dir).await;
    let reply = app
        .call(
            Method::GET,
            &format!("/v1/projects/{DEMO}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for file in ["atk.sqlite", "atk.sqlite-wal"] {
        let stored = std::fs::read(app.config.data_dir.join(file)).unwrap_or_default();
        assert!(
            !stored
                .windows(token.len())
                .any(|window| window == token.as_bytes()),
            "the admin token is stored hashed ({file})"
        );
    }
}

fn service_role_confirmations() -> Vec<&'static str> {
    let mut confirmations = EVERY_KIND_CONFIRMATIONS.to_vec();
    confirmations.push("service_role_danger");
    confirmations
}

async fn a_service_role_key_cannot_create_or_rotate_another_service_role_key(app: TestApp) {
    let secret = service_role_secret(&app, DEMO).await;
    let refused = app
        .call(
            Method::POST,
            &format!("/v1/projects/{DEMO}/keys"),
            Some(&secret),
            Some(json!({
                "name": "second service role",
                "kind": "service_role",
                "confirmations": service_role_confirmations(),
            })),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.error_code(), "forbidden");
    assert!(
        refused
            .text
            .contains("only a project owner or the platform admin"),
        "{}",
        refused.text
    );
    let other = app
        .create_key_in(
            DEMO,
            json!({"kind": "service_role", "confirmations": service_role_confirmations()}),
        )
        .await;
    let other_id = other.body["key"]["id"].as_str().unwrap();
    let rotate = app
        .call(
            Method::POST,
            &format!("/v1/projects/{DEMO}/keys/{other_id}/rotate"),
            Some(&secret),
            Some(json!({"grace": "none", "confirmations": service_role_confirmations()})),
        )
        .await;
    assert_eq!(rotate.status, StatusCode::FORBIDDEN, "{}", rotate.text);
    // Nothing was created: the admin still sees two service role keys.
    let listed = app
        .admin_get(&format!("/v1/projects/{DEMO}/keys?kind=service_role"))
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
}

async fn rotating_a_service_role_key_needs_the_danger_confirmation(app: TestApp) {
    let created = app
        .create_key_in(
            DEMO,
            json!({"kind": "service_role", "confirmations": service_role_confirmations()}),
        )
        .await;
    let id = created.body["key"]["id"].as_str().unwrap();
    let path = format!("/v1/projects/{DEMO}/keys/{id}/rotate");
    let refused = app
        .admin_post(
            &path,
            json!({"grace": "none", "confirmations": ["secret_shown_once"]}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(refused.error_code(), "confirmation_required");
    assert!(
        refused.text.contains("service_role_danger"),
        "{}",
        refused.text
    );
    let rotated = app
        .admin_post(
            &path,
            json!({"grace": "none", "confirmations": ["secret_shown_once", "service_role_danger"]}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
}

async fn a_cascading_revoke_ends_every_key_the_service_role_key_created_each_audited(app: TestApp) {
    let parent = app
        .create_key_in(
            DEMO,
            json!({"kind": "service_role", "confirmations": service_role_confirmations()}),
        )
        .await;
    let parent_secret = parent.body["secret"].as_str().unwrap().to_owned();
    let parent_id = parent.body["key"]["id"].as_str().unwrap().to_owned();
    let mut children = Vec::new();
    for name in ["child one", "child two"] {
        let child = app
            .call(
                Method::POST,
                &format!("/v1/projects/{DEMO}/keys"),
                Some(&parent_secret),
                Some(json!({"name": name, "confirmations": EVERY_KIND_CONFIRMATIONS})),
            )
            .await;
        assert_eq!(child.status, StatusCode::CREATED, "{}", child.text);
        children.push(child.body["secret"].as_str().unwrap().to_owned());
    }
    let bystander = app.secret(json!({"name": "made by the admin"})).await;

    // Without cascade only the key itself ends.
    let lone = app
        .create_key_in(
            DEMO,
            json!({"kind": "service_role", "confirmations": service_role_confirmations()}),
        )
        .await;
    let lone_secret = lone.body["secret"].as_str().unwrap().to_owned();
    let lone_child = app
        .call(
            Method::POST,
            &format!("/v1/projects/{DEMO}/keys"),
            Some(&lone_secret),
            Some(json!({"name": "lone child", "confirmations": EVERY_KIND_CONFIRMATIONS})),
        )
        .await;
    let lone_child_secret = lone_child.body["secret"].as_str().unwrap().to_owned();
    let lone_id = lone.body["key"]["id"].as_str().unwrap();
    let revoked = app
        .admin_post(
            &format!("/v1/projects/{DEMO}/keys/{lone_id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(app.verify(&lone_child_secret, None).await["code"], "OK");

    let revoked = app
        .admin_post(
            &format!("/v1/projects/{DEMO}/keys/{parent_id}/revoke"),
            json!({"reason": "leaked in a log", "cascade": true}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(app.verify(&parent_secret, None).await["code"], "REVOKED");
    for child in &children {
        assert_eq!(app.verify(child, None).await["code"], "REVOKED");
    }
    assert_eq!(app.verify(&bystander, None).await["code"], "OK");

    let audit = app
        .admin_get(&format!("/v1/projects/{DEMO}/audit?action=key.revoke"))
        .await;
    let events = audit.body["items"].as_array().unwrap();
    let cascaded: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["details"]["cascade_from"] == parent_id.as_str())
        .collect();
    assert_eq!(cascaded.len(), 2, "{}", audit.text);
    assert!(
        cascaded
            .iter()
            .all(|e| e["details"]["reason"] == "leaked in a log")
    );
    let own = events
        .iter()
        .find(|e| e["target"]["id"] == parent_id.as_str())
        .expect("the parent's own revoke is audited");
    assert_eq!(own["details"]["cascade"], true);
}

async fn the_configured_admin_token_is_refused_in_names_and_reasons(app: TestApp) {
    // The test deployment's token has no `atk_` prefix, so only this rule
    // stops it.
    let pasted = format!("deploy {ADMIN_TOKEN} here");
    let key = app.create_key_in(DEMO, json!({"name": pasted})).await;
    let project = app
        .admin_post(
            "/v1/projects",
            json!({"project_id": "pasted_token", "name": pasted}),
        )
        .await;
    let created = app.create_key_in(DEMO, json!({})).await;
    let id = created.body["key"]["id"].as_str().unwrap();
    let revoke = app
        .admin_post(
            &format!("/v1/projects/{DEMO}/keys/{id}/revoke"),
            json!({"reason": pasted}),
        )
        .await;
    for (what, reply, field) in [
        ("key name", &key, "name"),
        ("project name", &project, "name"),
        ("revoke reason", &revoke, "reason"),
    ] {
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["details"]["field"], field, "{what}");
        assert!(reply.text.contains("admin token"), "{what}: {}", reply.text);
        assert!(
            !reply.text.contains(ADMIN_TOKEN),
            "{what}: the token is not echoed"
        );
    }
    let verified = app
        .verify(created.body["secret"].as_str().unwrap(), None)
        .await;
    assert_eq!(verified["code"], "OK", "the refused revoke changed nothing");
}
