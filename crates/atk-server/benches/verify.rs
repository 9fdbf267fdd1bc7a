//! In-process verification cost: format + checksum + HMAC + cached or store
//! lookup + entitlement + decision, through the same `Verifier` the HTTP
//! handler calls. Run: `cargo bench -p atk-server --bench verify`.
//!
//! `verify_sqlite_allowed_action` is the steady state (the key and the
//! entitlement are in the verifier's cache); `store_lookup_sqlite` is what a
//! cache miss adds on top.

use std::hint::black_box;
use std::sync::Arc;

use atk_core::SystemClock;
use atk_core::policy::{Confirmation, KeyRequest};
use atk_core::secret::{ParsedSecret, Pepper};
use atk_server::Config;
use atk_server::service::Caller;
use atk_server::startup::Services;
use atk_store::Store;
use criterion::{Criterion, criterion_group, criterion_main};

fn verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let (services, secret) = runtime.block_on(async {
        let services = Services::open(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        services.service.ensure_demo_project().await.unwrap();
        let project = atk_core::ids::ProjectId::parse("project_identity_demo").unwrap();
        let request = KeyRequest {
            confirmations: Confirmation::ALL.to_vec(),
            ..KeyRequest::default()
        };
        let created = services
            .service
            .create_key(&Caller::cli(), &project, "bench", &request)
            .await
            .unwrap();
        (services, created.secret.expose().to_owned())
    });

    let pepper = Pepper::from_bytes(&[7; 32]).unwrap();
    c.bench_function("parse_and_hash", |b| {
        b.iter(|| pepper.hash(&ParsedSecret::parse(black_box(&secret)).unwrap()))
    });
    c.bench_function("verify_sqlite_allowed_action", |b| {
        b.to_async(&runtime).iter(|| async {
            let outcome = services
                .verifier
                .verify(
                    black_box(&secret),
                    atk_core::decision::VerifyContext {
                        action: Some("notification.send"),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(outcome.decision.allowed);
        })
    });
    // What a cache miss adds: the keyed-hash lookup in SQLite.
    let hash = pepper_of(&config).hash(&ParsedSecret::parse(&secret).unwrap());
    c.bench_function("store_lookup_sqlite", |b| {
        b.to_async(&runtime).iter(|| async {
            let found = services
                .store
                .find_key_by_hash(black_box(&hash))
                .await
                .unwrap();
            assert!(found.is_some());
        })
    });
    c.bench_function("verify_malformed", |b| {
        b.to_async(&runtime).iter(|| async {
            services
                .verifier
                .verify(black_box("atk_live_nope"), Default::default())
                .await
                .unwrap()
        })
    });
}

fn pepper_of(config: &Config) -> Pepper {
    config.load_pepper().unwrap()
}

criterion_group!(benches, verification);
criterion_main!(benches);
