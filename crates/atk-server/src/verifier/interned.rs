//! One shared copy of each project id and scope list among the cached
//! keys: a million keys of a few projects hold a few copies, not a million.
//! Only a store read interns (a cache miss), so the lock is off the hot
//! path.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use atk_core::ids::ProjectId;
use atk_core::key::{KeyRecord, Scopes, VerifiableKey};

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
    set: HashSet<Shared<T>, foldhash::fast::RandomState>,
    sweep_at: usize,
}

/// A shared value in the table, found by the value or by what it borrows
/// as (a scope list by its strings), so a value read from the store is
/// looked up before it is built.
struct Shared<T: ?Sized>(Arc<T>);

impl<T: ?Sized + PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T: ?Sized + Eq> Eq for Shared<T> {}

impl<T: ?Sized + Hash> Hash for Shared<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<T: ?Sized> Borrow<T> for Shared<T> {
    fn borrow(&self) -> &T {
        &self.0
    }
}

/// `Scopes` hashes and compares as its list of strings.
impl Borrow<[String]> for Shared<Scopes> {
    fn borrow(&self) -> &[String] {
        &self.0
    }
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

    /// The shared copy equal to `probe`, or, for the first, the one `make`
    /// builds (only then: most keys share what is already here).
    fn share<Q>(&self, probe: &Q, make: impl FnOnce() -> Arc<T>) -> Arc<T>
    where
        Q: ?Sized + Eq + Hash,
        Shared<T>: Borrow<Q>,
    {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = values.set.get(probe) {
            return shared.0.clone();
        }
        if values.set.len() >= values.sweep_at {
            // Held by the table alone: no cached key uses it.
            values.set.retain(|value| Arc::strong_count(&value.0) > 1);
            values.sweep_at = SWEEP_AT_LEAST.max(2 * values.set.len());
        }
        let value = make();
        values.set.insert(Shared(value.clone()));
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

    /// What the verifier caches of `key`, its project id and scope list
    /// shared with the keys cached before it.
    pub fn verifiable(&self, key: KeyRecord) -> VerifiableKey {
        let project_id = self
            .projects
            .share(&key.project_id, || Arc::new(key.project_id.clone()));
        let scopes = self.scopes.share(key.scopes.as_slice(), || {
            Arc::new(Scopes::new(key.scopes.clone()))
        });
        VerifiableKey::sharing(key, project_id, scopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(table: &Table<Scopes>, name: &str) -> Arc<Scopes> {
        let list = vec![name.to_owned()];
        table.share(list.as_slice(), || Arc::new(Scopes::new(list.clone())))
    }

    #[test]
    fn equal_values_share_one_copy_and_values_no_key_holds_are_swept() {
        let table = Table::new();
        let first = share(&table, "qr.scan.read");
        let second = share(&table, "qr.scan.read");
        assert!(Arc::ptr_eq(&first, &second));
        // Many values that nothing keeps: swept, so the table stays small.
        for n in 0..3 * SWEEP_AT_LEAST {
            share(&table, &n.to_string());
        }
        let held = table.values.lock().unwrap().set.len();
        assert!(held <= SWEEP_AT_LEAST, "{held}");
        // A value still in use survived every sweep and is still shared.
        let third = share(&table, "qr.scan.read");
        assert!(Arc::ptr_eq(&first, &third));
    }

    #[test]
    fn values_in_use_stay_shared_past_the_sweep_size() {
        let table = Table::new();
        let kept: Vec<Arc<Scopes>> = (0..2 * SWEEP_AT_LEAST)
            .map(|n| share(&table, &n.to_string()))
            .collect();
        let again = share(&table, &SWEEP_AT_LEAST.to_string());
        assert!(Arc::ptr_eq(&kept[SWEEP_AT_LEAST], &again));
    }

    #[test]
    fn a_shared_value_is_built_only_the_first_time() {
        let table: Table<ProjectId> = Table::new();
        let project = ProjectId::parse("project_identity_demo").unwrap();
        let first = table.share(&project, || Arc::new(project.clone()));
        let second = table.share(&project, || unreachable!("already shared"));
        assert!(Arc::ptr_eq(&first, &second));
    }
}
