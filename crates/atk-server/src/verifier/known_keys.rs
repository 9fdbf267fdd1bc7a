//! Which secret hashes exist at all: a membership filter, so a flood of
//! well-formed keys that were never issued costs no store query each.
//!
//! The filter holds the first eight bytes of every key's secret hash
//! (about 16 bytes of memory per key; keys are never deleted, so it only
//! grows). It is loaded from the store while the change feed is connected
//! and kept current by the feed's announcements of new keys; it may be
//! trusted only in the feed epoch it was loaded in. A hash that is not in
//! it was not in the store when the filter was loaded and has not been
//! announced since. Two different keys sharing a prefix (odds about
//! `n / 2^64`) only cost a query.
//!
//! The one moment the filter can be behind is between a key's creation on
//! another node and that node's announcement arriving here (about a
//! millisecond on a LAN). So an absent hash still goes to the store while
//! the [`MissBudget`] allows it: under normal traffic every unknown key is
//! looked up and the answer is exact; only during a flood beyond the budget
//! is an absent hash refused without a query.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use atk_core::secret::SecretHash;

/// Store lookups per second for hashes the filter says do not exist: far
/// above the rate of keys verified on one node within milliseconds of
/// their creation on another, far below a flood (100,000 unknown keys at
/// 40,000 a second cost at most 400 lookups).
pub const MISS_LOOKUPS_PER_SECOND: u64 = 100;

/// The hash prefixes are uniformly random already: hashing them again
/// would only cost time.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type PrefixSet = HashSet<u64, BuildHasherDefault<PrefixHasher>>;

fn prefix(hash: &SecretHash) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.0[..8]);
    u64::from_le_bytes(first)
}

/// What the filter says about a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Maybe issued: look it up.
    Maybe,
    /// Not issued as of the filter's load and the announcements since.
    Absent,
    /// The filter is not loaded for the feed's current epoch.
    Unknown,
}

#[derive(Default)]
pub struct KnownKeys {
    prefixes: RwLock<PrefixSet>,
    /// The feed epoch the filter was loaded in; `u64::MAX` before the
    /// first load.
    loaded_in: AtomicU64,
}

impl std::fmt::Debug for KnownKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownKeys")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl KnownKeys {
    pub fn new() -> Self {
        Self {
            prefixes: RwLock::default(),
            loaded_in: AtomicU64::new(u64::MAX),
        }
    }

    pub fn check(&self, hash: &SecretHash, epoch: u64) -> Membership {
        if self.loaded_in.load(Ordering::SeqCst) != epoch {
            return Membership::Unknown;
        }
        let present = self
            .prefixes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&prefix(hash));
        if present {
            Membership::Maybe
        } else {
            Membership::Absent
        }
    }

    /// A key was announced (created, or changed: then already present).
    pub fn insert(&self, hash: &SecretHash) {
        self.prefixes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(prefix(hash));
    }

    /// Adds what the store held when read in `epoch`. A union, never a
    /// replacement: an announcement that arrived while the store was being
    /// read must not be lost, and keys are never deleted.
    pub fn loaded(&self, hashes: &[SecretHash], epoch: u64) {
        let mut prefixes = self
            .prefixes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prefixes.reserve(hashes.len());
        prefixes.extend(hashes.iter().map(prefix));
        // A slower load from an earlier epoch must not win over a newer one.
        let _ = self
            .loaded_in
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |current| {
                (current == u64::MAX || epoch > current).then_some(epoch)
            });
    }

    pub fn len(&self) -> usize {
        self.prefixes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// At most [`MISS_LOOKUPS_PER_SECOND`] store lookups per second for absent
/// hashes, counted in whole-second windows of the monotonic clock.
#[derive(Debug)]
pub struct MissBudget {
    started: Instant,
    /// The window's second (high 32 bits) and the lookups spent in it.
    window: AtomicU64,
}

impl Default for MissBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl MissBudget {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            window: AtomicU64::new(0),
        }
    }

    /// Spends one lookup if the current second has one left.
    pub fn try_spend(&self) -> bool {
        let second = self.started.elapsed().as_secs() & 0xFFFF_FFFF;
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (window_second, spent) = (current >> 32, current & 0xFFFF_FFFF);
            let next = if window_second == second {
                if spent >= MISS_LOOKUPS_PER_SECOND {
                    return false;
                }
                current + 1
            } else {
                (second << 32) | 1
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_trusted_only_in_the_epoch_it_was_loaded_in() {
        let known = KnownKeys::new();
        let issued = SecretHash([1; 32]);
        assert_eq!(known.check(&issued, 0), Membership::Unknown);
        known.loaded(&[issued], 2);
        assert_eq!(known.check(&issued, 2), Membership::Maybe);
        assert_eq!(known.check(&SecretHash([2; 32]), 2), Membership::Absent);
        assert_eq!(known.check(&issued, 4), Membership::Unknown);
    }

    #[test]
    fn an_announced_key_is_known_and_a_later_load_keeps_it() {
        let known = KnownKeys::new();
        known.loaded(&[], 0);
        let created = SecretHash([3; 32]);
        known.insert(&created);
        known.loaded(&[SecretHash([4; 32])], 0);
        assert_eq!(known.check(&created, 0), Membership::Maybe);
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn the_miss_budget_allows_a_bounded_number_of_lookups_per_second() {
        let budget = MissBudget::new();
        let spent = (0..MISS_LOOKUPS_PER_SECOND * 3)
            .filter(|_| budget.try_spend())
            .count() as u64;
        // Within one second, or across one window boundary at most twice.
        assert!(
            (MISS_LOOKUPS_PER_SECOND..=2 * MISS_LOOKUPS_PER_SECOND).contains(&spent),
            "{spent}"
        );
    }
}
