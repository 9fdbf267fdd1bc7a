//! The verifier's caches: `quick_cache` underneath (a lookup is a hash and
//! a shard's read lock; no clock read, no bookkeeping queue), and expiry
//! checked against the instant the verification already read, so a cache
//! hit reads the clock once in all.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use quick_cache::sync::Cache;
use quick_cache::{Lifecycle, OptionsBuilder, UnitWeighter};

use crate::metrics::{CacheName, Metrics};

/// Evicted keys remembered, as a share of the capacity.
const GHOST_ALLOCATION: f64 = 0.1;

/// A value and the instant it stops being served.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    expires_at: DateTime<Utc>,
}

/// Counts entries pushed out for room (removals for announced changes are
/// the change feed doing its job, and are not counted).
#[derive(Clone)]
struct CountEvictions {
    metrics: Arc<Metrics>,
    name: CacheName,
}

impl<K, V> Lifecycle<K, V> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: K, _value: V) {
        self.metrics.cache_evicted(self.name);
    }
}

/// At most `capacity` entries, each served for `ttl` after it was read
/// from the store. Clones share the entries.
pub struct TtlCache<K, V, S> {
    cache: Arc<Cache<K, Entry<V>, UnitWeighter, S, CountEvictions>>,
    ttl: TimeDelta,
    metrics: Arc<Metrics>,
    name: CacheName,
}

impl<K, V, S> Clone for TtlCache<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            ttl: self.ttl,
            metrics: self.metrics.clone(),
            name: self.name,
        }
    }
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Hash,
    V: Clone,
    S: BuildHasher + Clone,
{
    pub fn new(
        capacity: u64,
        ttl: std::time::Duration,
        hasher: S,
        metrics: &Arc<Metrics>,
        name: CacheName,
    ) -> Self {
        let lifecycle = CountEvictions {
            metrics: metrics.clone(),
            name,
        };
        Self {
            cache: Arc::new(Cache::with_options(
                OptionsBuilder::new()
                    .estimated_items_capacity(usize::try_from(capacity).unwrap_or(usize::MAX))
                    .weight_capacity(capacity)
                    // Ghosts (recently evicted keys, so one read again is
                    // kept) take a whole entry's slot each: at the default
                    // of half the capacity, a full key cache under churn
                    // would hold half as much again.
                    .ghost_allocation(GHOST_ALLOCATION)
                    .build()
                    .expect("capacity and allocations are set"),
                UnitWeighter,
                hasher,
                lifecycle,
            )),
            ttl: TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX),
            metrics: metrics.clone(),
            name,
        }
    }

    /// The value, unless it is absent or has expired at `now`.
    pub fn get(&self, key: &K, now: DateTime<Utc>) -> Option<V> {
        let entry = self.cache.get(key)?;
        if entry.expires_at > now {
            return Some(entry.value);
        }
        // Only the expired entry: a fresh one put meanwhile stays.
        if self
            .cache
            .remove_if(key, |current| current.expires_at <= now)
            .is_some()
        {
            self.metrics.cache_evicted(self.name);
        }
        None
    }

    pub fn insert(&self, key: K, value: V, now: DateTime<Utc>) {
        let expires_at = now
            .checked_add_signed(self.ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.cache.insert(key, Entry { value, expires_at });
    }

    pub fn invalidate(&self, key: &K) {
        self.cache.remove(key);
    }

    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    pub fn entry_count(&self) -> u64 {
        u64::try_from(self.cache.len()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evictions(metrics: &Metrics) -> String {
        metrics
            .render()
            .lines()
            .find(|line| line.starts_with("atk_verifier_cache_evictions_total{cache=\"keys\"}"))
            .unwrap()
            .to_owned()
    }

    #[test]
    fn an_entry_is_served_until_its_age_runs_out_then_counted_as_evicted() {
        let metrics = Arc::new(Metrics::new());
        let cache = TtlCache::new(
            10,
            std::time::Duration::from_secs(300),
            foldhash::fast::RandomState::default(),
            &metrics,
            CacheName::Keys,
        );
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        cache.insert("key", 1, start);
        assert_eq!(cache.get(&"key", start + TimeDelta::seconds(299)), Some(1));
        assert_eq!(cache.get(&"key", start + TimeDelta::seconds(300)), None);
        assert_eq!(cache.entry_count(), 0);
        assert!(
            evictions(&metrics).ends_with(" 1"),
            "{}",
            evictions(&metrics)
        );
        // Removals for announced changes are not evictions.
        cache.insert("other", 2, start);
        cache.invalidate(&"other");
        assert_eq!(cache.get(&"other", start), None);
        assert!(evictions(&metrics).ends_with(" 1"));
    }

    #[test]
    fn past_its_capacity_the_cache_evicts_and_counts_it() {
        let metrics = Arc::new(Metrics::new());
        let cache = TtlCache::new(
            4,
            std::time::Duration::from_secs(300),
            foldhash::fast::RandomState::default(),
            &metrics,
            CacheName::Keys,
        );
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for key in 0..100 {
            cache.insert(key, key, now);
        }
        assert!(cache.entry_count() <= 4, "{}", cache.entry_count());
        let evicted: u64 = evictions(&metrics)
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(evicted >= 96, "{evicted}");
    }
}
