//! No secret reaches a log line, at any level. This test binary installs a
//! global TRACE subscriber (hence its own binary), drives create, verify,
//! list and failing requests over HTTP, and searches everything logged.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use helpers::{ADMIN_TOKEN, Backend, DEMO, TestApp};
use reqwest::Method;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

async fn exercise_and_collect_secrets(app: &TestApp) -> Vec<String> {
    let mut secrets = Vec::new();
    for (kind, extra) in [
        ("project", json!({})),
        ("product_scoped", json!({"scopes": ["qr.scan.read"]})),
        ("analytics_read", json!({})),
        ("backend_secret", json!({"environment": "staging"})),
    ] {
        let mut body = extra;
        body["kind"] = json!(kind);
        secrets.push(app.secret(body).await);
    }
    let mut service_confirmations = helpers::EVERY_KIND_CONFIRMATIONS.to_vec();
    service_confirmations.push("service_role_danger");
    let service_role = app
        .secret(json!({"kind": "service_role", "confirmations": service_confirmations}))
        .await;
    secrets.push(service_role.clone());

    for secret in &secrets {
        for action in [
            None,
            Some("notification.send"),
            Some("marketing.campaign.send"),
            Some("qr.scan.read"),
        ] {
            app.verify(secret, action).await;
        }
        // A one-character change: MALFORMED, and still never logged.
        let mut tampered = secret.clone();
        tampered.replace_range(20..21, if &secret[20..21] == "A" { "B" } else { "A" });
        app.verify(&tampered, Some("qr.scan.read")).await;
    }
    let first = &secrets[0];
    // A secret sent as the request id is not logged either.
    let with_secret_id = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", first.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(with_secret_id.status(), 200);
    // Nor is the admin token (configured here without the `atk_` prefix).
    let with_admin_id = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(with_admin_id.status(), 200);
    // The secret as a credential, and pasted into wrong fields.
    app.call(
        Method::GET,
        &format!("/v1/projects/{DEMO}/keys"),
        Some(&service_role),
        None,
    )
    .await;
    app.call(
        Method::GET,
        &format!("/v1/projects/{DEMO}/keys"),
        Some(first),
        None,
    )
    .await;
    app.call(
        Method::PUT,
        &format!("/v1/projects/{DEMO}/entitlements/verification"),
        Some(ADMIN_TOKEN),
        Some(json!({"status": "trial", "trial_ends_at": first})),
    )
    .await;
    let echoed = app
        .call(
            Method::POST,
            "/v1/keys/verify",
            None,
            Some(json!({"key": first, "action": first})),
        )
        .await;
    assert!(
        !echoed.text.contains(&first[9..41]),
        "an error echoed the secret: {}",
        echoed.text
    );
    app.call(
        Method::GET,
        &format!("/v1/projects/{DEMO}/keys?cursor={first}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    secrets
}

fn assert_logs_hide(secrets: &[String], what: &str) {
    let logs = String::from_utf8_lossy(&capture().0.lock().unwrap()).into_owned();
    assert!(logs.contains("TRACE"), "TRACE lines were captured ({what})");
    assert!(
        logs.contains("key created"),
        "the create path was logged ({what})"
    );
    assert!(
        logs.contains("/v1/keys/verify"),
        "the verify path was logged ({what})"
    );
    for secret in secrets {
        // Either half of the random part would give most of a secret away
        // (a tampered string is one character off a real one).
        let leaking: Vec<&str> = logs
            .lines()
            .filter(|line| line.contains(&secret[9..25]) || line.contains(&secret[25..41]))
            .take(3)
            .collect();
        assert!(
            leaking.is_empty(),
            "a secret is in the logs ({what}):\n{}",
            leaking.join("\n")
        );
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the logs ({what})"
        );
        assert!(
            !logs.contains(&secret[9..41]),
            "a secret's random part is in the logs ({what})"
        );
    }
    assert!(
        !logs.contains(ADMIN_TOKEN),
        "the admin token is in the logs ({what})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_log_line_at_trace_level() {
    capture();
    // Checked after a clean stop, so the shutdown path's lines count too.
    let sqlite = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let secrets = exercise_and_collect_secrets(&sqlite).await;
    sqlite.stop().await;
    assert_logs_hide(&secrets, "sqlite");

    if let Some(postgres) = TestApp::spawn(Backend::Postgres).await {
        let secrets = exercise_and_collect_secrets(&postgres).await;
        postgres.stop().await;
        assert_logs_hide(&secrets, "postgres");
    }
}
