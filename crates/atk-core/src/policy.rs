//! What a create request may ask for, per key kind. Everything here is
//! decided from the request, the catalog and the clock: no store involved.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use crate::catalog::Catalog;
use crate::entitlement::{Entitlement, EntitlementStatus, blocks};
use crate::key::{Environment, Expiration, KeyKind, text_enum};
use crate::limits::{IpAllowlist, LimitError, RateLimit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    BackendOnly,
    ServiceRoleDanger,
    SecretShownOnce,
    EntitlementsMayBlock,
}
text_enum!(Confirmation {
    BackendOnly => "backend_only",
    ServiceRoleDanger => "service_role_danger",
    SecretShownOnce => "secret_shown_once",
    EntitlementsMayBlock => "entitlements_may_block",
});

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// Scopes that are not catalog actions at all (a 400: the request is wrong).
    #[error("unknown scopes: {}", .0.join(", "))]
    UnknownScopes(Vec<String>),
    /// Catalog actions this kind may not carry (a 422: the request is
    /// well-formed but the policy says no).
    #[error("a {kind} key may not carry: {}", scopes.join(", "))]
    ScopesNotAllowed { kind: KeyKind, scopes: Vec<String> },
    #[error("a {0} key needs at least one scope")]
    NoScopes(KeyKind),
    #[error("missing confirmations: {}", .0.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))]
    MissingConfirmations(Vec<Confirmation>),
    #[error("{0}")]
    Limit(#[from] LimitError),
    /// IP allowlists are for keys that live on known servers.
    #[error("allowed_ips is only for Backend Secret and Service Role keys, not a {0} key")]
    AllowlistNotForKind(KeyKind),
}

/// What the caller asked for, before defaults.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    pub kind: Option<KeyKind>,
    pub environment: Option<Environment>,
    pub scopes: Option<Vec<String>>,
    pub expiration: Option<Expiration>,
    pub confirmations: Vec<Confirmation>,
    pub allowed_ips: Option<Vec<String>>,
    pub rate_limit: Option<RateLimit>,
}

/// A request that passed the policy, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlan {
    pub kind: KeyKind,
    pub environment: Environment,
    /// Deduplicated, in catalog order.
    pub scopes: Vec<String>,
    pub expiration: Expiration,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: IpAllowlist,
    pub rate_limit: Option<RateLimit>,
}

impl KeyRequest {
    pub fn plan(&self, catalog: &Catalog, now: DateTime<Utc>) -> Result<KeyPlan, PolicyError> {
        let kind = self.kind.unwrap_or_default();
        let scopes = match &self.scopes {
            None => catalog.default_scopes(kind),
            Some(requested) => checked_scopes(catalog, kind, requested)?,
        };
        if scopes.is_empty() {
            return Err(PolicyError::NoScopes(kind));
        }
        let allowed_ips = IpAllowlist::parse(self.allowed_ips.as_deref().unwrap_or_default())?;
        if !allowed_ips.is_empty() && !matches!(kind, KeyKind::BackendSecret | KeyKind::ServiceRole)
        {
            return Err(PolicyError::AllowlistNotForKind(kind));
        }
        let rate_limit = self.rate_limit.map(RateLimit::checked).transpose()?;
        require_confirmations(catalog, kind, &self.confirmations)?;
        let expiration = self.expiration.unwrap_or_default();
        Ok(KeyPlan {
            kind,
            environment: self.environment.unwrap_or_default(),
            scopes,
            expiration,
            expires_at: expiration.expires_at(now),
            allowed_ips,
            rate_limit,
        })
    }
}

