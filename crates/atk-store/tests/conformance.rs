//! The store conformance suite: every test runs unchanged on SQLite and on
//! PostgreSQL (`sqlite::…` and `postgres::…`).

use atk_core::Catalog;
use atk_core::entitlement::{Entitlement, EntitlementStatus};
use atk_core::ids::{DisplayName, KeyId, ProjectId};
use atk_core::key::{Environment, Expiration, KeyKind, KeyRecord, KeyStatus};
use atk_core::project::{Project, initial_entitlements};
use atk_core::secret::{Pepper, PlaintextSecret};
use atk_store::{KeyQuery, SqlStore, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = atk_store::testing::temp_sqlite();
                    let store = atk_store::SqlStore::connect_and_migrate(&db.url).await.unwrap();
                    super::$name(&store).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(url) = atk_store::testing::fresh_postgres_url().await else { return };
                    let store = atk_store::SqlStore::connect_and_migrate(&url).await.unwrap();
                    super::$name(&store).await;
                }
            )+
        }
    };
}

conformance!(
    migrations_can_run_again_without_changes,
    a_project_is_stored_with_its_entitlement_table,
    creating_a_project_twice_is_a_conflict,
    an_entitlement_can_be_replaced_and_cleared,
    a_key_round_trips_every_field,
    a_key_is_found_by_its_hash_and_by_id_only_within_its_project,
    a_second_key_with_the_same_secret_hash_is_a_conflict,
    listing_filters_by_status_environment_kind_and_expiry,
    listing_pages_newest_first_without_gaps_or_repeats,
    a_setting_is_set_once,
);

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_790_000_000_000).unwrap()
}

fn pepper() -> Pepper {
    Pepper::from_bytes(&[9; 32]).unwrap()
}

async fn project(store: &SqlStore, id: &str) -> ProjectId {
    let project_id = ProjectId::parse(id).unwrap();
    let project = Project {
        project_id: project_id.clone(),
        name: DisplayName::parse("Test project").unwrap(),
        created_at: t0(),
    };
    store
        .create_project(&project, &initial_entitlements(Catalog::get(), t0()))
        .await
        .unwrap();
    project_id
}

fn key(project: &ProjectId, created_at: DateTime<Utc>) -> KeyRecord {
    let secret = PlaintextSecret::generate(Environment::Production.secret_prefix());
    KeyRecord {
        id: KeyId::generate(),
        project_id: project.clone(),
        name: DisplayName::parse("Backend Project API Key").unwrap(),
        kind: KeyKind::Project,
        environment: Environment::Production,
        scopes: Catalog::get().default_scopes(KeyKind::Project),
        expiration: Expiration::Days90,
        secret_hash: pepper().hash(&secret.parsed()),
        secret_preview: secret.parsed().preview(),
        created_at,
        expires_at: Expiration::Days90.expires_at(created_at),
        last_used_at: None,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        rotated_to: None,
    }
}

fn query(now: DateTime<Utc>) -> KeyQuery {
    KeyQuery {
        now,
        status: None,
        environment: None,
        kind: None,
        expiring_before: None,
        limit: 100,
        after: None,
    }
}

async fn migrations_can_run_again_without_changes(store: &SqlStore) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn a_project_is_stored_with_its_entitlement_table(store: &SqlStore) {
    assert!(!store.has_projects().await.unwrap());
    let id = project(store, "project_identity_demo").await;
    assert!(store.has_projects().await.unwrap());

    let stored = store.get_project(&id).await.unwrap().unwrap();
    assert_eq!(stored.name.as_str(), "Test project");
    assert_eq!(stored.created_at, t0());

    let entitlements = store.list_entitlements(&id).await.unwrap();
    assert_eq!(entitlements.len(), 7);
    let marketing = store
        .get_entitlement(&id, "marketing")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marketing.status, EntitlementStatus::UpgradeRequired);
    let missing = ProjectId::parse("no_such_project").unwrap();
    assert!(store.get_project(&missing).await.unwrap().is_none());
    assert!(store.list_entitlements(&missing).await.unwrap().is_empty());
}

