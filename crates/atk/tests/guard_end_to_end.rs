//! A product backend guarded by `atk-guard`, end to end: the real `atk
//! serve` process, keys created through `atk-client`, and the example
//! Notification backend (`examples/notification-send`) driven over HTTP.

mod support;

use std::net::SocketAddr;

use atk_client::api::keys::{CreateKey, RevokeKey};
use atk_client::api::projects::{CreateProject, PutEntitlement};
use atk_client::api::{Confirmation, EntitlementStatus};
use atk_client::{Client, Retry};
use atk_guard::KeyGuard;
use notification_send::Sent;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "guard-e2e-admin-token-0123456789abcdefghij";
const PROJECT: &str = "project_guard_demo";

/// The confirmations a project key needs.
fn confirmed() -> Vec<Confirmation> {
    vec![
        Confirmation::BackendOnly,
        Confirmation::SecretShownOnce,
        Confirmation::EntitlementsMayBlock,
    ]
}

/// Serves the example backend on a free port; returns its address.
async fn serve_example(guard: &KeyGuard) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = notification_send::app(guard);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    address
}

struct Backend {
    http: reqwest::Client,
    address: SocketAddr,
}

impl Backend {
    /// Sends a notification with `key` as the bearer: status and body.
    async fn send(&self, key: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("http://{}/v1/notifications/send", self.address))
            .bearer_auth(key)
            .json(&json!({"to": "+15550100", "message": "Your code is 123456"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guarded_backend_lets_allowed_keys_through_and_refuses_the_rest_with_the_right_status() {
    let data = tempfile::tempdir().unwrap();
    let (server, admin) = support::start_with_admin(data.path(), ADMIN_TOKEN);
    admin
        .create_project(&CreateProject {
            project_id: PROJECT.into(),
            name: "Guard demo".into(),
        })
        .await
        .unwrap();
    let create = |name: &str, scopes: &[&str]| CreateKey {
        name: name.into(),
        scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
        confirmations: confirmed(),
        ..CreateKey::default()
    };
    let allowed = admin
        .create_key(PROJECT, &create("Sender", &["notification.send"]))
        .await
        .unwrap();
    let unscoped = admin
        .create_key(
            PROJECT,
            &create("Analytics only", &["analytics.report.read"]),
        )
        .await
        .unwrap();

    // The guard calls verify without a credential: product backends need none.
    let verifier = Client::builder(server.url(""))
        .retry(Retry::none())
        .build()
        .unwrap();
    let guard = KeyGuard::builder(verifier).build();
    let backend = Backend {
        http: reqwest::Client::new(),
        address: serve_example(&guard).await,
    };

    // Allowed: the handler runs and knows the key's project.
    let (status, body) = backend.send(&allowed.secret).await;
    assert_eq!(status, 200, "{body}");
    let sent: Sent = serde_json::from_value(body).unwrap();
    assert_eq!(sent.project_id, PROJECT);
    assert_eq!(sent.key_id, allowed.key.id.to_string());
    assert_eq!(sent.to, "+15550100");

    // Scope missing: 403 naming the scope.
    let (status, body) = backend.send(&unscoped.secret).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["details"]["verify_code"], "SCOPE_MISSING");
    assert_eq!(
        body["error"]["details"]["missing_scopes"],
        json!(["notification.send"])
    );

    // Upgrade required: the scope allows it, the Commerce entitlement not.
    admin
        .put_entitlement(
            PROJECT,
            "notification",
            &PutEntitlement {
                status: EntitlementStatus::UpgradeRequired,
                trial_ends_at: None,
            },
        )
        .await
        .unwrap();
    let (status, body) = backend.send(&allowed.secret).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["details"]["verify_code"],
        "ENTITLEMENT_UPGRADE_REQUIRED"
    );
    admin
        .put_entitlement(
            PROJECT,
            "notification",
            &PutEntitlement {
                status: EntitlementStatus::Enabled,
                trial_ends_at: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(backend.send(&allowed.secret).await.0, 200);

    // Revoked: refused from the very next request (no local cache).
    admin
        .revoke_key(
            PROJECT,
            &allowed.key.id.to_string(),
            &RevokeKey {
                reason: Some("end-to-end test".into()),
                cascade: false,
            },
        )
        .await
        .unwrap();
    let (status, body) = backend.send(&allowed.secret).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(body["error"]["details"]["verify_code"], "REVOKED");

    // Malformed: one character of the secret changed breaks its checksum;
    // refused by the guard itself, with no call to the key service.
    let before = guard.stats();
    let mut typo = unscoped.secret.clone().into_bytes();
    let last = typo.len() - 10;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let (status, body) = backend.send(&typo).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["details"]["verify_code"], "MALFORMED");
    let (status, _) = backend.send("not-a-key").await;
    assert_eq!(status, 401);
    let after = guard.stats();
    assert_eq!(after.verify_calls, before.verify_calls, "no verify call");
    assert_eq!(after.rejected_locally, before.rejected_locally + 2);
    // Five requests reached verify: allowed, scope missing, upgrade
    // required, allowed again, revoked — and nothing else.
    assert_eq!(after.verify_calls, 5);

    // The key service saw exactly those verifications.
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let verified: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("atk_verifications_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(verified, 5, "{metrics}");
    println!(
        "guard: {} verify calls, {} refused locally without a call",
        after.verify_calls, after.rejected_locally
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guarded_backend_fails_closed_with_503_when_the_key_service_is_gone() {
    let data = tempfile::tempdir().unwrap();
    let (server, admin) = support::start_with_admin(data.path(), ADMIN_TOKEN);
    let key = admin
        .create_key(
            "project_identity_demo",
            &CreateKey {
                name: "Sender".into(),
                scopes: Some(vec!["notification.send".into()]),
                confirmations: confirmed(),
                ..CreateKey::default()
            },
        )
        .await
        .unwrap();
    let guard = KeyGuard::builder(Client::builder(server.url("")).build().unwrap()).build();
    let backend = Backend {
        http: reqwest::Client::new(),
        address: serve_example(&guard).await,
    };
    assert_eq!(backend.send(&key.secret).await.0, 200);
    assert!(server.stop().success());
    let (status, body) = backend.send(&key.secret).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
}
