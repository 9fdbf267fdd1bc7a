//! Every verification goes through [`Verifier`], so caching and usage
//! counting have exactly one place to live. The management API's credential
//! check uses the same lookup, so a revoked service role key stops working
//! for administration at the same moment it stops verifying.
//!
//! Caching: key records (by keyed hash) and entitlements are kept for up
//! to [`CACHE_TTL`], and dropped as soon as the store's change feed
//! announces a change to them, whichever node made it (see
//! [`atk_store::feed`]). While the feed is disconnected nothing is served
//! from the cache, and when it reconnects the whole cache is dropped,
//! because announcements may have been missed. Status is always decided
//! against the clock at verification time, so expiry is exact whatever the
//! cache holds. Keys that were never issued are recognised by a membership
//! filter without a store query (see [`known_keys`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use atk_api::verify::{VerifiedKey, VerifyResponse};
use atk_core::Clock;
use atk_core::catalog::Catalog;
use atk_core::decision::{
    ActionCheck, Decision, VerifyContext, check_action, check_entitlement, check_key, rate_limited,
};
use atk_core::entitlement::Entitlement;
use atk_core::ids::ProjectId;
use atk_core::key::{KeyStatus, VerifiableKey};
use atk_core::secret::{ParsedSecret, Pepper, SecretHash};
use atk_store::feed::ChangeFeed;
use atk_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::limiter::KeyRateLimiter;
use crate::metrics::{self, CacheName, Metrics, StoreQuery};
use crate::usage::UsageRecorder;

mod changes;
mod hashing;
mod interned;
mod ttl_cache;

use hashing::BuildFirstBytesHasher;
use ttl_cache::TtlCache;

/// Keys by their keyed hash, which is its own hash (see [`hashing`]).
/// The record is held inline, not behind an `Arc` of its own: one
/// allocation less per cached key (a million of them, and the holes they
/// leave between the store's short-lived rows), for a copy of its 96 bytes
/// and two shared counts on a hit.
type KeyCache = TtlCache<SecretHash, VerifiableKey, BuildFirstBytesHasher>;
/// A project's entitlements, by project.
type EntitlementCache = TtlCache<ProjectId, Arc<Vec<Entitlement>>, foldhash::fast::RandomState>;
mod known_keys;

use known_keys::{KnownKeys, Membership, MissBudget};

/// How long an unchanged key or entitlement stays cached. Changes do not
/// wait for it: the change feed drops the entry on every node when the
/// change commits. It bounds how long an entry lives if an announcement
/// were ever lost without the feed noticing.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// Keys cached at most. An entry takes a slot of about 170 bytes (see
/// [`VerifiableKey`]), plus a tenth as many slots for recently evicted
/// keys: a full cache is about 190 MB.
const KEY_CACHE_CAPACITY: u64 = 1_000_000;
/// Projects whose entitlements are cached at most.
const ENTITLEMENT_CACHE_CAPACITY: u64 = 100_000;

#[derive(Debug, Error)]
pub enum VerifyError {
    /// The request named an action the catalog does not have: the caller's
    /// bug, not a property of the key, so it is an error and not a code.
    #[error("action is not in the catalog (see GET /v1/catalog)")]
    UnknownAction,
    #[error("storage failed")]
    Store(#[from] StoreError),
}

/// The decision and, when the key was found, its record (for the response's
/// `key` object; never the secret).
#[derive(Debug, Clone)]
pub struct Verification {
    pub decision: Decision,
    pub key: Option<VerifiableKey>,
}

impl Verification {
    /// The answer of `POST /v1/keys/verify` as JSON, with the key's scopes
    /// as the cache holds them written already.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let scopes = self.key.as_ref().map(|key| key.scopes.as_json());
        self.response().write_json_with(out, scopes);
    }

    /// The answer of `POST /v1/keys/verify`, borrowed from the record, so
    /// writing it copies no id or scope.
    pub fn response(&self) -> VerifyResponse<'_> {
        let decision = &self.decision;
        VerifyResponse {
            valid: decision.valid,
            allowed: decision.allowed,
            code: decision.code,
            key: self.key.as_ref().map(|key| VerifiedKey {
                id: Cow::Borrowed(&key.id),
                project_id: Cow::Borrowed(&*key.project_id),
                environment: key.environment,
                kind: key.kind,
                scopes: Cow::Borrowed(&**key.scopes),
                expires_at: key.expires_at,
            }),
            entitlement: decision.entitlement.as_ref().map(Cow::Borrowed),
            missing_scopes: Cow::Borrowed(&decision.missing_scopes),
        }
    }
}