async fn creating_a_project_twice_is_a_conflict(store: &SqlStore) {
    let id = project(store, "twice").await;
    let again = Project {
        project_id: id.clone(),
        name: DisplayName::parse("Other").unwrap(),
        created_at: t0(),
    };
    let error = store.create_project(&again, &[]).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict), "{error:?}");
    // The failed create changed nothing.
    assert_eq!(
        store.get_project(&id).await.unwrap().unwrap().name.as_str(),
        "Test project"
    );
    assert_eq!(store.list_entitlements(&id).await.unwrap().len(), 7);
}

async fn an_entitlement_can_be_replaced_and_cleared(store: &SqlStore) {
    let id = project(store, "entitled").await;
    let ends = t0() + TimeDelta::days(14);
    let trial = Entitlement {
        product: "marketing".into(),
        status: EntitlementStatus::Trial,
        trial_ends_at: Some(ends),
        updated_at: t0() + TimeDelta::seconds(1),
    };
    store.put_entitlement(&id, &trial).await.unwrap();
    assert_eq!(
        store.get_entitlement(&id, "marketing").await.unwrap(),
        Some(trial)
    );

    let enabled = Entitlement {
        product: "marketing".into(),
        status: EntitlementStatus::Enabled,
        trial_ends_at: None,
        updated_at: t0() + TimeDelta::seconds(2),
    };
    store.put_entitlement(&id, &enabled).await.unwrap();
    assert_eq!(
        store.get_entitlement(&id, "marketing").await.unwrap(),
        Some(enabled)
    );
    assert_eq!(store.list_entitlements(&id).await.unwrap().len(), 7);
}

async fn a_key_round_trips_every_field(store: &SqlStore) {
    let id = project(store, "roundtrip").await;
    let mut record = key(&id, t0());
    record.scopes = vec!["qr.scan.read".into()];
    record.last_used_at = Some(t0() + TimeDelta::minutes(1));
    record.revoked_at = Some(t0() + TimeDelta::minutes(2));
    record.revoke_reason = Some("leaked in a log — «ünïcode»".into());
    record.rotated_from = Some(KeyId::generate());
    record.rotated_to = Some(KeyId::generate());
    store.insert_key(&record).await.unwrap();
    assert_eq!(
        store.get_key(&id, &record.id).await.unwrap(),
        Some(record.clone())
    );

    let mut never = key(&id, t0());
    never.expiration = Expiration::Never;
    never.expires_at = None;
    store.insert_key(&never).await.unwrap();
    assert_eq!(store.get_key(&id, &never.id).await.unwrap(), Some(never));
}

