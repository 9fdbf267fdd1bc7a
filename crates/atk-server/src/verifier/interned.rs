//! One shared copy of each project id and scope list among the cached
//! keys: a million keys of a few projects hold a few copies, not a million.
//! Only a store read interns (a cache miss), so the lock is off the hot
//! path.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use atk_core::ids::ProjectId;
use atk_core::key::VerifiableKey;

/// Distinct values kept at most; past it the table starts again. Values
/// already handed out stay shared by the keys holding them, so a flood of
/// distinct values costs at most this much memory, never a wrong answer.
const MAX_DISTINCT: usize = 10_000;

struct Table<T: ?Sized>(Mutex<HashSet<Arc<T>, foldhash::fast::RandomState>>);

impl<T: ?Sized + Eq + Hash> Table<T> {
    fn new() -> Self {
        Self(Mutex::new(HashSet::default()))
    }

    /// The shared copy equal to `value` (`value` itself if it is the first).
    fn share(&self, value: Arc<T>) -> Arc<T>
    where
        Arc<T>: Borrow<T>,
    {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = table.get(&*value) {
            return shared.clone();
        }
        if table.len() >= MAX_DISTINCT {
            table.clear();
        }
        table.insert(value.clone());
        value
    }
}

pub struct Interned {
    projects: Table<ProjectId>,
    scopes: Table<[String]>,
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
    fn equal_values_share_one_copy_and_the_table_stays_bounded() {
        let table: Table<[String]> = Table::new();
        let first = table.share(Arc::from(vec!["qr.scan.read".to_owned()]));
        let second = table.share(Arc::from(vec!["qr.scan.read".to_owned()]));
        assert!(Arc::ptr_eq(&first, &second));
        for n in 0..MAX_DISTINCT + 5 {
            table.share(Arc::from(vec![n.to_string()]));
        }
        assert!(table.0.lock().unwrap().len() <= MAX_DISTINCT);
        // Still equal after the table started again, though no longer one copy.
        assert_eq!(
            table.share(Arc::from(vec!["qr.scan.read".to_owned()])),
            first
        );
    }
}