#[derive(Clone)]
pub struct Verifier {
    store: Arc<dyn Store>,
    pepper: Pepper,
    clock: Arc<dyn Clock>,
    catalog: &'static Catalog,
    keys: KeyCache,
    /// `None` is cached too: a missing row means "disabled" (deny by default).
    /// Every product's entitlement of a project, by project: one lookup
    /// borrows the key's project id, so a hit allocates nothing. A missing
    /// product means "disabled" (deny by default).
    entitlements: EntitlementCache,
    usage: UsageRecorder,
    limiter: Arc<KeyRateLimiter>,
    /// Bumped by every `forget_*`, so a lookup can tell whether a change
    /// was announced while it was reading the store.
    generation: Arc<AtomicU64>,
    feed: ChangeFeed,
    /// The feed epoch the caches hold entries of; see [`Self::live_epoch`].
    cache_epoch: Arc<AtomicU64>,
    known: Arc<KnownKeys>,
    /// Shares project ids and scope lists among cached keys.
    interned: Arc<interned::Interned>,
    miss_budget: Arc<MissBudget>,
    /// Stops following the feed when the last clone goes.
    _follower: Arc<changes::Follower>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("cached_keys", &self.keys.entry_count())
            .field("cached_entitlements", &self.entitlements.entry_count())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts following the store's change feed, so it must be called
    /// within a Tokio runtime.
    pub fn new(
        store: Arc<dyn Store>,
        pepper: Pepper,
        clock: Arc<dyn Clock>,
        usage: UsageRecorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        let feed = store.change_feed();
        let keys = TtlCache::new(
            KEY_CACHE_CAPACITY,
            CACHE_TTL,
            BuildFirstBytesHasher::default(),
            &metrics,
            CacheName::Keys,
        );
        let entitlements = TtlCache::new(
            ENTITLEMENT_CACHE_CAPACITY,
            CACHE_TTL,
            foldhash::fast::RandomState::default(),
            &metrics,
            CacheName::Entitlements,
        );
        let generation = Arc::new(AtomicU64::new(0));
        let known = Arc::new(KnownKeys::new());
        let follower = changes::Follower::start(changes::Caches {
            store: store.clone(),
            feed: feed.clone(),
            keys: keys.clone(),
            entitlements: entitlements.clone(),
            generation: generation.clone(),
            known: known.clone(),
            metrics: metrics.clone(),
        });
        Self {
            usage,
            limiter: Arc::default(),
            generation,
            cache_epoch: Arc::new(AtomicU64::new(feed.epoch())),
            feed,
            known,
            interned: Arc::new(interned::Interned::new()),
            miss_budget: Arc::new(MissBudget::new()),
            _follower: Arc::new(follower),
            metrics,
            store,
            pepper,
            clock,
            catalog: Catalog::get(),
            keys,
            entitlements,
        }
    }

