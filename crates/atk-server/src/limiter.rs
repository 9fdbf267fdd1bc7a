//! Token buckets: each key's own rate limit (`rate_limit: {requests,
//! per_seconds}`), and per source address the failed verifications and the
//! management calls with a bad credential. A bucket holds up to `requests`
//! and earns them back evenly over `per_seconds`.
//!
//! Limits are per node. Nodes share nothing for them (a shared counter
//! would put a database write on every verification), so behind a load
//! balancer with `n` nodes a key gets at most `n × requests` per window;
//! set the limit per node accordingly. Memory is bounded: at most
//! [`MAX_TRACKED`] buckets per kind, the least used evicted first (the
//! cache's CLOCK-Pro policy). An evicted bucket starts again full, which
//! can only let a request through sooner, never refuse it wrongly; one
//! that was full anyway is the same as a new one, so idle buckets need no
//! expiry of their own.
//!
//! The buckets are held in quick_cache rather than moka: every verify
//! looks its caller's address up here, and moka's bookkeeping of each
//! read cost several times the lookup itself.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use atk_core::ids::KeyId;
use atk_core::limits::RateLimit;
use chrono::{DateTime, Utc};
use quick_cache::sync::Cache;

pub const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: DateTime<Utc>,
}

impl Bucket {
    /// Adds what was earned since the last look (never above the limit).
    fn refill(&mut self, limit: RateLimit, now: DateTime<Utc>) {
        let elapsed = (now - self.updated)
            .num_microseconds()
            .unwrap_or(i64::MAX)
            .max(0) as f64
            / 1_000_000.0;
        let capacity = f64::from(limit.requests);
        self.tokens =
            (self.tokens + elapsed * capacity / f64::from(limit.per_seconds)).min(capacity);
        if now > self.updated {
            self.updated = now;
        }
    }

    /// Whole seconds until one request is earned back (at least 1).
    fn seconds_until_one(&self, limit: RateLimit) -> u64 {
        let per_second = f64::from(limit.requests) / f64::from(limit.per_seconds);
        ((1.0 - self.tokens) / per_second).ceil().max(1.0) as u64
    }
}

struct TokenBuckets<K: Hash + Eq + Send + Sync + 'static> {
    buckets: Cache<K, Arc<Mutex<Bucket>>>,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> TokenBuckets<K> {
    fn new() -> Self {
        Self {
            buckets: Cache::new(MAX_TRACKED),
        }
    }

    fn bucket(&self, key: &K, limit: RateLimit, now: DateTime<Utc>) -> Arc<Mutex<Bucket>> {
        let created = self.buckets.get_or_insert_with(key, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Mutex::new(Bucket {
                tokens: f64::from(limit.requests),
                updated: now,
            })))
        });
        match created {
            Ok(bucket) => bucket,
            Err(never) => match never {},
        }
    }

    /// Takes one request; `Err(seconds)` to wait when the bucket is empty.
    fn take(&self, key: &K, limit: RateLimit, now: DateTime<Utc>) -> Result<(), u64> {
        let bucket = self.bucket(key, limit, now);
        let mut bucket = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.refill(limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(bucket.seconds_until_one(limit))
        }
    }

    /// Seconds to wait when the bucket is empty, without taking anything.
    fn empty_for(&self, key: &K, limit: RateLimit, now: DateTime<Utc>) -> Option<u64> {
        let bucket = self.buckets.get(key)?;
        let mut bucket = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.refill(limit, now);
        (bucket.tokens < 1.0).then(|| bucket.seconds_until_one(limit))
    }
}

/// Each key's own rate limit.
pub struct KeyRateLimiter(TokenBuckets<KeyId>);

impl Default for KeyRateLimiter {
    fn default() -> Self {
        Self(TokenBuckets::new())
    }
}

impl std::fmt::Debug for KeyRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRateLimiter")
            .field("tracked_keys", &self.0.buckets.len())
            .finish()
    }
}

impl KeyRateLimiter {
    /// Takes one request from the key's bucket at `now`; `false` when the
    /// bucket is empty (the verification answers `RATE_LIMITED`).
    pub fn try_take(&self, key: &KeyId, limit: RateLimit, now: DateTime<Utc>) -> bool {
        self.0.take(key, limit, now).is_ok()
    }
}

/// Failures per source address: once an address has spent its failures,
/// every request of that kind from it answers 429 until one is earned back.
pub struct AddressLimiter {
    buckets: TokenBuckets<IpAddr>,
    limit: RateLimit,
}

impl std::fmt::Debug for AddressLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressLimiter")
            .field("limit", &self.limit)
            .field("tracked_addresses", &self.buckets.buckets.len())
            .finish()
    }
}

impl AddressLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            buckets: TokenBuckets::new(),
            limit,
        }
    }

    /// `Some(seconds)` while the address must wait (the `Retry-After`).
    pub fn retry_after(&self, address: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        self.buckets.empty_for(&address, self.limit, now)
    }

    /// Counts one failure from the address.
    pub fn failed(&self, address: IpAddr, now: DateTime<Utc>) {
        // An empty bucket stays empty; there is nothing more to count.
        let _ = self.buckets.take(&address, self.limit, now);
    }
}

/// The per-address limits on failures, per node.
#[derive(Debug)]
pub struct AddressLimits {
    /// `MALFORMED` and `NOT_FOUND` verifications: guessing keys.
    pub failed_verifications: AddressLimiter,
    /// Management calls whose credential was refused: guessing tokens.
    pub bad_credentials: AddressLimiter,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_key_spends_its_requests_then_earns_them_back_evenly() {
        let limiter = KeyRateLimiter::default();
        let key = KeyId::generate();
        let limit = RateLimit {
            requests: 3,
            per_seconds: 60,
        };
        assert!((0..3).all(|_| limiter.try_take(&key, limit, t0())));
        assert!(!limiter.try_take(&key, limit, t0()));
        // One request comes back every 20 seconds.
        assert!(!limiter.try_take(&key, limit, t0() + TimeDelta::seconds(19)));
        assert!(limiter.try_take(&key, limit, t0() + TimeDelta::seconds(20)));
        assert!(!limiter.try_take(&key, limit, t0() + TimeDelta::seconds(20)));
        // Never more than the limit at once, however long it waited.
        let later = t0() + TimeDelta::hours(5);
        assert!((0..3).all(|_| limiter.try_take(&key, limit, later)));
        assert!(!limiter.try_take(&key, limit, later));
        // Other keys have their own buckets.
        assert!(limiter.try_take(&KeyId::generate(), limit, later));
    }

    #[test]
    fn an_address_waits_after_spending_its_failures_and_is_told_how_long() {
        let limiter = AddressLimiter::new(RateLimit {
            requests: 2,
            per_seconds: 60,
        });
        let here: IpAddr = "192.0.2.1".parse().unwrap();
        let there: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            limiter.retry_after(here, t0()),
            None,
            "unknown addresses may go"
        );
        limiter.failed(here, t0());
        assert_eq!(limiter.retry_after(here, t0()), None);
        limiter.failed(here, t0());
        assert_eq!(limiter.retry_after(here, t0()), Some(30));
        assert_eq!(limiter.retry_after(there, t0()), None);
        assert_eq!(
            limiter.retry_after(here, t0() + TimeDelta::seconds(29)),
            Some(1)
        );
        assert_eq!(
            limiter.retry_after(here, t0() + TimeDelta::seconds(30)),
            None
        );
    }
}
