//! Faults the store can have at the worst moment, made to happen every
//! time by a store that delegates to a real one:
//! - the verifier's cache never keeps serving a key after a revocation
//!   made through this node, even when a verification read the key just
//!   before the revocation committed and cached it just after;
//! - a usage flush whose commit succeeded but whose acknowledgement was
//!   lost is not counted twice when it is retried.

use std::sync::Arc;

use async_trait::async_trait;
use atk_core::audit::{Actor, AuditAction, AuditEvent};
use atk_core::catalog::Catalog;
use atk_core::decision::VerifyCode;
use atk_core::entitlement::Entitlement;
use atk_core::ids::{DisplayName, KeyId, ProjectId};
use atk_core::key::{Environment, Expiration, KeyKind, KeyRecord};
use atk_core::lifecycle::Ending;
use atk_core::project::{Project, initial_entitlements};
use atk_core::secret::{Pepper, PlaintextSecret, SecretHash};
use atk_core::usage::UsageRow;
use atk_core::{Clock, SystemClock};
use atk_server::metrics::Metrics;
use atk_server::usage::UsageRecorder;
use atk_server::verifier::Verifier;
use atk_store::{
    AuditQuery, KeyCursor, KeyQuery, Page, Rotation, SqlStore, Store, StoreError, UsageBatch,
};
use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Notify};

/// Delegates to a real store; when armed, `find_key_by_hash` pauses after
/// reading (the stale row in hand) until the test lets it go on; and the
/// next `add_usage` can be made to commit and then report a failure.
#[derive(Debug)]
struct FaultyStore {
    inner: SqlStore,
    armed: Mutex<bool>,
    read_done: Notify,
    go_on: Notify,
    lose_next_usage_ack: Mutex<bool>,
    /// The number of counters of every usage batch sent.
    batch_sizes: Mutex<Vec<usize>>,
}

#[async_trait]
impl Store for FaultyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn change_feed(&self) -> atk_store::feed::ChangeFeed {
        self.inner.change_feed()
    }
    async fn all_key_hashes(&self) -> Result<Vec<SecretHash>, StoreError> {
        self.inner.all_key_hashes().await
    }
    async fn has_projects(&self) -> Result<bool, StoreError> {
        self.inner.has_projects().await
    }
    async fn create_project(
        &self,
        p: &Project,
        e: &[Entitlement],
        ev: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.create_project(p, e, ev).await
    }
    async fn get_project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        self.inner.get_project(id).await
    }
    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        self.inner.list_projects().await
    }
    async fn list_entitlements(&self, p: &ProjectId) -> Result<Vec<Entitlement>, StoreError> {
        self.inner.list_entitlements(p).await
    }
    async fn get_entitlement(
        &self,
        p: &ProjectId,
        product: &str,
    ) -> Result<Option<Entitlement>, StoreError> {
        self.inner.get_entitlement(p, product).await
    }
    async fn put_entitlement(
        &self,
        p: &ProjectId,
        e: &Entitlement,
        ev: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.put_entitlement(p, e, ev).await
    }
    async fn insert_key(&self, k: &KeyRecord, ev: &AuditEvent) -> Result<(), StoreError> {
        self.inner.insert_key(k, ev).await
    }
    async fn rotate_key(&self, r: Rotation<'_>) -> Result<KeyRecord, StoreError> {
        self.inner.rotate_key(r).await
    }
    async fn end_key(
        &self,
        p: &ProjectId,
        id: &KeyId,
        now: DateTime<Utc>,
        ending: &Ending,
        ev: &AuditEvent,
    ) -> Result<KeyRecord, StoreError> {
        self.inner.end_key(p, id, now, ending, ev).await
    }
    async fn get_key(&self, p: &ProjectId, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get_key(p, id).await
    }
    async fn keys_created_by(
        &self,
        p: &ProjectId,
        creator: &KeyId,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.keys_created_by(p, creator).await
    }
    async fn find_key_by_hash(&self, hash: &SecretHash) -> Result<Option<KeyRecord>, StoreError> {
        let found = self.inner.find_key_by_hash(hash).await;
        let mut armed = self.armed.lock().await;
        if *armed {
            *armed = false;
            drop(armed);
            self.read_done.notify_one();
            self.go_on.notified().await;
        }
        found
    }
    async fn list_keys(
        &self,
        p: &ProjectId,
        q: &KeyQuery,
    ) -> Result<Page<KeyRecord, KeyCursor>, StoreError> {
        self.inner.list_keys(p, q).await
    }
    async fn list_audit(
        &self,
        p: &ProjectId,
        q: &AuditQuery,
    ) -> Result<Page<AuditEvent, i64>, StoreError> {
        self.inner.list_audit(p, q).await
    }
    async fn add_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        self.batch_sizes.lock().await.push(batch.counts.len());
        self.inner.add_usage(batch).await?;
        if std::mem::take(&mut *self.lose_next_usage_ack.lock().await) {
            return Err(StoreError::Unavailable(
                "the acknowledgement was lost".into(),
            ));
        }
        Ok(())
    }
    async fn usage(
        &self,
        p: &ProjectId,
        k: &KeyId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, StoreError> {
        self.inner.usage(p, k, from, to).await
    }
    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_setting(name).await
    }
    async fn insert_setting_if_absent(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        self.inner.insert_setting_if_absent(name, value).await
    }
}