fn checked_scopes(
    catalog: &Catalog,
    kind: KeyKind,
    requested: &[String],
) -> Result<Vec<String>, PolicyError> {
    let unknown: Vec<String> = requested
        .iter()
        .filter(|scope| catalog.action(scope).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(PolicyError::UnknownScopes(unknown));
    }
    let refused: Vec<String> = requested
        .iter()
        .filter(|scope| !catalog.kind_allows(kind, scope))
        .cloned()
        .collect();
    if !refused.is_empty() {
        return Err(PolicyError::ScopesNotAllowed {
            kind,
            scopes: refused,
        });
    }
    Ok(catalog
        .products
        .iter()
        .flat_map(|product| &product.actions)
        .filter(|action| requested.contains(&action.scope))
        .map(|action| action.scope.clone())
        .collect())
}

/// Refuses when any confirmation the kind needs is absent; the error lists
/// every missing one so a client can fix the request in one go.
pub fn require_confirmations(
    catalog: &Catalog,
    kind: KeyKind,
    given: &[Confirmation],
) -> Result<(), PolicyError> {
    require(catalog.required_confirmations(kind), given)
}

/// A rotation shows a new secret once, so it needs that acknowledged again;
/// a Service Role Key's new secret is as dangerous as the first, so it
/// needs `service_role_danger` too.
pub fn rotation_confirmations(kind: KeyKind) -> Vec<Confirmation> {
    let mut required = vec![Confirmation::SecretShownOnce];
    if kind == KeyKind::ServiceRole {
        required.push(Confirmation::ServiceRoleDanger);
    }
    required
}

pub fn require_rotation_confirmations(
    kind: KeyKind,
    given: &[Confirmation],
) -> Result<(), PolicyError> {
    require(rotation_confirmations(kind), given)
}

fn require(
    required: impl IntoIterator<Item = Confirmation>,
    given: &[Confirmation],
) -> Result<(), PolicyError> {
    let missing: Vec<Confirmation> = required
        .into_iter()
        .filter(|required| !given.contains(required))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::MissingConfirmations(missing))
    }
}

/// A chosen scope that the project's Commerce entitlement blocks today, and
/// why: the entitlement's status and, for a trial, when it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockedScope {
    pub scope: String,
    pub product: String,
    /// `disabled` also when the project has no entitlement row (deny by default).
    pub status: EntitlementStatus,
    pub trial_ends_at: Option<DateTime<Utc>>,
}

impl BlockedScope {
    /// One sentence for a person: why this scope cannot run today.
    pub fn reason(&self, catalog: &Catalog) -> String {
        let product = catalog
            .product(&self.product)
            .map_or(self.product.as_str(), |product| product.name.as_str());
        match (self.status, self.trial_ends_at) {
            (EntitlementStatus::Trial, Some(ended)) => format!(
                "{product}'s trial ended on {}.",
                ended.format("%Y-%m-%d %H:%M UTC")
            ),
            (EntitlementStatus::UpgradeRequired, _) => {
                format!("{product} requires a plan upgrade even when a key scope is selected.")
            }
            _ => format!("{product} is disabled for this project."),
        }
    }
}

