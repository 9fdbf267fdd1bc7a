//! Every verification goes through [`Verifier`], so caching and usage
//! counting have exactly one place to live. The management API's credential
//! check uses the same lookup, so a revoked service role key stops working
//! for administration at the same moment it stops verifying.

use std::sync::Arc;

use atk_core::Clock;
use atk_core::catalog::Catalog;
use atk_core::decision::{Decision, decide};
use atk_core::key::{KeyRecord, KeyStatus};
use atk_core::secret::{ParsedSecret, Pepper};
use atk_store::{Store, StoreError};
use thiserror::Error;

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
    pub key: Option<KeyRecord>,
}

#[derive(Debug, Clone)]
pub struct Verifier {
    store: Arc<dyn Store>,
    pepper: Pepper,
    clock: Arc<dyn Clock>,
    catalog: &'static Catalog,
}

impl Verifier {
    pub fn new(store: Arc<dyn Store>, pepper: Pepper, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            pepper,
            clock,
            catalog: Catalog::get(),
        }
    }

    /// Format and checksum first (no I/O for garbage), then the keyed-hash
    /// lookup, then the entitlement of the action's product, then the decision.
    pub async fn verify(
        &self,
        secret: &str,
        action: Option<&str>,
    ) -> Result<Verification, VerifyError> {
        let product = match action {
            None => None,
            Some(action) => Some(
                self.catalog
                    .action(action)
                    .map(|(product, _)| product.id.as_str())
                    .ok_or(VerifyError::UnknownAction)?,
            ),
        };
        let Ok(parsed) = ParsedSecret::parse(secret) else {
            return Ok(Verification {
                decision: Decision::malformed(),
                key: None,
            });
        };
        let Some(key) = self
            .store
            .find_key_by_hash(&self.pepper.hash(&parsed))
            .await?
        else {
            return Ok(Verification {
                decision: Decision::not_found(),
                key: None,
            });
        };
        let now = self.clock.now();
        // The entitlement matters only for an active key that has the scope;
        // skip the second lookup otherwise.
        let needs_entitlement = key.status_at(now) == KeyStatus::Active
            && action.is_some_and(|action| key.scopes.iter().any(|scope| scope == action));
        let entitlement = match product {
            Some(product) if needs_entitlement => {
                self.store.get_entitlement(&key.project_id, product).await?
            }
            _ => None,
        };
        let decision = decide(self.catalog, &key, action, entitlement.as_ref(), now);
        tracing::debug!(key_id = %key.id, code = decision.code.as_str(), "verified");
        Ok(Verification {
            decision,
            key: Some(key),
        })
    }

    /// The active key behind a credential, or `None` (malformed, unknown,
    /// revoked or expired). Not counted as usage.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<KeyRecord>, StoreError> {
        let Ok(parsed) = ParsedSecret::parse(secret) else {
            return Ok(None);
        };
        let key = self
            .store
            .find_key_by_hash(&self.pepper.hash(&parsed))
            .await?;
        let now = self.clock.now();
        Ok(key.filter(|key| key.status_at(now) == KeyStatus::Active))
    }
}
