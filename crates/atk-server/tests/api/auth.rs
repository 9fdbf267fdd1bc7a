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
