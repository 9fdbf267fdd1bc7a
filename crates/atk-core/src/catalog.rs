//! The catalog is data: `data/catalog.json` is the one place that lists
//! products, their actions, the key kinds with their scope policy, the
//! expiration choices and the safety confirmations. Code reads it through
//! [`Catalog::get`]; `GET /v1/catalog` serves it as is.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::entitlement::EntitlementStatus;
use crate::key::{Expiration, KeyKind};
use crate::policy::Confirmation;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub products: Vec<Product>,
    pub kinds: Vec<KindInfo>,
    pub expirations: Vec<ExpirationInfo>,
    pub confirmations: Vec<ConfirmationInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Stable id, for example `marketing`.
    pub id: String,
    pub name: String,
    /// What a new project starts with.
    pub initial_entitlement: EntitlementStatus,
    pub entitlement_note: String,
    pub actions: Vec<Action>,
}

/// One product action; its `scope` is what a key carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// For example `notification.send`.
    pub scope: String,
    pub access: Access,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefaultScopes {
    /// Every catalog action the kind allows.
    AllAllowed,
    /// The caller must choose at least one scope.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KindInfo {
    pub id: KeyKind,
    pub name: String,
    pub badge: String,
    pub summary: String,
    pub default_use: String,
    /// When present, only actions of these products are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_products: Option<Vec<String>>,
    /// When present, only actions with these access levels are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_access: Option<Vec<Access>>,
    pub default_scopes: DefaultScopes,
    /// Confirmations this kind needs on top of the ones every kind needs.
    pub extra_confirmations: Vec<Confirmation>,
    /// A key of this kind may call the management API of its own project.
    pub administers_project: bool,
    pub may_have_ip_allowlist: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpirationInfo {
    pub id: Expiration,
    pub label: String,
    /// `null` for a key that never expires.
    pub days: Option<u32>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationInfo {
    pub id: Confirmation,
    pub severity: String,
    pub text: String,
    /// Required for every kind; otherwise only kinds that list it.
    pub every_kind: bool,
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let catalog: Catalog = serde_json::from_str(include_str!("../data/catalog.json"))
        .expect("data/catalog.json is valid (checked by the catalog tests)");
    catalog.check().expect("data/catalog.json is consistent");
    catalog
});

impl Catalog {
    /// The catalog shipped with this build.
    pub fn get() -> &'static Catalog {
        &CATALOG
    }

    /// The product and action of a scope, if the scope is in the catalog.
    pub fn action(&self, scope: &str) -> Option<(&Product, &Action)> {
        self.products.iter().find_map(|product| {
            product
                .actions
                .iter()
                .find(|action| action.scope == scope)
                .map(|action| (product, action))
        })
    }

    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|product| product.id == id)
    }

    pub fn kind(&self, kind: KeyKind) -> &KindInfo {
        self.kinds
            .iter()
            .find(|info| info.id == kind)
            .expect("catalog check guarantees every kind is described")
    }

    pub fn expiration(&self, expiration: Expiration) -> &ExpirationInfo {
        self.expirations
            .iter()
            .find(|info| info.id == expiration)
            .expect("catalog check guarantees every expiration is described")
    }

    /// Whether a key of `kind` may carry `scope`. Unknown scopes are never allowed.
    pub fn kind_allows(&self, kind: KeyKind, scope: &str) -> bool {
        let Some((product, action)) = self.action(scope) else {
            return false;
        };
        let info = self.kind(kind);
        let product_ok = info
            .only_products
            .as_ref()
            .is_none_or(|only| only.contains(&product.id));
        let access_ok = info
            .only_access
            .as_ref()
            .is_none_or(|only| only.contains(&action.access));
        product_ok && access_ok
    }

    /// The scopes a key of `kind` gets when the request names none.
    pub fn default_scopes(&self, kind: KeyKind) -> Vec<String> {
        match self.kind(kind).default_scopes {
            DefaultScopes::None => Vec::new(),
            DefaultScopes::AllAllowed => self
                .products
                .iter()
                .flat_map(|product| &product.actions)
                .filter(|action| self.kind_allows(kind, &action.scope))
                .map(|action| action.scope.clone())
                .collect(),
        }
    }

    /// Confirmations a create or rotate of `kind` must carry, in catalog order.
    pub fn required_confirmations(&self, kind: KeyKind) -> Vec<Confirmation> {
        let extra = &self.kind(kind).extra_confirmations;
        self.confirmations
            .iter()
            .filter(|info| info.every_kind || extra.contains(&info.id))
            .map(|info| info.id)
            .collect()
    }

    /// Every enum the code matches on must be described, and scopes must be unique.
    fn check(&self) -> Result<(), String> {
        for kind in KeyKind::ALL {
            if !self.kinds.iter().any(|info| info.id == kind) {
                return Err(format!("kind {kind:?} is not described"));
            }
        }
        for expiration in Expiration::ALL {
            if !self.expirations.iter().any(|info| info.id == expiration) {
                return Err(format!("expiration {expiration:?} is not described"));
            }
        }
        for confirmation in Confirmation::ALL {
            if !self
                .confirmations
                .iter()
                .any(|info| info.id == confirmation)
            {
                return Err(format!("confirmation {confirmation:?} is not described"));
            }
        }
        let mut scopes: Vec<&str> = self
            .products
            .iter()
            .flat_map(|product| product.actions.iter().map(|action| action.scope.as_str()))
            .collect();
        let count = scopes.len();
        scopes.sort_unstable();
        scopes.dedup();
        if scopes.len() != count {
            return Err("a scope appears twice".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_loads_and_has_the_seven_products() {
        let catalog = Catalog::get();
        let ids: Vec<&str> = catalog.products.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "identity",
                "verification",
                "notification",
                "commerce",
                "marketing",
                "analytics",
                "qr"
            ]
        );
    }

    #[test]
    fn analytics_read_keys_allow_only_analytics_read_actions() {
        let catalog = Catalog::get();
        assert!(catalog.kind_allows(KeyKind::AnalyticsRead, "analytics.report.read"));
        assert!(!catalog.kind_allows(KeyKind::AnalyticsRead, "notification.send"));
        assert_eq!(
            catalog.default_scopes(KeyKind::AnalyticsRead),
            ["analytics.report.read"]
        );
    }

    #[test]
    fn product_scoped_keys_have_no_default_scopes_and_project_keys_have_all() {
        let catalog = Catalog::get();
        assert!(catalog.default_scopes(KeyKind::ProductScoped).is_empty());
        assert_eq!(catalog.default_scopes(KeyKind::Project).len(), 7);
    }

    #[test]
    fn only_service_role_needs_the_danger_confirmation() {
        let catalog = Catalog::get();
        for kind in KeyKind::ALL {
            let required = catalog.required_confirmations(kind);
            assert_eq!(
                required.contains(&Confirmation::ServiceRoleDanger),
                kind == KeyKind::ServiceRole,
                "{kind:?}"
            );
            assert!(required.contains(&Confirmation::BackendOnly));
            assert!(required.contains(&Confirmation::SecretShownOnce));
            assert!(required.contains(&Confirmation::EntitlementsMayBlock));
        }
    }

    #[test]
    fn unknown_scopes_are_never_allowed() {
        assert!(!Catalog::get().kind_allows(KeyKind::Project, "identity.delete_everything"));
    }
}