/// The chosen scopes whose product entitlement blocks them at `now`, each
/// with the reason.
pub fn blocked_scopes(
    catalog: &Catalog,
    scopes: &[String],
    entitlements: &[Entitlement],
    now: DateTime<Utc>,
) -> Vec<BlockedScope> {
    scopes
        .iter()
        .filter_map(|scope| {
            let product = catalog
                .action(scope)
                .map(|(product, _)| product.id.as_str())?;
            let entitlement = entitlements.iter().find(|e| e.product == product);
            blocks(entitlement, now)?;
            Some(BlockedScope {
                scope: scope.clone(),
                product: product.to_owned(),
                status: entitlement.map_or(EntitlementStatus::Disabled, |e| e.status),
                trial_ends_at: entitlement.and_then(|e| e.trial_ends_at),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_confirmations() -> Vec<Confirmation> {
        Confirmation::ALL.to_vec()
    }

    fn request(kind: KeyKind, scopes: Option<&[&str]>) -> KeyRequest {
        KeyRequest {
            kind: Some(kind),
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            confirmations: all_confirmations(),
            ..KeyRequest::default()
        }
    }

    #[test]
    fn an_empty_request_gets_a_production_project_key_for_ninety_days_with_every_scope() {
        let now = Utc::now();
        let plan = KeyRequest {
            confirmations: all_confirmations(),
            ..KeyRequest::default()
        }
        .plan(Catalog::get(), now)
        .unwrap();
        assert_eq!(plan.kind, KeyKind::Project);
        assert_eq!(plan.environment, Environment::Production);
        assert_eq!(plan.expiration, Expiration::Days90);
        assert_eq!(plan.scopes.len(), 7);
    }

    #[test]
    fn unknown_scopes_come_before_policy_refusals() {
        let err = request(
            KeyKind::AnalyticsRead,
            Some(&["nope.read", "notification.send"]),
        )
        .plan(Catalog::get(), Utc::now())
        .unwrap_err();
        assert_eq!(err, PolicyError::UnknownScopes(vec!["nope.read".into()]));
    }

    #[test]
    fn analytics_read_keys_refuse_write_scopes() {
        let err = request(KeyKind::AnalyticsRead, Some(&["notification.send"]))
            .plan(Catalog::get(), Utc::now())
            .unwrap_err();
        assert!(matches!(err, PolicyError::ScopesNotAllowed { .. }));
    }

    #[test]
    fn product_scoped_keys_need_an_explicit_scope() {
        let err = request(KeyKind::ProductScoped, None)
            .plan(Catalog::get(), Utc::now())
            .unwrap_err();
        assert_eq!(err, PolicyError::NoScopes(KeyKind::ProductScoped));
        let plan = request(
            KeyKind::ProductScoped,
            Some(&["qr.scan.read", "qr.scan.read"]),
        )
        .plan(Catalog::get(), Utc::now())
        .unwrap();
        assert_eq!(plan.scopes, ["qr.scan.read"]);
    }

    #[test]
    fn a_blocked_scope_says_which_status_blocks_it_and_when_a_trial_ended() {
        let now = Utc::now();
        let ended = now - chrono::TimeDelta::days(1);
        let catalog = Catalog::get();
        let mut entitlements = crate::project::initial_entitlements(catalog, now);
        for e in &mut entitlements {
            if e.product == "verification" {
                e.trial_ends_at = Some(ended);
            }
        }
        entitlements.retain(|e| e.product != "qr");
        let scopes: Vec<String> = catalog.default_scopes(KeyKind::Project);
        let blocked = blocked_scopes(catalog, &scopes, &entitlements, now);
        let summary: Vec<(&str, EntitlementStatus)> = blocked
            .iter()
            .map(|b| (b.scope.as_str(), b.status))
            .collect();
        assert_eq!(
            summary,
            [
                ("verification.read", EntitlementStatus::Trial),
                (
                    "marketing.campaign.send",
                    EntitlementStatus::UpgradeRequired
                ),
                ("qr.scan.read", EntitlementStatus::Disabled),
            ]
        );
        assert_eq!(blocked[0].trial_ends_at, Some(ended));
        assert!(
            blocked[0]
                .reason(catalog)
                .starts_with("Verification's trial ended on ")
        );
        assert_eq!(
            blocked[1].reason(catalog),
            "Marketing requires a plan upgrade even when a key scope is selected."
        );
        assert_eq!(
            blocked[2].reason(catalog),
            "QR Experience is disabled for this project."
        );
    }

    #[test]
    fn a_service_role_key_without_the_danger_confirmation_lists_what_is_missing() {
        let mut req = request(KeyKind::ServiceRole, None);
        req.confirmations = vec![Confirmation::BackendOnly];
        let err = req.plan(Catalog::get(), Utc::now()).unwrap_err();
        assert_eq!(
            err,
            PolicyError::MissingConfirmations(vec![
                Confirmation::ServiceRoleDanger,
                Confirmation::SecretShownOnce,
                Confirmation::EntitlementsMayBlock
            ])
        );
    }
}