    /// The one verification pipeline: format and checksum first (no I/O
    /// for garbage), then the keyed-hash lookup, then the key's own checks
    /// (status, IP allowlist, origin), then its rate limit, then the action
    /// (scope, then the entitlement of the action's product, read only when
    /// needed). Each stage is the domain's; this only runs them in order
    /// and does the I/O between them.
    ///
    /// Not an `async fn` of its own: it hands on [`Self::verify_at`]'s
    /// future, which a wrapping future would copy whole (it is large).
    pub fn verify<'a>(
        &'a self,
        secret: &'a str,
        context: VerifyContext<'a>,
    ) -> impl Future<Output = Result<Verification, VerifyError>> + Send + 'a {
        self.verify_at(secret, context, self.clock.now())
    }

    /// [`Self::verify`] at `now`, read from this verifier's clock by a
    /// caller that needed the time already (one reading per request).
    ///
    /// The stages run in this one `async fn`, each outcome counted where
    /// it is reached: a second `async fn` around them made every
    /// verification copy the inner future and its answer once more.
    pub async fn verify_at(
        &self,
        secret: &str,
        context: VerifyContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<Verification, VerifyError> {
        // Reading the clock costs as much as a cache lookup here, so one
        // verification in LATENCY_SAMPLE is timed for the histogram.
        let started = metrics::sample_latency().then(std::time::Instant::now);
        // Resolved against the catalog so the action is a `&'static str`
        // from here on: counting it allocates nothing.
        // Looked up once: the scope for counting, the product for the
        // entitlement.
        let resolved = match context.action {
            None => None,
            Some(action) => Some(
                self.catalog
                    .action(action)
                    .ok_or(VerifyError::UnknownAction)?,
            ),
        };
        let action = resolved.map(|(_, action)| action.scope.as_str());
        let context = VerifyContext { action, ..context };
        let Ok(parsed) = ParsedSecret::parse(secret) else {
            return Ok(self.counted(Decision::malformed(), None, started));
        };
        // One clock reading serves the cache's expiry and the decision.
        let hash = self.pepper.hash(&parsed);
        let key = match self.cached_key(&hash, now) {
            Cached::Hit(key) => key,
            Cached::Miss { live } => Box::pin(self.read_key(&hash, live, now)).await?,
        };
        let Some(key) = key else {
            return Ok(self.counted(Decision::not_found(), None, started));
        };
        let decision = match check_key(&key, &context, now) {
            Some(refused) => refused,
            None if key
                .rate_limit
                .is_some_and(|limit| !self.limiter.try_take(&key.id, limit, now)) =>
            {
                rate_limited()
            }
            None => match check_action(&key, resolved) {
                ActionCheck::Decided(decision) => decision,
                ActionCheck::NeedsEntitlement { product, .. } => {
                    let entitlements = match self.cached_entitlements(&key.project_id, now) {
                        Cached::Hit(entitlements) => entitlements,
                        Cached::Miss { live } => {
                            Box::pin(self.read_entitlements(&key.project_id, live, now)).await?
                        }
                    };
                    let entitlement = entitlements.iter().find(|e| e.product == product);
                    check_entitlement(Cow::Borrowed(product), entitlement, now)
                }
            },
        };
        self.usage.record(&key, action, decision.code, now);
        tracing::debug!(key_id = %key.id, code = decision.code.as_str(), "verified");
        Ok(self.counted(decision, Some(key), started))
    }

    /// A verification's outcome, counted in the metrics.
    fn counted(
        &self,
        decision: Decision,
        key: Option<VerifiableKey>,
        started: Option<std::time::Instant>,
    ) -> Verification {
        self.metrics
            .verified(decision.code, started.map(|at| at.elapsed()));
        Verification { decision, key }
    }

    /// The active key behind a credential, or `None` (malformed, unknown,
    /// revoked or expired). Not counted as usage.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<VerifiableKey>, StoreError> {
        let Ok(parsed) = ParsedSecret::parse(secret) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let key = self.lookup(&self.pepper.hash(&parsed), now).await?;
        Ok(key.filter(|key| key.status_at(now) == KeyStatus::Active))
    }

    /// Brings the metrics that are read rather than counted up to date.
    pub fn refresh_gauges(&self) {
        let metrics = &self.metrics;
        metrics
            .filter_keys
            .set(i64::try_from(self.known.len()).unwrap_or(i64::MAX));
        metrics.set_cache_entries(CacheName::Keys, self.keys.entry_count());
        metrics.set_cache_entries(CacheName::Entitlements, self.entitlements.entry_count());
        let stats = &self.feed.stats;
        metrics::catch_up(
            &metrics.feed_reconnects,
            stats.reconnects.load(Ordering::Relaxed),
        );
        metrics::catch_up(
            &metrics.feed_received,
            stats.received.load(Ordering::Relaxed),
        );
    }

    /// This node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// This node's metrics, to hold on to.
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn usage(&self) -> &UsageRecorder {
        &self.usage
    }

    /// A key changed (revoked, expired, rotated): the next verification on
    /// this node reads it again.
    pub fn forget_key(&self, hash: &SecretHash) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.keys.invalidate(hash);
    }

    /// A project's entitlement changed: the next verification on this node
    /// reads the project's entitlements again.
    pub fn forget_entitlements(&self, project: &ProjectId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entitlements.invalidate(project);
    }

    /// The feed's epoch when it is live and the caches may be used (after
    /// dropping what they held from an earlier epoch); `None` while the
    /// feed is down.
    fn live_epoch(&self) -> Option<u64> {
        let epoch = self.feed.epoch();
        if epoch % 2 == 1 {
            return None;
        }
        if self.cache_epoch.load(Ordering::SeqCst) != epoch
            && self.cache_epoch.swap(epoch, Ordering::SeqCst) != epoch
        {
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.keys.invalidate_all();
            self.entitlements.invalidate_all();
        }
        Some(epoch)
    }

    async fn lookup(
        &self,
        hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Option<VerifiableKey>, StoreError> {
        match self.cached_key(hash, now) {
            Cached::Hit(key) => Ok(key),
            Cached::Miss { live } => self.read_key(hash, live, now).await,
        }
    }

    /// What this node knows of a key without the store: the cached record,
    /// or (a hit of `None`) that no such key was ever issued (see
    /// [`known_keys`]).
    fn cached_key(&self, hash: &SecretHash, now: DateTime<Utc>) -> Cached<Option<VerifiableKey>> {
        let live = self.live_epoch();
        if let Some(epoch) = live {
            if let Some(key) = self.keys.get(hash, now) {
                self.metrics.cache_hit(CacheName::Keys);
                return Cached::Hit(Some(key));
            }
            if self.known.check(hash, epoch) == Membership::Absent && !self.miss_budget.try_spend()
            {
                self.metrics.unknown_keys_filtered.inc();
                return Cached::Hit(None);
            }
        }
        Cached::Miss {
            live: live.is_some(),
        }
    }

    /// A key read from the store after [`Self::cached_key`] missed, and
    /// cached if the change feed was `live`.
    async fn read_key(
        &self,
        hash: &SecretHash,
        live: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<VerifiableKey>, StoreError> {
        self.metrics.cache_miss(CacheName::Keys);
        self.metrics.store_query(StoreQuery::KeyLookup);
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(key) = self.store.find_key_by_hash(hash).await? else {
            return Ok(None);
        };
        let key = self.interned.verifiable(key);
        if live {
            self.keys.insert(*hash, key.clone(), now);
            self.drop_if_changed_meanwhile(generation, || self.keys.invalidate(hash));
        }
        Ok(Some(key))
    }

    /// A read that raced a change (it started before the change committed
    /// and is cached after `forget_*` ran) must not stay cached: if any
    /// change was announced since `generation` was read, drop what was just
    /// inserted. A change announced after this check invalidates it itself.
    fn drop_if_changed_meanwhile(&self, generation: u64, invalidate: impl FnOnce()) {
        if self.generation.load(Ordering::SeqCst) != generation {
            invalidate();
        }
    }

    fn cached_entitlements(
        &self,
        project: &ProjectId,
        now: DateTime<Utc>,
    ) -> Cached<Arc<Vec<Entitlement>>> {
        let live = self.live_epoch().is_some();
        if live && let Some(entitlements) = self.entitlements.get(project, now) {
            self.metrics.cache_hit(CacheName::Entitlements);
            return Cached::Hit(entitlements);
        }
        Cached::Miss { live }
    }

    /// A project's entitlements read from the store after
    /// [`Self::cached_entitlements`] missed, and cached if the change feed
    /// was `live`.
    async fn read_entitlements(
        &self,
        project: &ProjectId,
        live: bool,
        now: DateTime<Utc>,
    ) -> Result<Arc<Vec<Entitlement>>, StoreError> {
        self.metrics.cache_miss(CacheName::Entitlements);
        self.metrics.store_query(StoreQuery::EntitlementLookup);
        let generation = self.generation.load(Ordering::SeqCst);
        let entitlements = Arc::new(self.store.list_entitlements(project).await?);
        if live {
            self.entitlements
                .insert(project.clone(), entitlements.clone(), now);
            self.drop_if_changed_meanwhile(generation, || {
                self.entitlements.invalidate(project);
            });
        }
        Ok(entitlements)
    }
}

/// What a cache answers without the store. Verification takes a hit
/// synchronously, and only a miss enters the store read's future (which
/// copies its arguments and its answer once more), boxed: held inline, it
/// made every verification's future larger, and moving it cost more than
/// the allocation does on a miss, which waits for the store anyway.
enum Cached<T> {
    Hit(T),
    /// Read the store; cache what it returns only if the feed was `live`.
    Miss {
        live: bool,
    },
}
