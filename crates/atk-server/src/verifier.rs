//! Every verification goes through [`Verifier`], so caching and usage
//! counting have exactly one place to live. The management API's credential
//! check uses the same lookup, so a revoked service role key stops working
//! for administration at the same moment it stops verifying.
//!
//! Caching: key records (by keyed hash) and entitlements are kept for
//! [`CACHE_TTL`]. Changes made through this process invalidate at once;
//! changes made by another node are seen within the TTL. Status is always
//! decided against the clock at verification time, so expiry is exact
//! whatever the cache holds. Unknown secrets are not cached, so a key
//! created on another node verifies immediately.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use atk_core::Clock;
use atk_core::catalog::Catalog;
use atk_core::decision::{
    ActionCheck, Decision, VerifyContext, check_action, check_entitlement, check_key, rate_limited,
};
use atk_core::entitlement::Entitlement;
use atk_core::ids::ProjectId;
use atk_core::key::{KeyRecord, KeyStatus};
use atk_core::secret::{ParsedSecret, Pepper, SecretHash};
use atk_store::{Store, StoreError};
use moka::sync::Cache;
use thiserror::Error;

use crate::limiter::KeyRateLimiter;
use crate::usage::UsageRecorder;

/// How stale a cached key or entitlement may be on a node that did not
/// make the change: the "revocation visible on every node within a second"
/// promise.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
const CACHE_CAPACITY: u64 = 100_000;

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
    pub key: Option<Arc<KeyRecord>>,
}

#[derive(Clone)]
pub struct Verifier {
    store: Arc<dyn Store>,
    pepper: Pepper,
    clock: Arc<dyn Clock>,
    catalog: &'static Catalog,
    keys: Cache<SecretHash, Arc<KeyRecord>>,
    /// `None` is cached too: a missing row means "disabled" (deny by default).
    entitlements: Cache<(ProjectId, String), Option<Entitlement>>,
    usage: UsageRecorder,
    limiter: Arc<KeyRateLimiter>,
    /// Bumped by every `forget_*`, so a lookup can tell whether a change
    /// was announced while it was reading the store.
    generation: Arc<AtomicU64>,
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
    pub fn new(
        store: Arc<dyn Store>,
        pepper: Pepper,
        clock: Arc<dyn Clock>,
        usage: UsageRecorder,
    ) -> Self {
        Self {
            usage,
            limiter: Arc::default(),
            generation: Arc::new(AtomicU64::new(0)),
            store,
            pepper,
            clock,
            catalog: Catalog::get(),
            keys: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build(),
            entitlements: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }

    /// The one verification pipeline: format and checksum first (no I/O
    /// for garbage), then the keyed-hash lookup, then the key's own checks
    /// (status, IP allowlist, origin), then its rate limit, then the action
    /// (scope, then the entitlement of the action's product, read only when
    /// needed). Each stage is the domain's; this only runs them in order
    /// and does the I/O between them.
    pub async fn verify(
        &self,
        secret: &str,
        context: VerifyContext<'_>,
    ) -> Result<Verification, VerifyError> {
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
            return Ok(Verification {
                decision: Decision::malformed(),
                key: None,
            });
        };
        let Some(key) = self.lookup(&self.pepper.hash(&parsed)).await? else {
            return Ok(Verification {
                decision: Decision::not_found(),
                key: None,
            });
        };
        let now = self.clock.now();
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
                    let entitlement = self.entitlement(&key.project_id, product).await?;
                    check_entitlement(product, entitlement.as_ref(), now)
                }
            },
        };
        self.usage.record(&key, action, decision.code, now);
        tracing::debug!(key_id = %key.id, code = decision.code.as_str(), "verified");
        Ok(Verification {
            decision,
            key: Some(key),
        })
    }

    /// The active key behind a credential, or `None` (malformed, unknown,
    /// revoked or expired). Not counted as usage.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        let Ok(parsed) = ParsedSecret::parse(secret) else {
            return Ok(None);
        };
        let key = self.lookup(&self.pepper.hash(&parsed)).await?;
        let now = self.clock.now();
        Ok(key.filter(|key| key.status_at(now) == KeyStatus::Active))
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
    /// reads it again.
    pub fn forget_entitlement(&self, project: &ProjectId, product: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entitlements
            .invalidate(&(project.clone(), product.to_owned()));
    }

    async fn lookup(&self, hash: &SecretHash) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        if let Some(key) = self.keys.get(hash) {
            return Ok(Some(key));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(key) = self.store.find_key_by_hash(hash).await? else {
            return Ok(None);
        };
        let key = Arc::new(key);
        self.keys.insert(*hash, key.clone());
        self.drop_if_changed_meanwhile(generation, || self.keys.invalidate(hash));
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

    async fn entitlement(
        &self,
        project: &ProjectId,
        product: &str,
    ) -> Result<Option<Entitlement>, StoreError> {
        let cache_key = (project.clone(), product.to_owned());
        if let Some(entitlement) = self.entitlements.get(&cache_key) {
            return Ok(entitlement);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let entitlement = self.store.get_entitlement(project, product).await?;
        self.entitlements
            .insert(cache_key.clone(), entitlement.clone());
        self.drop_if_changed_meanwhile(generation, || self.entitlements.invalidate(&cache_key));
        Ok(entitlement)
    }
}