fn event(project: &ProjectId, action: AuditAction, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent::new(
        at,
        Actor::system(),
        action,
        project,
        ("key", "k"),
        None,
        serde_json::json!({}),
    )
}

struct Setup {
    store: Arc<FaultyStore>,
    /// Keeps the SQLite file for the test's length.
    _db: atk_store::testing::TempSqlite,
    clock: Arc<dyn Clock>,
    project: ProjectId,
    key: KeyRecord,
    secret: PlaintextSecret,
    pepper: Pepper,
}

/// A real SQLite store behind the faulty one, with a project and a key.
async fn setup() -> Setup {
    let db = atk_store::testing::temp_sqlite();
    let inner = SqlStore::connect_and_migrate(&db.url).await.unwrap();
    let store = Arc::new(FaultyStore {
        inner,
        armed: Mutex::new(false),
        read_done: Notify::new(),
        go_on: Notify::new(),
        lose_next_usage_ack: Mutex::new(false),
        batch_sizes: Mutex::new(Vec::new()),
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let project = ProjectId::parse("race_project").unwrap();
    let details = Project {
        project_id: project.clone(),
        name: DisplayName::parse("Race").unwrap(),
        created_at: now,
    };
    store
        .create_project(
            &details,
            &initial_entitlements(Catalog::get(), now),
            &event(&project, AuditAction::ProjectCreate, now),
        )
        .await
        .unwrap();
    let pepper = Pepper::from_bytes(&[3; 32]).unwrap();
    let secret = PlaintextSecret::generate(Environment::Production.secret_prefix());
    let key = KeyRecord {
        id: KeyId::generate(),
        project_id: project.clone(),
        name: DisplayName::parse("k").unwrap(),
        kind: KeyKind::Project,
        environment: Environment::Production,
        scopes: Catalog::get().default_scopes(KeyKind::Project),
        expiration: Expiration::Never,
        secret_hash: pepper.hash(&secret.parsed()),
        secret_preview: secret.parsed().preview(),
        created_at: now,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        rotated_to: None,
        created_by: None,
        allowed_ips: Default::default(),
        rate_limit: None,
    };
    store
        .insert_key(&key, &event(&project, AuditAction::KeyCreate, now))
        .await
        .unwrap();

    Setup {
        store,
        _db: db,
        clock,
        project,
        key,
        secret,
        pepper,
    }
}

#[tokio::test]
async fn a_lookup_that_raced_a_revocation_is_not_served_from_the_cache() {
    let Setup {
        store,
        _db,
        clock,
        project,
        key,
        secret,
        pepper,
    } = setup().await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let metrics = Arc::new(Metrics::new());
    let verifier = Arc::new(Verifier::new(
        dyn_store.clone(),
        pepper,
        clock.clone(),
        UsageRecorder::start(dyn_store, metrics.clone()),
        metrics,
    ));

    // A verification reads the still-active key and is held there.
    *store.armed.lock().await = true;
    let racing = tokio::spawn({
        let verifier = verifier.clone();
        let secret = secret.expose().to_owned();
        async move {
            verifier
                .verify(&secret, Default::default())
                .await
                .unwrap()
                .decision
                .code
        }
    });
    store.read_done.notified().await;

    // The revocation commits and is announced, as the key service does.
    let at = clock.now();
    store
        .end_key(
            &project,
            &key.id,
            at,
            &Ending::Revoke { reason: None },
            &event(&project, AuditAction::KeyRevoke, at),
        )
        .await
        .unwrap();
    verifier.forget_key(&key.secret_hash);

    // The held verification finishes with what it read before the change.
    store.go_on.notify_one();
    assert_eq!(racing.await.unwrap(), VerifyCode::Ok);

    // From now on the key is revoked, not served from a stale cache entry.
    let next = verifier
        .verify(secret.expose(), Default::default())
        .await
        .unwrap();
    assert_eq!(next.decision.code, VerifyCode::Revoked);
}

#[tokio::test]
async fn a_usage_flush_whose_acknowledgement_was_lost_is_not_counted_twice() {
    let Setup {
        store,
        _db,
        clock,
        project,
        key,
        ..
    } = setup().await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let recorder = UsageRecorder::start(dyn_store, Arc::new(Metrics::new()));
    let now = clock.now();
    let record = atk_core::key::VerifiableKey::from(key.clone());
    for _ in 0..5 {
        recorder.record(&record, Some("notification.send"), VerifyCode::Ok, now);
    }
    *store.lose_next_usage_ack.lock().await = true;
    assert!(!recorder.flush().await, "the flush's answer was lost");
    assert!(recorder.flush().await, "the retry is acknowledged");
    let rows = store
        .usage(
            &project,
            &key.id,
            now - chrono::TimeDelta::hours(1),
            now + chrono::TimeDelta::hours(1),
        )
        .await
        .unwrap();
    let counted: u64 = rows.iter().map(|row| row.count).sum();
    assert_eq!(counted, 5, "five verifications, counted once: {rows:?}");
}

#[tokio::test]
async fn a_flush_of_more_counters_than_one_transaction_holds_is_saved_in_bounded_batches() {
    let Setup {
        store,
        _db,
        clock,
        project,
        key,
        pepper,
        ..
    } = setup().await;
    let now = clock.now();
    // Three keys with 3,000 counters each (one per hour): 9,000 counters,
    // more than one transaction takes.
    let mut keys = vec![key.clone()];
    for _ in 0..2 {
        let secret = PlaintextSecret::generate(Environment::Production.secret_prefix());
        let other = KeyRecord {
            id: KeyId::generate(),
            secret_hash: pepper.hash(&secret.parsed()),
            ..key.clone()
        };
        store
            .insert_key(&other, &event(&project, AuditAction::KeyCreate, now))
            .await
            .unwrap();
        keys.push(other);
    }
    let dyn_store: Arc<dyn Store> = store.clone();
    let recorder = UsageRecorder::start(dyn_store, Arc::new(Metrics::new()));
    let hours: i64 = 3_000;
    for key in &keys {
        let record = atk_core::key::VerifiableKey::from(key.clone());
        for hour in 0..hours {
            recorder.record(
                &record,
                Some("notification.send"),
                VerifyCode::Ok,
                now - chrono::TimeDelta::hours(hour),
            );
        }
    }
    assert!(recorder.flush().await, "every counter is saved");
    let mut sizes = store.batch_sizes.lock().await.clone();
    sizes.sort_unstable();
    // A key's counters stay together; keys join a batch while it stays
    // within MAX_BATCH_COUNTERS.
    assert_eq!(sizes, [3_000, 3_000, 3_000], "{sizes:?}");
    assert!(
        sizes
            .iter()
            .all(|size| *size <= atk_server::usage::MAX_BATCH_COUNTERS)
    );
    for key in &keys {
        let rows = store
            .usage(
                &project,
                &key.id,
                now - chrono::TimeDelta::hours(hours),
                now + chrono::TimeDelta::hours(1),
            )
            .await
            .unwrap();
        assert_eq!(rows.iter().map(|row| row.count).sum::<u64>(), 3_000);
    }
}
