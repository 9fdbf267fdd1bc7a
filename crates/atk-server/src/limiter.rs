//! Each key's own rate limit (`rate_limit: {requests, per_seconds}`), as a
//! token bucket per key: a key may spend `requests` at once and earns them
//! back evenly over `per_seconds`.
//!
//! The limit is per node. Nodes share nothing for it (a shared counter
//! would put a database write on every verification), so behind a load
//! balancer with `n` nodes a key gets at most `n × requests` per window;
//! set the limit per node accordingly. Memory is bounded: at most
//! [`MAX_TRACKED_KEYS`] buckets, least recently used evicted first, and a
//! bucket idle for a day is dropped. An evicted key starts again with a
//! full bucket, which can only let it through sooner, never refuse it
//! wrongly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atk_core::ids::KeyId;
use atk_core::limits::RateLimit;
use chrono::{DateTime, Utc};
use moka::sync::Cache;

pub const MAX_TRACKED_KEYS: u64 = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: DateTime<Utc>,
}

#[derive(Clone)]
pub struct KeyRateLimiter {
    buckets: Cache<KeyId, Arc<Mutex<Bucket>>>,
}

impl std::fmt::Debug for KeyRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRateLimiter")
            .field("tracked_keys", &self.buckets.entry_count())
            .finish()
    }
}

impl Default for KeyRateLimiter {
    fn default() -> Self {
        Self {
            buckets: Cache::builder()
                .max_capacity(MAX_TRACKED_KEYS)
                .time_to_idle(Duration::from_secs(86_400))
                .build(),
        }
    }
}

impl KeyRateLimiter {
    /// Takes one request from the key's bucket at `now`; `false` when the
    /// bucket is empty (the verification answers `RATE_LIMITED`).
    pub fn try_take(&self, key: &KeyId, limit: RateLimit, now: DateTime<Utc>) -> bool {
        let capacity = f64::from(limit.requests);
        let bucket = self.buckets.get_with_by_ref(key, || {
            Arc::new(Mutex::new(Bucket {
                tokens: capacity,
                updated: now,
            }))
        });
        let mut bucket = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = (now - bucket.updated)
            .num_microseconds()
            .unwrap_or(i64::MAX)
            .max(0) as f64
            / 1_000_000.0;
        let per_second = capacity / f64::from(limit.per_seconds);
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        if now > bucket.updated {
            bucket.updated = now;
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn a_key_spends_its_requests_then_earns_them_back_evenly() {
        let limiter = KeyRateLimiter::default();
        let key = KeyId::generate();
        let limit = RateLimit {
            requests: 3,
            per_seconds: 60,
        };
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!((0..3).all(|_| limiter.try_take(&key, limit, t0)));
        assert!(!limiter.try_take(&key, limit, t0));
        // One request comes back every 20 seconds.
        assert!(!limiter.try_take(&key, limit, t0 + TimeDelta::seconds(19)));
        assert!(limiter.try_take(&key, limit, t0 + TimeDelta::seconds(20)));
        assert!(!limiter.try_take(&key, limit, t0 + TimeDelta::seconds(20)));
        // Never more than the limit at once, however long it waited.
        let later = t0 + TimeDelta::hours(5);
        assert!((0..3).all(|_| limiter.try_take(&key, limit, later)));
        assert!(!limiter.try_take(&key, limit, later));
        // Other keys have their own buckets.
        assert!(limiter.try_take(&KeyId::generate(), limit, later));
    }
}
