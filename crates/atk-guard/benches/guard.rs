//! The guard's own cost per request, against calling verify directly with
//! `atk-client`: both against one `atk serve` in this process (SQLite, key
//! cached), so the difference is what the guard adds (reading the header,
//! the checksum, building the verify request, mapping the answer, the
//! layer). Run: `cargo bench -p atk-guard --bench guard`.

use std::hint::black_box;

use atk_api::Confirmation;
use atk_api::keys::CreateKey;
use atk_api::verify::VerifyRequest;
use atk_guard::KeyGuard;
use atk_server::Config;
use atk_server::startup::Application;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "guard-bench-admin-token-0123456789abcdefghij";

fn request(secret: &str) -> Request {
    Request::post("/send")
        .header("authorization", format!("Bearer {secret}"))
        .body(Body::empty())
        .unwrap()
}

fn guard_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Config::default()
    };
    let (client, secret) = runtime.block_on(async {
        let app = Application::build(&config).await.unwrap();
        let url = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until_stopped());
        let admin = atk_client::Client::builder(&url)
            .token(ADMIN_TOKEN)
            .build()
            .unwrap();
        let created = admin
            .create_key(
                "project_identity_demo",
                &CreateKey {
                    name: "bench".into(),
                    scopes: Some(vec!["notification.send".into()]),
                    confirmations: vec![
                        Confirmation::BackendOnly,
                        Confirmation::SecretShownOnce,
                        Confirmation::EntitlementsMayBlock,
                    ],
                    ..CreateKey::default()
                },
            )
            .await
            .unwrap();
        (
            atk_client::Client::builder(&url).build().unwrap(),
            created.secret,
        )
    });
    let guard = KeyGuard::builder(client.clone()).build();
    let guarded: Router = Router::new().route(
        "/send",
        post(|| async { "sent" }).route_layer(guard.require("notification.send")),
    );
    let unguarded: Router = Router::new().route("/send", post(|| async { "sent" }));
    let direct = VerifyRequest {
        key: secret.clone(),
        action: Some("notification.send".into()),
        client_ip: None,
        origin: None,
    };
    let mut malformed = secret.clone().into_bytes();
    malformed[20] = if malformed[20] == b'a' { b'b' } else { b'a' };
    let malformed = String::from_utf8(malformed).unwrap();

    c.bench_function("client_verify_direct", |b| {
        b.to_async(&runtime).iter(|| async {
            let outcome = client.verify(black_box(&direct)).await.unwrap();
            assert!(outcome.allowed);
        })
    });
    c.bench_function("guarded_request_allowed", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = guarded.clone().oneshot(request(&secret)).await.unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    c.bench_function("unguarded_request", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = unguarded.clone().oneshot(request(&secret)).await.unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    c.bench_function("guarded_request_malformed_refused_locally", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = guarded.clone().oneshot(request(&malformed)).await.unwrap();
            assert_eq!(response.status(), 401);
        })
    });
}

criterion_group!(benches, guard_overhead);
criterion_main!(benches);
