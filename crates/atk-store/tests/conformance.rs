//! The store conformance suite: every test runs unchanged on SQLite and on
//! PostgreSQL (`sqlite::…` and `postgres::…`).

use atk_core::Catalog;
use atk_core::access::Role;
use atk_core::account::{Account, AccountRecord, ConsoleLink, LinkPurpose, Session};
use atk_core::audit::{Actor, AuditAction, AuditEvent};
use atk_core::decision::VerifyCode;
use atk_core::entitlement::{Entitlement, EntitlementStatus};
use atk_core::ids::{AccountId, Email};
use atk_core::ids::{DisplayName, KeyId, ProjectId};
use atk_core::key::{Environment, Expiration, KeyKind, KeyRecord, KeyStatus};
use atk_core::lifecycle::Ending;
use atk_core::project::{Project, initial_entitlements};
use atk_core::secret::SecretHash;
use atk_core::secret::{Pepper, PlaintextSecret};
use atk_store::{
    AccountStore, AuditQuery, HELP_MISS_QUESTIONS_PER_ROUTE, HelpGapStore, HelpMiss, HelpMissCount,
    KeyQuery, Redemption, Rotation, SqlStore, Store, StoreError, UsageBatch, UsageCount,
};
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
    a_rotation_links_both_keys_and_ends_the_old_one_no_later_than_its_expiry,
    a_key_is_rotated_at_most_once_even_by_concurrent_rotations,
    revoked_and_expired_keys_cannot_be_ended_or_rotated_again,
    every_change_appends_exactly_one_audit_event,
    audit_events_page_newest_first_and_filter_by_action,
    audit_events_cannot_be_updated_or_deleted,
    usage_counts_add_up_across_batches_and_move_last_used_forward_and_a_batch_counts_once,
    a_batch_of_thousands_of_keys_is_added_whole,
    a_link_is_spent_once_and_creates_the_account_with_its_roles_and_events,
    of_two_concurrent_redemptions_of_one_link_exactly_one_succeeds,
    an_expired_link_or_one_of_another_purpose_cannot_be_redeemed,
    a_taken_email_leaves_the_link_unspent,
    sessions_are_stored_touched_forward_only_and_deleted,
    a_role_change_is_kept_with_its_audit_event,
    a_form_nonce_is_claimed_once,
    of_several_setup_links_only_one_ever_creates_an_owner,
    an_invite_link_is_stored_with_its_audit_event,
    pruning_deletes_ended_sessions_spent_links_and_old_nonces_only,
    an_invite_adds_an_existing_account_to_a_project_once,
    help_misses_are_counted_per_project_route_and_question,
    help_misses_keep_at_most_the_cap_of_questions_per_route,
    keys_are_found_by_the_key_that_created_them_within_the_project,
    a_stored_name_that_todays_rules_would_refuse_still_loads,
);

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_790_000_000_000).unwrap()
}

fn event(project: &ProjectId, action: AuditAction, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent::new(
        at,
        Actor::admin(),
        action,
        project,
        ("key", "key_test"),
        Some("127.0.0.1".into()),
        serde_json::json!({"n": 1}),
    )
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
        .create_project(
            &project,
            &initial_entitlements(Catalog::get(), t0()),
            &event(&project_id, AuditAction::ProjectCreate, t0()),
        )
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
        created_by: None,
        allowed_ips: Default::default(),
        rate_limit: None,
    }
}

async fn insert(store: &SqlStore, key: &KeyRecord) -> Result<(), StoreError> {
    store
        .insert_key(
            key,
            &event(&key.project_id, AuditAction::KeyCreate, key.created_at),
        )
        .await
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
    let error = store
        .create_project(&again, &[], &event(&id, AuditAction::ProjectCreate, t0()))
        .await
        .unwrap_err();
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
    store
        .put_entitlement(
            &id,
            &trial,
            &event(&id, AuditAction::EntitlementUpdate, t0()),
        )
        .await
        .unwrap();
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
    store
        .put_entitlement(
            &id,
            &enabled,
            &event(&id, AuditAction::EntitlementUpdate, t0()),
        )
        .await
        .unwrap();
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
    insert(store, &record).await.unwrap();
    assert_eq!(
        store.get_key(&id, &record.id).await.unwrap(),
        Some(record.clone())
    );

    let mut never = key(&id, t0());
    never.expiration = Expiration::Never;
    never.expires_at = None;
    insert(store, &never).await.unwrap();
    assert_eq!(store.get_key(&id, &never.id).await.unwrap(), Some(never));
}

