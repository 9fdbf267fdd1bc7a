//! Following the store's change feed: every announced change drops what
//! this node cached about it, new keys join the membership filter, and a
//! reset (the feed reconnected, or this node fell behind it) drops the
//! whole cache and reloads the filter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use atk_store::Store;
use atk_store::feed::{Change, ChangeFeed};
use tokio::sync::broadcast::error::RecvError;

use super::known_keys::KnownKeys;
use crate::metrics;

/// What the follower changes: the verifier's caches, shared.
pub(super) struct Caches {
    pub store: Arc<dyn Store>,
    pub feed: ChangeFeed,
    pub keys: super::KeyCache,
    pub entitlements: super::EntitlementCache,
    pub generation: Arc<AtomicU64>,
    pub known: Arc<KnownKeys>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The running follower; dropping it stops it.
pub(super) struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Follower {
    pub fn start(caches: Caches) -> Self {
        // Subscribed before the filter is first read, so no announcement
        // falls between the read and the subscription.
        let mut changes = caches.feed.subscribe();
        let caches = Arc::new(caches);
        if caches.feed.is_live() {
            caches.reload_filter();
        }
        Self(tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(received) => {
                        caches.apply(&received.change);
                        // Observed once applied, so a change counted here
                        // is already in effect (the tests wait on this).
                        caches
                            .metrics
                            .feed_lag_seconds
                            .observe(received.lag.as_secs_f64());
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "fell behind the change feed; caches reset");
                        caches.apply(&Change::Reset);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }))
    }
}

impl Caches {
    fn apply(self: &Arc<Self>, change: &Change) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::Key(hash) => {
                self.keys.invalidate(hash);
                self.known.insert(hash);
            }
            Change::Entitlement { project, .. } => {
                self.entitlements.invalidate(project);
            }
            Change::Reset => {
                self.keys.invalidate_all();
                self.entitlements.invalidate_all();
                self.reload_filter();
            }
        }
    }

    /// Reads every key hash into the filter, for the feed's current epoch
    /// (in the background: until it is done the filter answers "unknown"
    /// and lookups go to the store).
    fn reload_filter(self: &Arc<Self>) {
        let caches = self.clone();
        tokio::spawn(async move {
            let epoch = caches.feed.epoch();
            // Retried while the epoch lasts: a new epoch reloads anyway.
            while epoch.is_multiple_of(2) && caches.feed.epoch() == epoch {
                caches
                    .metrics
                    .store_query(metrics::StoreQuery::KeyHashesLoad);
                match caches.store.all_key_hashes().await {
                    Ok(hashes) => {
                        caches.known.loaded(&hashes, epoch);
                        tracing::debug!(keys = hashes.len(), "membership filter loaded");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "membership filter not loaded; unknown keys are looked up");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}
