//! One shared copy of each project id and scope list among the cached
//! keys: a million keys of a few projects hold a few copies, not a million.
//! Only a store read interns (a cache miss), so the lock is off the hot
//! path.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use atk_core::ids::ProjectId;
use atk_core::key::{Scopes, VerifiableKey};

/// The table is swept when it holds this many values, or twice as many as
/// were in use at the last sweep, whichever is more.
const SWEEP_AT_LEAST: usize = 10_000;

/// Values no cached key holds any more are swept out, so the table holds
/// at most about twice what the cached keys share: its memory follows the
/// cache's, and a value in use stays shared however many distinct ones
/// there are.
struct Table<T: ?Sized> {
    values: Mutex<Values<T>>,
}

struct Values<T: ?Sized> {
    set: HashSet<Arc<T>, foldhash::fast::RandomState>,
    sweep_at: usize,
}

impl<T: ?Sized + Eq + Hash> Table<T> {
    fn new() -> Self {
        Self {
            values: Mutex::new(Values {
                set: HashSet::default(),
                sweep_at: SWEEP_AT_LEAST,
            }),
        }
    }

    /// The shared copy equal to `value` (`value` itself if it is the first).
    fn share(&self, value: Arc<T>) -> Arc<T>
    where
        Arc<T>: Borrow<T>,
    {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = values.set.get(&*value) {
            return shared.clone();
        }
        if values.set.len() >= values.sweep_at {
            // Held by the table alone: no cached key uses it.
            values.set.retain(|value| Arc::strong_count(value) > 1);
            values.sweep_at = SWEEP_AT_LEAST.max(2 * values.set.len());
        }
        values.set.insert(value.clone());
        value
    }
}

pub struct Interned {
    projects: Table<ProjectId>,
    scopes: Table<Scopes>,
}

impl Interned {
    pub fn new() -> Self {
        Self {
            projects: Table::new(),
            scopes: Table::new(),
        }
    }

    /// `key` with its project id and scope list shared with the keys
    /// cached before it.
    pub fn share(&self, mut key: VerifiableKey) -> VerifiableKey {
        key.project_id = self.projects.share(key.project_id);
        key.scopes = self.scopes.share(key.scopes);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_and_values_no_key_holds_are_swept() {
        let table: Table<[String]> = Table::new();
        let first = table.share(Arc::from(vec!["qr.scan.read".to_owned()]));
        let second = table.share(Arc::from(vec!["qr.scan.read".to_owned()]));
        assert!(Arc::ptr_eq(&first, &second));
        // Many values that nothing keeps: swept, so the table stays small.
        for n in 0..3 * SWEEP_AT_LEAST {
            table.share(Arc::from(vec![n.to_string()]));
        }
        let held = table.values.lock().unwrap().set.len();
        assert!(held <= SWEEP_AT_LEAST, "{held}");
        // A value still in use survived every sweep and is still shared.
        let third = table.share(Arc::from(vec!["qr.scan.read".to_owned()]));
        assert!(Arc::ptr_eq(&first, &third));
    }

    #[test]
    fn values_in_use_stay_shared_past_the_sweep_size() {
        let table: Table<[String]> = Table::new();
        let kept: Vec<Arc<[String]>> = (0..2 * SWEEP_AT_LEAST)
            .map(|n| table.share(Arc::from(vec![n.to_string()])))
            .collect();
        let again = table.share(Arc::from(vec![SWEEP_AT_LEAST.to_string()]));
        assert!(Arc::ptr_eq(&kept[SWEEP_AT_LEAST], &again));
    }
}