async fn a_key_is_found_by_its_hash_and_by_id_only_within_its_project(store: &SqlStore) {
    let mine = project(store, "mine").await;
    let theirs = project(store, "theirs").await;
    let record = key(&mine, t0());
    insert(store, &record).await.unwrap();

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
    insert(store, &first).await.unwrap();
    let mut second = key(&id, t0());
    second.secret_hash = first.secret_hash;
    assert!(matches!(
        insert(store, &second).await,
        Err(StoreError::Conflict)
    ));
    let mut same_id = key(&id, t0());
    same_id.id = first.id.clone();
    assert!(matches!(
        insert(store, &same_id).await,
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
        insert(store, record).await.unwrap();
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
        insert(store, &record).await.unwrap();
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

fn rotation<'a>(
    project: &'a ProjectId,
    old: &'a KeyRecord,
    new_key: &'a KeyRecord,
    event: &'a AuditEvent,
    now: DateTime<Utc>,
    old_ends_at: DateTime<Utc>,
) -> Rotation<'a> {
    Rotation {
        project,
        old_id: &old.id,
        now,
        old_ends_at,
        new_key,
        event,
    }
}

fn successor(old: &KeyRecord, now: DateTime<Utc>) -> KeyRecord {
    let mut new_key = key(&old.project_id, now);
    new_key.rotated_from = Some(old.id.clone());
    new_key
}

async fn a_rotation_links_both_keys_and_ends_the_old_one_no_later_than_its_expiry(
    store: &SqlStore,
) {
    let id = project(store, "rotations").await;
    let old = key(&id, t0());
    insert(store, &old).await.unwrap();
    let now = t0() + TimeDelta::days(1);
    let new_key = successor(&old, now);
    let rotated = event(&id, AuditAction::KeyRotate, now);
    let grace_end = now + TimeDelta::hours(1);
    let updated = store
        .rotate_key(rotation(&id, &old, &new_key, &rotated, now, grace_end))
        .await
        .unwrap();
    assert_eq!(updated.rotated_to, Some(new_key.id.clone()));
    assert_eq!(updated.expires_at, Some(grace_end));
    let stored_new = store.get_key(&id, &new_key.id).await.unwrap().unwrap();
    assert_eq!(stored_new.rotated_from, Some(old.id.clone()));

    // A grace past the key's own expiry is cut to that expiry.
    let mut short = key(&id, t0());
    short.expires_at = Some(now + TimeDelta::minutes(5));
    insert(store, &short).await.unwrap();
    let short_next = successor(&short, now);
    let updated = store
        .rotate_key(rotation(
            &id,
            &short,
            &short_next,
            &event(&id, AuditAction::KeyRotate, now),
            now,
            now + TimeDelta::days(7),
        ))
        .await
        .unwrap();
    assert_eq!(updated.expires_at, Some(now + TimeDelta::minutes(5)));
}

async fn a_key_is_rotated_at_most_once_even_by_concurrent_rotations(store: &SqlStore) {
    let id = project(store, "racing").await;
    let old = key(&id, t0());
    insert(store, &old).await.unwrap();
    let now = t0() + TimeDelta::seconds(1);
    let first = successor(&old, now);
    let second = successor(&old, now);
    let first_event = event(&id, AuditAction::KeyRotate, now);
    let second_event = event(&id, AuditAction::KeyRotate, now);
    let (a, b) = tokio::join!(
        store.rotate_key(rotation(&id, &old, &first, &first_event, now, now)),
        store.rotate_key(rotation(&id, &old, &second, &second_event, now, now)),
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let failed = if a.is_ok() { b } else { a };
    assert!(matches!(failed, Err(StoreError::Conflict)), "{failed:?}");
    let keys = store.list_keys(&id, &query(now)).await.unwrap().items;
    assert_eq!(keys.len(), 2, "exactly one successor was inserted");
    let rotations = store
        .list_audit(
            &id,
            &AuditQuery {
                action: Some(AuditAction::KeyRotate),
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(rotations.items.len(), 1, "exactly one rotation event");
}

async fn revoked_and_expired_keys_cannot_be_ended_or_rotated_again(store: &SqlStore) {
    let id = project(store, "endings").await;
    let now = t0() + TimeDelta::hours(1);
    let revoked = key(&id, t0());
    let expired = key(&id, t0());
    insert(store, &revoked).await.unwrap();
    insert(store, &expired).await.unwrap();
    let revoke = Ending::Revoke {
        reason: Some("leaked".into()),
    };
    let done = store
        .end_key(
            &id,
            &revoked.id,
            now,
            &revoke,
            &event(&id, AuditAction::KeyRevoke, now),
        )
        .await
        .unwrap();
    assert_eq!(done.revoked_at, Some(now));
    assert_eq!(done.revoke_reason.as_deref(), Some("leaked"));
    assert_eq!(done.status_at(now), KeyStatus::Revoked);
    let done = store
        .end_key(
            &id,
            &expired.id,
            now,
            &Ending::Expire,
            &event(&id, AuditAction::KeyExpire, now),
        )
        .await
        .unwrap();
    assert_eq!(done.expires_at, Some(now));
    assert_eq!(done.status_at(now), KeyStatus::Expired);

    let later = now + TimeDelta::seconds(1);
    for ended in [&revoked, &expired] {
        for ending in [&revoke, &Ending::Expire] {
            let again = store
                .end_key(
                    &id,
                    &ended.id,
                    later,
                    ending,
                    &event(&id, AuditAction::KeyRevoke, later),
                )
                .await;
            assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
        }
        let next = successor(ended, later);
        let rotated = store
            .rotate_key(rotation(
                &id,
                ended,
                &next,
                &event(&id, AuditAction::KeyRotate, later),
                later,
                later,
            ))
            .await;
        assert!(matches!(rotated, Err(StoreError::Conflict)), "{rotated:?}");
    }
    let ghost = KeyId::generate();
    let missing = store
        .end_key(
            &id,
            &ghost,
            later,
            &Ending::Expire,
            &event(&id, AuditAction::KeyExpire, later),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    // Another project's key is "not found", not "conflict".
    let other = project(store, "endings_other").await;
    let theirs = store
        .end_key(
            &other,
            &revoked.id,
            later,
            &Ending::Expire,
            &event(&other, AuditAction::KeyExpire, later),
        )
        .await;
    assert!(matches!(theirs, Err(StoreError::NotFound)), "{theirs:?}");
}

async fn every_change_appends_exactly_one_audit_event(store: &SqlStore) {
    let id = project(store, "audited").await;
    let record = key(&id, t0());
    insert(store, &record).await.unwrap();
    let entitlement = Entitlement {
        product: "qr".into(),
        status: EntitlementStatus::Disabled,
        trial_ends_at: None,
        updated_at: t0(),
    };
    store
        .put_entitlement(
            &id,
            &entitlement,
            &event(&id, AuditAction::EntitlementUpdate, t0()),
        )
        .await
        .unwrap();
    let now = t0() + TimeDelta::seconds(5);
    store
        .end_key(
            &id,
            &record.id,
            now,
            &Ending::Expire,
            &event(&id, AuditAction::KeyExpire, now),
        )
        .await
        .unwrap();
    let all = store
        .list_audit(
            &id,
            &AuditQuery {
                action: None,
                limit: 100,
                before: None,
            },
        )
        .await
        .unwrap();
    let actions: Vec<AuditAction> = all.items.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::KeyExpire,
            AuditAction::EntitlementUpdate,
            AuditAction::KeyCreate,
            AuditAction::ProjectCreate
        ]
    );
    let first = &all.items[0];
    assert_eq!(first.actor, Actor::admin());
    assert_eq!(first.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(first.details, serde_json::json!({"n": 1}));
    assert_eq!(first.at, now);

    // A failed change appends nothing.
    let failed = store
        .end_key(
            &id,
            &record.id,
            now,
            &Ending::Expire,
            &event(&id, AuditAction::KeyExpire, now),
        )
        .await;
    assert!(failed.is_err());
    let after = store
        .list_audit(
            &id,
            &AuditQuery {
                action: None,
                limit: 100,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(after.items.len(), 4);
}

async fn audit_events_page_newest_first_and_filter_by_action(store: &SqlStore) {
    let id = project(store, "audit_pages").await;
    for i in 0..5 {
        insert(store, &key(&id, t0() + TimeDelta::seconds(i)))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_audit(
                &id,
                &AuditQuery {
                    action: Some(AuditAction::KeyCreate),
                    limit: 2,
                    before,
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|e| e.at));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (0..5).rev().map(|i| t0() + TimeDelta::seconds(i)).collect();
    assert_eq!(seen, expected);
}

async fn audit_events_cannot_be_updated_or_deleted(store: &SqlStore) {
    let id = project(store, "append_only").await;
    let update = store
        .execute_raw_for_test("UPDATE audit_events SET actor_id = 'someone else'")
        .await;
    assert!(update.is_err(), "UPDATE was allowed");
    let delete = store.execute_raw_for_test("DELETE FROM audit_events").await;
    assert!(delete.is_err(), "DELETE was allowed");
    let events = store
        .list_audit(
            &id,
            &AuditQuery {
                action: None,
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].actor, Actor::admin());
}

async fn a_batch_of_thousands_of_keys_is_added_whole(store: &SqlStore) {
    let id = project(store, "bulk_usage").await;
    // More keys than one statement carries, so the batch spans several.
    let mut records = Vec::new();
    for _ in 0..2_500 {
        records.push(key(&id, t0()));
    }
    for record in &records {
        insert(store, record).await.unwrap();
    }
    let used = t0() + TimeDelta::minutes(5);
    let batch = UsageBatch {
        id: "bulk".into(),
        made_at: t0(),
        counts: records
            .iter()
            .enumerate()
            .map(|(n, record)| UsageCount {
                key_id: record.id.clone(),
                project_id: id.clone(),
                action: Some("qr.scan.read"),
                code: VerifyCode::Ok,
                hour: t0(),
                count: n as u64 + 1,
            })
            .collect(),
        last_used: records.iter().map(|r| (r.id.clone(), used)).collect(),
    };
    store.add_usage(&batch).await.unwrap();
    for (n, record) in records.iter().enumerate().step_by(499) {
        let rows = store
            .usage(&id, &record.id, t0(), t0() + TimeDelta::hours(1))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "key {n}");
        assert_eq!(rows[0].count, n as u64 + 1, "key {n}");
        let stored = store.get_key(&id, &record.id).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, Some(used), "key {n}");
    }
    let last = records.last().unwrap();
    let rows = store
        .usage(&id, &last.id, t0(), t0() + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(rows[0].count, 2_500);
}

async fn usage_counts_add_up_across_batches_and_move_last_used_forward_and_a_batch_counts_once(
    store: &SqlStore,
) {
    let id = project(store, "usage").await;
    let record = key(&id, t0());
    insert(store, &record).await.unwrap();
    let hour = t0();
    let count = |action, code, n| UsageCount {
        key_id: record.id.clone(),
        project_id: id.clone(),
        action,
        code,
        hour,
        count: n,
    };
    let later = t0() + TimeDelta::minutes(30);
    let batch = |id: &str, counts, last_used| UsageBatch {
        id: id.into(),
        made_at: t0(),
        counts,
        last_used,
    };
    store
        .add_usage(&batch(
            "first",
            vec![
                count(Some("qr.scan.read"), VerifyCode::Ok, 3),
                count(None, VerifyCode::Ok, 1),
            ],
            vec![(record.id.clone(), later)],
        ))
        .await
        .unwrap();
    let second = batch(
        "second",
        vec![
            count(Some("qr.scan.read"), VerifyCode::Ok, 4),
            count(Some("notification.send"), VerifyCode::ScopeMissing, 2),
        ],
        vec![(record.id.clone(), t0())],
    );
    store.add_usage(&second).await.unwrap();
    // Sent again, as after a lost acknowledgement: acknowledged, not counted.
    store.add_usage(&second).await.unwrap();
    let mut rows = store
        .usage(&id, &record.id, t0(), t0() + TimeDelta::hours(1))
        .await
        .unwrap();
    rows.sort_by_key(|row| (row.action.clone(), row.code.as_str()));
    let summary: Vec<(Option<String>, VerifyCode, u64)> = rows
        .into_iter()
        .map(|row| (row.action, row.code, row.count))
        .collect();
    assert_eq!(
        summary,
        [
            (None, VerifyCode::Ok, 1),
            (
                Some("notification.send".into()),
                VerifyCode::ScopeMissing,
                2
            ),
            (Some("qr.scan.read".into()), VerifyCode::Ok, 7),
        ]
    );
    let stored = store.get_key(&id, &record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(later),
        "last_used_at never moves back"
    );
    assert!(
        store
            .usage(
                &id,
                &record.id,
                t0() + TimeDelta::hours(1),
                t0() + TimeDelta::hours(2)
            )
            .await
            .unwrap()
            .is_empty()
    );
}

// --- Accounts, sessions and one-time links -------------------------------

async fn demo_project(store: &SqlStore, id: &str) -> ProjectId {
    let project_id = ProjectId::parse(id).unwrap();
    let project = Project {
        project_id: project_id.clone(),
        name: DisplayName::parse("Accounts").unwrap(),
        created_at: t0(),
    };
    store
        .create_project(
            &project,
            &[],
            &event(&project_id, AuditAction::ProjectCreate, t0()),
        )
        .await
        .unwrap();
    project_id
}

fn link(purpose: LinkPurpose, seed: u8, grant: Option<(ProjectId, Role)>) -> ConsoleLink {
    ConsoleLink {
        token_hash: SecretHash([seed; 32]),
        purpose,
        grant,
        created_by: None,
        created_at: t0(),
        expires_at: t0() + TimeDelta::hours(24),
        used_at: None,
    }
}

fn account(email: &str) -> AccountRecord {
    AccountRecord {
        account: Account {
            id: AccountId::generate(),
            email: Email::parse(email).unwrap(),
            display_name: DisplayName::parse("Ana Owner").unwrap(),
            platform_admin: true,
            created_at: t0(),
        },
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    }
}

fn account_event(project: &ProjectId, account: &AccountRecord) -> AuditEvent {
    AuditEvent::new(
        t0(),
        Actor {
            kind: atk_core::audit::ActorType::Account,
            id: account.account.id.to_string(),
        },
        AuditAction::AccountCreate,
        project,
        ("account", account.account.id.as_str()),
        None,
        serde_json::json!({}),
    )
}

fn redemption<'a>(
    hash: &'a SecretHash,
    purpose: LinkPurpose,
    now: DateTime<Utc>,
    account: &'a AccountRecord,
    roles: &'a [(ProjectId, Role)],
    events: &'a [AuditEvent],
) -> Redemption<'a> {
    Redemption {
        link_hash: hash,
        purpose,
        now,
        account,
        roles,
        events,
    }
}

async fn a_link_is_spent_once_and_creates_the_account_with_its_roles_and_events(store: &SqlStore) {
    let project = demo_project(store, "accounts_one").await;
    assert!(!store.has_accounts().await.unwrap());
    let setup = link(LinkPurpose::Setup, 1, None);
    store.insert_link(&setup, &[]).await.unwrap();
    let owner = account("Ana@Example.com");
    let roles = [(project.clone(), Role::Owner)];
    let events = [account_event(&project, &owner)];
    let now = t0() + TimeDelta::minutes(5);
    store
        .redeem_link(redemption(
            &setup.token_hash,
            LinkPurpose::Setup,
            now,
            &owner,
            &roles,
            &events,
        ))
        .await
        .unwrap();
    assert!(store.has_accounts().await.unwrap());
    let spent = store.get_link(&setup.token_hash).await.unwrap().unwrap();
    assert_eq!(spent.used_at, Some(now));
    let again = account("second@example.com");
    assert!(matches!(
        store
            .redeem_link(redemption(
                &setup.token_hash,
                LinkPurpose::Setup,
                now,
                &again,
                &roles,
                &[]
            ))
            .await,
        Err(StoreError::NotFound)
    ));
    let found = store
        .find_account_by_email(&Email::parse("ana@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, owner);
    assert_eq!(
        store.get_account(&owner.account.id).await.unwrap(),
        Some(owner.clone())
    );
    assert_eq!(store.roles_of(&owner.account.id).await.unwrap(), roles);
    assert_eq!(
        store.members_of(&project).await.unwrap(),
        [(owner.clone(), Role::Owner)]
    );
    assert!(
        store
            .get_account(&again.account.id)
            .await
            .unwrap()
            .is_none()
    );
    let audit = store
        .list_audit(
            &project,
            &AuditQuery {
                action: Some(AuditAction::AccountCreate),
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 1);
    assert_eq!(audit.items[0].target.id, owner.account.id.as_str());
}

async fn of_two_concurrent_redemptions_of_one_link_exactly_one_succeeds(store: &SqlStore) {
    let project = demo_project(store, "accounts_race").await;
    for round in 0..20u8 {
        let invite = link(
            LinkPurpose::Invite,
            round,
            Some((project.clone(), Role::Viewer)),
        );
        store.insert_link(&invite, &[]).await.unwrap();
        let first = account(&format!("a{round}@example.com"));
        let second = account(&format!("b{round}@example.com"));
        let roles = [(project.clone(), Role::Viewer)];
        let now = t0() + TimeDelta::minutes(1);
        let (a, b) = tokio::join!(
            store.redeem_link(redemption(
                &invite.token_hash,
                LinkPurpose::Invite,
                now,
                &first,
                &roles,
                &[]
            )),
            store.redeem_link(redemption(
                &invite.token_hash,
                LinkPurpose::Invite,
                now,
                &second,
                &roles,
                &[]
            )),
        );
        let outcomes = [&a, &b];
        assert_eq!(
            outcomes.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {a:?} {b:?}"
        );
        assert!(
            outcomes
                .iter()
                .any(|r| matches!(r, Err(StoreError::NotFound))),
            "the loser finds the link spent, not a database error: {a:?} {b:?}"
        );
    }
    assert_eq!(store.members_of(&project).await.unwrap().len(), 20);
}

async fn an_expired_link_or_one_of_another_purpose_cannot_be_redeemed(store: &SqlStore) {
    let project = demo_project(store, "accounts_expired").await;
    let invite = link(LinkPurpose::Invite, 7, Some((project.clone(), Role::Admin)));
    store.insert_link(&invite, &[]).await.unwrap();
    let member = account("late@example.com");
    let roles = [(project.clone(), Role::Admin)];
    let at_expiry = invite.expires_at;
    assert!(matches!(
        store
            .redeem_link(redemption(
                &invite.token_hash,
                LinkPurpose::Invite,
                at_expiry,
                &member,
                &roles,
                &[]
            ))
            .await,
        Err(StoreError::NotFound)
    ));
    let before = at_expiry - TimeDelta::milliseconds(1);
    assert!(matches!(
        store
            .redeem_link(redemption(
                &invite.token_hash,
                LinkPurpose::Setup,
                before,
                &member,
                &roles,
                &[]
            ))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .get_link(&invite.token_hash)
            .await
            .unwrap()
            .unwrap()
            .grant,
        Some((project.clone(), Role::Admin))
    );
    store
        .redeem_link(redemption(
            &invite.token_hash,
            LinkPurpose::Invite,
            before,
            &member,
            &roles,
            &[],
        ))
        .await
        .unwrap();
    assert!(store.has_accounts().await.unwrap());
}

async fn a_taken_email_leaves_the_link_unspent(store: &SqlStore) {
    let project = demo_project(store, "accounts_taken").await;
    let roles = [(project.clone(), Role::Viewer)];
    let first = link(
        LinkPurpose::Invite,
        3,
        Some((project.clone(), Role::Viewer)),
    );
    let second = link(
        LinkPurpose::Invite,
        4,
        Some((project.clone(), Role::Viewer)),
    );
    store.insert_link(&first, &[]).await.unwrap();
    store.insert_link(&second, &[]).await.unwrap();
    let now = t0() + TimeDelta::minutes(1);
    store
        .redeem_link(redemption(
            &first.token_hash,
            LinkPurpose::Invite,
            now,
            &account("same@example.com"),
            &roles,
            &[],
        ))
        .await
        .unwrap();
    let duplicate = account("SAME@example.com");
    assert!(matches!(
        store
            .redeem_link(redemption(
                &second.token_hash,
                LinkPurpose::Invite,
                now,
                &duplicate,
                &roles,
                &[]
            ))
            .await,
        Err(StoreError::Conflict)
    ));
    let kept = store.get_link(&second.token_hash).await.unwrap().unwrap();
    assert_eq!(kept.used_at, None, "a failed redemption spends nothing");
}

async fn sessions_are_stored_touched_forward_only_and_deleted(store: &SqlStore) {
    let project = demo_project(store, "accounts_sessions").await;
    let setup = link(LinkPurpose::Setup, 5, None);
    store.insert_link(&setup, &[]).await.unwrap();
    let owner = account("sessions@example.com");
    store
        .redeem_link(redemption(
            &setup.token_hash,
            LinkPurpose::Setup,
            t0(),
            &owner,
            &[(project, Role::Owner)],
            &[],
        ))
        .await
        .unwrap();
    let session = Session::new(SecretHash([42; 32]), owner.account.id.clone(), t0());
    store.insert_session(&session).await.unwrap();
    assert_eq!(
        store.get_session(&session.token_hash).await.unwrap(),
        Some(session.clone())
    );
    let later = t0() + TimeDelta::minutes(10);
    store
        .touch_session(&session.token_hash, later)
        .await
        .unwrap();
    store
        .touch_session(&session.token_hash, t0())
        .await
        .unwrap();
    let touched = store
        .get_session(&session.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched.last_seen_at, later);
    assert_eq!(touched.expires_at, session.expires_at);
    store.delete_session(&session.token_hash).await.unwrap();
    assert_eq!(store.get_session(&session.token_hash).await.unwrap(), None);
}

async fn a_role_change_is_kept_with_its_audit_event(store: &SqlStore) {
    let project = demo_project(store, "accounts_roles").await;
    let invite = link(
        LinkPurpose::Invite,
        6,
        Some((project.clone(), Role::Viewer)),
    );
    store.insert_link(&invite, &[]).await.unwrap();
    let member = account("viewer@example.com");
    store
        .redeem_link(redemption(
            &invite.token_hash,
            LinkPurpose::Invite,
            t0(),
            &member,
            &[(project.clone(), Role::Viewer)],
            &[],
        ))
        .await
        .unwrap();
    let change = AuditEvent::new(
        t0(),
        Actor::admin(),
        AuditAction::MemberRoleChange,
        &project,
        ("account", member.account.id.as_str()),
        None,
        serde_json::json!({"from": "viewer", "to": "admin"}),
    );
    store
        .set_role(&project, &member.account.id, Role::Admin, &change)
        .await
        .unwrap();
    assert_eq!(
        store.roles_of(&member.account.id).await.unwrap(),
        [(project.clone(), Role::Admin)]
    );
    let audit = store
        .list_audit(
            &project,
            &AuditQuery {
                action: Some(AuditAction::MemberRoleChange),
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.items, [change]);
}

async fn a_form_nonce_is_claimed_once(store: &SqlStore) {
    let nonce = SecretHash([11; 32]);
    assert!(store.claim_form_nonce(&nonce, t0()).await.unwrap());
    assert!(!store.claim_form_nonce(&nonce, t0()).await.unwrap());
    assert!(
        store
            .claim_form_nonce(&SecretHash([12; 32]), t0())
            .await
            .unwrap()
    );
}

async fn of_several_setup_links_only_one_ever_creates_an_owner(store: &SqlStore) {
    let project = demo_project(store, "accounts_setup").await;
    // Two starts without accounts (or two nodes) printed two links; both
    // are redeemed at once, then a third one later.
    let links = [
        link(LinkPurpose::Setup, 21, None),
        link(LinkPurpose::Setup, 22, None),
        link(LinkPurpose::Setup, 23, None),
    ];
    for setup in &links {
        store.insert_link(setup, &[]).await.unwrap();
    }
    let roles = [(project.clone(), Role::Owner)];
    let first = account("first@example.com");
    let second = account("second@example.com");
    let now = t0() + TimeDelta::minutes(1);
    // Warm the pool, so both redemptions really run at once on their own
    // connections (with a cold pool the second waits for a connect).
    let _ = tokio::join!(
        store.has_accounts(),
        store.has_accounts(),
        store.has_accounts(),
        store.has_accounts()
    );
    let (a, b) = tokio::join!(
        store.redeem_link(redemption(
            &links[0].token_hash,
            LinkPurpose::Setup,
            now,
            &first,
            &roles,
            &[]
        )),
        store.redeem_link(redemption(
            &links[1].token_hash,
            LinkPurpose::Setup,
            now,
            &second,
            &roles,
            &[]
        )),
    );
    assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1, "{a:?} {b:?}");
    assert!(matches!(a, Err(StoreError::NotFound)) || matches!(b, Err(StoreError::NotFound)));
    let third = account("third@example.com");
    assert!(matches!(
        store
            .redeem_link(redemption(
                &links[2].token_hash,
                LinkPurpose::Setup,
                now,
                &third,
                &roles,
                &[]
            ))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.members_of(&project).await.unwrap().len(), 1);
    let spent = store.get_link(&links[2].token_hash).await.unwrap().unwrap();
    assert_eq!(
        spent.used_at,
        Some(now),
        "the other setup links were spent with the first"
    );
}

async fn an_invite_link_is_stored_with_its_audit_event(store: &SqlStore) {
    let project = demo_project(store, "accounts_invite").await;
    let invite = link(
        LinkPurpose::Invite,
        31,
        Some((project.clone(), Role::Admin)),
    );
    let event = AuditEvent::new(
        t0(),
        Actor::admin(),
        AuditAction::MemberInvite,
        &project,
        ("project", project.as_str()),
        None,
        serde_json::json!({"role": "admin"}),
    );
    store
        .insert_link(&invite, std::slice::from_ref(&event))
        .await
        .unwrap();
    assert_eq!(
        store.get_link(&invite.token_hash).await.unwrap(),
        Some(invite.clone())
    );
    let audit = store
        .list_audit(
            &project,
            &AuditQuery {
                action: Some(AuditAction::MemberInvite),
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.items, [event]);
    // The same link twice is a conflict, and records nothing more.
    assert!(matches!(
        store.insert_link(&invite, &[]).await,
        Err(StoreError::Conflict)
    ));
}

async fn pruning_deletes_ended_sessions_spent_links_and_old_nonces_only(store: &SqlStore) {
    let project = demo_project(store, "accounts_prune").await;
    let setup = link(LinkPurpose::Setup, 41, None);
    let open_invite = link(
        LinkPurpose::Invite,
        42,
        Some((project.clone(), Role::Viewer)),
    );
    let mut expired_invite = link(
        LinkPurpose::Invite,
        43,
        Some((project.clone(), Role::Viewer)),
    );
    expired_invite.expires_at = t0() + TimeDelta::minutes(30);
    for l in [&setup, &open_invite, &expired_invite] {
        store.insert_link(l, &[]).await.unwrap();
    }
    let owner = account("prune@example.com");
    store
        .redeem_link(redemption(
            &setup.token_hash,
            LinkPurpose::Setup,
            t0(),
            &owner,
            &[(project, Role::Owner)],
            &[],
        ))
        .await
        .unwrap();
    let live = Session::new(
        SecretHash([51; 32]),
        owner.account.id.clone(),
        t0() + TimeDelta::hours(1),
    );
    let idle = Session::new(SecretHash([52; 32]), owner.account.id.clone(), t0());
    for session in [&live, &idle] {
        store.insert_session(session).await.unwrap();
    }
    store
        .claim_form_nonce(&SecretHash([61; 32]), t0())
        .await
        .unwrap();
    store
        .claim_form_nonce(&SecretHash([62; 32]), t0() + TimeDelta::hours(2))
        .await
        .unwrap();

    let now = t0() + TimeDelta::hours(2);
    let deleted = store
        .prune(now, now - TimeDelta::hours(2), t0() + TimeDelta::hours(1))
        .await
        .unwrap();
    // The idle session, the spent setup link, the expired invite, the old nonce.
    assert_eq!(deleted, 4);
    assert!(store.get_session(&live.token_hash).await.unwrap().is_some());
    assert!(store.get_session(&idle.token_hash).await.unwrap().is_none());
    assert!(
        store
            .get_link(&open_invite.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.get_link(&setup.token_hash).await.unwrap().is_none());
    assert!(
        store
            .get_link(&expired_invite.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .claim_form_nonce(&SecretHash([62; 32]), now)
            .await
            .unwrap(),
        "a recent nonce stays"
    );
    assert!(
        store
            .claim_form_nonce(&SecretHash([61; 32]), now)
            .await
            .unwrap(),
        "an old one went"
    );
    assert!(
        store
            .get_account(&owner.account.id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn an_invite_adds_an_existing_account_to_a_project_once(store: &SqlStore) {
    let first = demo_project(store, "accounts_join_a").await;
    let second = demo_project(store, "accounts_join_b").await;
    let setup = link(LinkPurpose::Setup, 71, None);
    store.insert_link(&setup, &[]).await.unwrap();
    let member = account("joiner@example.com");
    store
        .redeem_link(redemption(
            &setup.token_hash,
            LinkPurpose::Setup,
            t0(),
            &member,
            &[(first.clone(), Role::Owner)],
            &[],
        ))
        .await
        .unwrap();
    let invite = link(
        LinkPurpose::Invite,
        72,
        Some((second.clone(), Role::Viewer)),
    );
    store.insert_link(&invite, &[]).await.unwrap();
    let event = account_event(&second, &member);
    store
        .redeem_invite_for_account(
            &invite.token_hash,
            t0(),
            &member.account.id,
            std::slice::from_ref(&event),
        )
        .await
        .unwrap();
    assert_eq!(
        store.roles_of(&member.account.id).await.unwrap(),
        [(first.clone(), Role::Owner), (second.clone(), Role::Viewer)]
    );
    assert!(matches!(
        store
            .redeem_invite_for_account(&invite.token_hash, t0(), &member.account.id, &[])
            .await,
        Err(StoreError::NotFound)
    ));
    // A second invite to a project the account is already in changes
    // nothing and stays unspent.
    let again = link(LinkPurpose::Invite, 73, Some((second.clone(), Role::Owner)));
    store.insert_link(&again, &[]).await.unwrap();
    assert!(matches!(
        store
            .redeem_invite_for_account(&again.token_hash, t0(), &member.account.id, &[])
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store
            .get_link(&again.token_hash)
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );
    assert_eq!(
        store.roles_of(&member.account.id).await.unwrap()[1],
        (second.clone(), Role::Viewer)
    );
    // A setup link is not an invite.
    let setup_again = link(LinkPurpose::Setup, 74, None);
    store.insert_link(&setup_again, &[]).await.unwrap();
    assert!(matches!(
        store
            .redeem_invite_for_account(&setup_again.token_hash, t0(), &member.account.id, &[])
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn help_misses_are_counted_per_project_route_and_question(store: &SqlStore) {
    let ours = project(store, "project_help_ours").await;
    let theirs = project(store, "project_help_theirs").await;
    let route = "/project-settings/key-create";
    let miss = |project, question, minutes| HelpMiss {
        project,
        route,
        question,
        at: t0() + TimeDelta::minutes(minutes),
    };
    store
        .record_help_miss(&miss(Some(&ours), Some("what is sso"), 1))
        .await
        .unwrap();
    store
        .record_help_miss(&miss(Some(&ours), Some("what is sso"), 3))
        .await
        .unwrap();
    // A late writer does not move "last asked" back.
    store
        .record_help_miss(&miss(Some(&ours), Some("what is sso"), 2))
        .await
        .unwrap();
    store
        .record_help_miss(&miss(Some(&ours), None, 4))
        .await
        .unwrap();
    store
        .record_help_miss(&miss(Some(&theirs), Some("billing?"), 5))
        .await
        .unwrap();
    store
        .record_help_miss(&miss(None, Some("no project"), 6))
        .await
        .unwrap();
    store
        .record_help_miss(&HelpMiss {
            route: "knowledge-hub",
            ..miss(Some(&ours), Some("what is sso"), 7)
        })
        .await
        .unwrap();

    let ours_misses = store.help_misses(&ours, 50).await.unwrap();
    assert_eq!(
        ours_misses,
        vec![
            HelpMissCount {
                route: route.into(),
                question: Some("what is sso".into()),
                asked: 3,
                last_asked_at: t0() + TimeDelta::minutes(3),
            },
            HelpMissCount {
                route: "knowledge-hub".into(),
                question: Some("what is sso".into()),
                asked: 1,
                last_asked_at: t0() + TimeDelta::minutes(7),
            },
            HelpMissCount {
                route: route.into(),
                question: None,
                asked: 1,
                last_asked_at: t0() + TimeDelta::minutes(4),
            },
        ]
    );
    let theirs_misses = store.help_misses(&theirs, 50).await.unwrap();
    assert_eq!(theirs_misses.len(), 1);
    assert_eq!(theirs_misses[0].question.as_deref(), Some("billing?"));
    assert_eq!(store.help_misses(&ours, 1).await.unwrap().len(), 1);
}

async fn help_misses_keep_at_most_the_cap_of_questions_per_route(store: &SqlStore) {
    let ours = project(store, "project_help_capped").await;
    let route = "/project-settings/audit";
    let cap = usize::try_from(HELP_MISS_QUESTIONS_PER_ROUTE).unwrap();
    for n in 0..cap + 3 {
        let question = format!("question {n}");
        store
            .record_help_miss(&HelpMiss {
                project: Some(&ours),
                route,
                question: Some(&question),
                at: t0(),
            })
            .await
            .unwrap();
    }
    // A kept question still counts after the cap is reached.
    store
        .record_help_miss(&HelpMiss {
            project: Some(&ours),
            route,
            question: Some("question 0"),
            at: t0(),
        })
        .await
        .unwrap();
    let misses = store.help_misses(&ours, 1000).await.unwrap();
    assert_eq!(
        misses.len(),
        cap + 1,
        "the cap's questions and one withheld row"
    );
    let withheld = misses.iter().find(|m| m.question.is_none()).unwrap();
    assert_eq!(withheld.asked, 3);
    let first = misses
        .iter()
        .find(|m| m.question.as_deref() == Some("question 0"))
        .unwrap();
    assert_eq!(first.asked, 2);
    assert_eq!(
        misses.iter().map(|m| m.asked).sum::<u64>(),
        (cap + 4) as u64
    );
}

async fn keys_are_found_by_the_key_that_created_them_within_the_project(store: &SqlStore) {
    let ours = project(store, "project_created_by").await;
    let creator = key(&ours, t0());
    insert(store, &creator).await.unwrap();
    let mut first = key(&ours, t0() + TimeDelta::seconds(1));
    first.created_by = Some(creator.id.clone());
    let mut second = key(&ours, t0() + TimeDelta::seconds(2));
    second.created_by = Some(creator.id.clone());
    let unrelated = key(&ours, t0() + TimeDelta::seconds(3));
    for record in [&second, &first, &unrelated] {
        insert(store, record).await.unwrap();
    }
    let found = store.keys_created_by(&ours, &creator.id).await.unwrap();
    assert_eq!(
        found,
        vec![first.clone(), second.clone()],
        "oldest first, every field"
    );
    let elsewhere = project(store, "project_created_by_other").await;
    assert!(
        store
            .keys_created_by(&elsewhere, &creator.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .keys_created_by(&ours, &first.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_stored_name_that_todays_rules_would_refuse_still_loads(store: &SqlStore) {
    let ours = project(store, "project_old_rules").await;
    let mut record = key(&ours, t0());
    // Longer than today's 100 characters, as if the limit had been lowered
    // after the key was made.
    record.name = DisplayName::stored("n".repeat(150));
    insert(store, &record).await.unwrap();
    let by_id = store.get_key(&ours, &record.id).await.unwrap().unwrap();
    assert_eq!(by_id, record);
    let by_hash = store.find_key_by_hash(&record.secret_hash).await.unwrap();
    assert_eq!(
        by_hash.as_ref(),
        Some(&record),
        "verification still finds it"
    );
    assert_eq!(
        store.list_keys(&ours, &query(t0())).await.unwrap().items,
        vec![record]
    );
}