async fn a_key_is_found_by_its_hash_and_by_id_only_within_its_project(store: &SqlStore) {
    let mine = project(store, "mine").await;
    let theirs = project(store, "theirs").await;
    let record = key(&mine, t0());
    store.insert_key(&record).await.unwrap();

    let found = store.find_key_by_hash(&record.secret_hash).await.unwrap();
    assert_eq!(found.as_ref().map(|k| &k.id), Some(&record.id));
    assert!(store.get_key(&theirs, &record.id).await.unwrap().is_none());
    assert!(
        store
            .list_keys(&theirs, &query(t0()))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let other =
        pepper().hash(&PlaintextSecret::generate(Environment::Staging.secret_prefix()).parsed());
    assert!(store.find_key_by_hash(&other).await.unwrap().is_none());
}

async fn a_second_key_with_the_same_secret_hash_is_a_conflict(store: &SqlStore) {
    let id = project(store, "dupes").await;
    let first = key(&id, t0());
    store.insert_key(&first).await.unwrap();
    let mut second = key(&id, t0());
    second.secret_hash = first.secret_hash;
    assert!(matches!(
        store.insert_key(&second).await,
        Err(StoreError::Conflict)
    ));
    let mut same_id = key(&id, t0());
    same_id.id = first.id.clone();
    assert!(matches!(
        store.insert_key(&same_id).await,
        Err(StoreError::Conflict)
    ));
}

async fn listing_filters_by_status_environment_kind_and_expiry(store: &SqlStore) {
    let id = project(store, "filters").await;
    let now = t0() + TimeDelta::days(10);

    let active = key(&id, t0());
    let mut revoked = key(&id, t0() + TimeDelta::seconds(1));
    revoked.revoked_at = Some(t0() + TimeDelta::days(1));
    let mut expired = key(&id, t0() + TimeDelta::seconds(2));
    expired.expiration = Expiration::Days7;
    expired.expires_at = Some(t0() + TimeDelta::days(7));
    let mut expiring = key(&id, t0() + TimeDelta::seconds(3));
    expiring.expires_at = Some(now + TimeDelta::days(3));
    expiring.environment = Environment::Staging;
    expiring.kind = KeyKind::BackendSecret;
    let mut expires_exactly_now = key(&id, t0() + TimeDelta::seconds(4));
    expires_exactly_now.expires_at = Some(now);
    for record in [&active, &revoked, &expired, &expiring, &expires_exactly_now] {
        store.insert_key(record).await.unwrap();
    }

    let ids = |page: atk_store::Page<KeyRecord, atk_store::KeyCursor>| {
        page.items.into_iter().map(|k| k.id).collect::<Vec<_>>()
    };
    let with = |f: &dyn Fn(&mut KeyQuery)| {
        let mut q = query(now);
        f(&mut q);
        q
    };

    let all = ids(store.list_keys(&id, &query(now)).await.unwrap());
    assert_eq!(
        all,
        [&expires_exactly_now, &expiring, &expired, &revoked, &active].map(|k| k.id.clone())
    );
    let by_status = |status| with(&move |q: &mut KeyQuery| q.status = Some(status));
    assert_eq!(
        ids(store
            .list_keys(&id, &by_status(KeyStatus::Active))
            .await
            .unwrap()),
        [expiring.id.clone(), active.id.clone()]
    );
    assert_eq!(
        ids(store
            .list_keys(&id, &by_status(KeyStatus::Expired))
            .await
            .unwrap()),
        [expires_exactly_now.id.clone(), expired.id.clone()]
    );
    assert_eq!(
        ids(store
            .list_keys(&id, &by_status(KeyStatus::Revoked))
            .await
            .unwrap()),
        [revoked.id.clone()]
    );
    let staging = with(&|q| q.environment = Some(Environment::Staging));
    assert_eq!(
        ids(store.list_keys(&id, &staging).await.unwrap()),
        [expiring.id.clone()]
    );
    let backend = with(&|q| q.kind = Some(KeyKind::BackendSecret));
    assert_eq!(
        ids(store.list_keys(&id, &backend).await.unwrap()),
        [expiring.id.clone()]
    );
    let within_week = with(&|q| q.expiring_before = Some(now + TimeDelta::days(7)));
    assert_eq!(
        ids(store.list_keys(&id, &within_week).await.unwrap()),
        [expiring.id.clone()]
    );
}

async fn listing_pages_newest_first_without_gaps_or_repeats(store: &SqlStore) {
    let id = project(store, "paging").await;
    let mut inserted = Vec::new();
    for i in 0..7 {
        // Pairs share a creation time, so the id must break ties.
        let record = key(&id, t0() + TimeDelta::seconds(i / 2));
        store.insert_key(&record).await.unwrap();
        inserted.push(record);
    }
    let mut seen = Vec::new();
    let mut q = query(t0());
    q.limit = 3;
    loop {
        let page = store.list_keys(&id, &q).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|k| (k.created_at, k.id)));
        match page.next {
            Some(cursor) => {
                let decoded = atk_store::KeyCursor::decode(&cursor.encode()).unwrap();
                assert_eq!(decoded, cursor);
                q.after = Some(decoded);
            }
            None => break,
        }
    }
    let mut expected: Vec<_> = inserted.into_iter().map(|k| (k.created_at, k.id)).collect();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected);
}

async fn a_setting_is_set_once(store: &SqlStore) {
    assert_eq!(store.get_setting("admin_token_hash").await.unwrap(), None);
    assert!(
        store
            .insert_setting_if_absent("admin_token_hash", "a")
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_setting_if_absent("admin_token_hash", "b")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_setting("admin_token_hash")
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
}
