//! Leaked-secret reports: a signed report revokes the reported keys and is
//! audited with the URL; a bad signature revokes nothing; a token with a
//! bad checksum is a false positive without a lookup; a body past the
//! limit gets 413 in the error shape.

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{DEMO, Reply, SCANNING_KEY_ID, TestApp, scanning_signing_key};

async fn report(app: &TestApp, body: &str, key: &SigningKey, identifier: &str) -> Reply {
    let signature: Signature = key.sign(body.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_der());
    Reply::from(
        app.client
            .post(app.url("/v1/secret-scanning/report"))
            .header("Github-Public-Key-Identifier", identifier)
            .header("Github-Public-Key-Signature", signature)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn reports(tokens: &[&str]) -> String {
    let items: Vec<Value> = tokens
        .iter()
        .map(|token| {
            json!({"token": token, "type": "atk_live_key", "url": "https://github.com/example/repo/blob/main/.env", "source": "content"})
        })
        .collect();
    serde_json::to_string(&items).unwrap()
}

async fn a_signed_report_revokes_the_leaked_key_and_audits_where_it_was_found(app: TestApp) {
    let leaked = app.secret(json!({})).await;
    let other = app.secret(json!({})).await;
    assert_eq!(app.verify(&leaked, None).await["code"], "OK");
    let mut garbled = other.clone();
    garbled.pop();
    garbled.push(if other.ends_with('A') { 'B' } else { 'A' });
    let unknown_but_well_formed = {
        let secret = atk_core::secret::PlaintextSecret::generate(
            atk_core::key::Environment::Production.secret_prefix(),
        );
        secret.expose().to_owned()
    };
    let reply = report(
        &app,
        &reports(&[&leaked, &garbled, &unknown_but_well_formed]),
        &scanning_signing_key(),
        SCANNING_KEY_ID,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let labels: Vec<&str> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|label| label["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["true_positive", "false_positive", "false_positive"]
    );
    assert!(
        !reply.text.contains(&leaked),
        "the answer never echoes a token"
    );
    assert_eq!(app.verify(&leaked, None).await["code"], "REVOKED");
    assert_eq!(app.verify(&other, None).await["code"], "OK");
    let audit = app
        .admin_get(&format!("/v1/projects/{DEMO}/audit?action=key.revoke"))
        .await;
    let event = &audit.body["items"][0];
    assert_eq!(event["actor"]["type"], "system");
    assert_eq!(
        event["details"]["leaked"]["url"],
        "https://github.com/example/repo/blob/main/.env"
    );
    // Reported again: still ours, nothing more to do.
    let again = report(
        &app,
        &reports(&[&leaked]),
        &scanning_signing_key(),
        SCANNING_KEY_ID,
    )
    .await;
    assert_eq!(again.body[0]["label"], "true_positive");
}

async fn a_report_with_a_bad_signature_is_refused_and_revokes_nothing(app: TestApp) {
    let leaked = app.secret(json!({})).await;
    let body = reports(&[&leaked]);
    let stranger = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
    for (key, identifier) in [
        (&stranger, SCANNING_KEY_ID),
        (&scanning_signing_key(), "no-such-key"),
    ] {
        let reply = report(&app, &body, key, identifier).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert_eq!(reply.error_code(), "unauthorized");
    }
    // A body changed after signing does not verify either.
    let signature: Signature = scanning_signing_key().sign(body.as_bytes());
    let tampered = Reply::from(
        app.client
            .post(app.url("/v1/secret-scanning/report"))
            .header("Github-Public-Key-Identifier", SCANNING_KEY_ID)
            .header(
                "Github-Public-Key-Signature",
                base64::engine::general_purpose::STANDARD.encode(signature.to_der()),
            )
            .body(reports(&[&leaked, "atk_live_x"]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tampered.status, StatusCode::UNAUTHORIZED);
    let unsigned = Reply::from(
        app.client
            .post(app.url("/v1/secret-scanning/report"))
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.verify(&leaked, None).await["code"], "OK");
}

async fn a_report_over_the_body_limit_gets_413_in_the_error_shape(app: TestApp) {
    // 500 reports of about 150 bytes: past the 64 KiB every body is held to.
    let tokens: Vec<String> = (0..500).map(|i| format!("atk_live_{i:040}")).collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let body = reports(&tokens);
    assert!(body.len() > 64 * 1024);
    let reply = report(&app, &body, &scanning_signing_key(), SCANNING_KEY_ID).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.error_code(), "payload_too_large");
}

crate::on_both_stores!(
    a_signed_report_revokes_the_leaked_key_and_audits_where_it_was_found,
    a_report_with_a_bad_signature_is_refused_and_revokes_nothing,
    a_report_over_the_body_limit_gets_413_in_the_error_shape,
);
