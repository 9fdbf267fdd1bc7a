//! The verification decision. Codes are checked in the order of SPEC
//! section 3; the first that applies wins, so a caller always learns the
//! most fundamental reason a key cannot act.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::{Action, Catalog, Product};
use crate::entitlement::{Entitlement, EntitlementBlock, EntitlementStatus, blocks};
use crate::key::{KeyStatus, VerifiableKey, text_enum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Malformed,
    NotFound,
    Revoked,
    Expired,
    ForbiddenIp,
    BrowserOriginBlocked,
    RateLimited,
    ScopeMissing,
    EntitlementDisabled,
    EntitlementUpgradeRequired,
    EntitlementTrialEnded,
    Ok,
}

text_enum!(VerifyCode {
    Malformed => "MALFORMED",
    NotFound => "NOT_FOUND",
    Revoked => "REVOKED",
    Expired => "EXPIRED",
    ForbiddenIp => "FORBIDDEN_IP",
    BrowserOriginBlocked => "BROWSER_ORIGIN_BLOCKED",
    RateLimited => "RATE_LIMITED",
    ScopeMissing => "SCOPE_MISSING",
    EntitlementDisabled => "ENTITLEMENT_DISABLED",
    EntitlementUpgradeRequired => "ENTITLEMENT_UPGRADE_REQUIRED",
    EntitlementTrialEnded => "ENTITLEMENT_TRIAL_ENDED",
    Ok => "OK",
});

/// The entitlement that applied to the requested action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntitlementView {
    /// Borrowed from the catalog on the verify path, so a decision about an
    /// entitlement allocates nothing.
    #[schema(value_type = String)]
    pub product: Cow<'static, str>,
    pub status: EntitlementStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub code: VerifyCode,
    /// The key exists and is active.
    pub valid: bool,
    /// The key may perform the action now (equal to `valid` without an action).
    pub allowed: bool,
    pub missing_scopes: Vec<String>,
    pub entitlement: Option<EntitlementView>,
}

impl Decision {
    fn refused(code: VerifyCode, valid: bool) -> Self {
        Self {
            code,
            valid,
            allowed: false,
            missing_scopes: Vec::new(),
            entitlement: None,
        }
    }

    /// Off-pattern or bad checksum: decided before any lookup.
    pub fn malformed() -> Self {
        Self::refused(VerifyCode::Malformed, false)
    }

    pub fn not_found() -> Self {
        Self::refused(VerifyCode::NotFound, false)
    }
}

/// What the calling backend tells verify about the request it is serving.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyContext<'a> {
    /// A catalog scope (an unknown action is a bad request, not a decision).
    pub action: Option<&'a str>,
    /// The address of the backend's own caller.
    pub client_ip: Option<IpAddr>,
    /// The browser `Origin` the backend saw, if any.
    pub origin: Option<&'a str>,
}

/// The first stage of the pipeline: what the key itself allows, whatever
/// the action. Status, then the IP allowlist, then the origin. `None`: go
/// on (to the rate limit, then [`check_action`]).
pub fn check_key(
    key: &VerifiableKey,
    context: &VerifyContext<'_>,
    now: DateTime<Utc>,
) -> Option<Decision> {
    match key.status_at(now) {
        KeyStatus::Revoked => return Some(Decision::refused(VerifyCode::Revoked, false)),
        KeyStatus::Expired => return Some(Decision::refused(VerifyCode::Expired, false)),
        KeyStatus::Active => {}
    }
    // Deny by default: with an allowlist, a caller that cannot say where
    // the request came from is outside it.
    if !key.allowed_ips.is_empty()
        && !context
            .client_ip
            .is_some_and(|ip| key.allowed_ips.admits(ip))
    {
        return Some(Decision::refused(VerifyCode::ForbiddenIp, true));
    }
    // Every kind is backend-only: a browser origin means the key is in a
    // browser, which is a leaked key.
    if context
        .origin
        .is_some_and(|origin| !origin.trim().is_empty())
    {
        return Some(Decision::refused(VerifyCode::BrowserOriginBlocked, true));
    }
    None
}

/// The refusal when the key's own rate limit is spent (between the key and
/// the action checks; the limiter lives with the verifier).
pub fn rate_limited() -> Decision {
    Decision::refused(VerifyCode::RateLimited, true)
}

/// What the action needs once the key passed [`check_key`] and the rate
/// limit: nothing more (no action), a refusal (scope missing), or the
/// entitlement of the action's product, for [`check_entitlement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionCheck<'c> {
    Decided(Decision),
    NeedsEntitlement { product: &'c str },
}

/// `action` is the catalog's entry for the requested action, looked up
/// once by the caller (an action outside the catalog is a bad request).
pub fn check_action<'c>(
    key: &VerifiableKey,
    action: Option<(&'c Product, &'c Action)>,
) -> ActionCheck<'c> {
    let Some((product, action)) = action else {
        return ActionCheck::Decided(Decision {
            code: VerifyCode::Ok,
            valid: true,
            allowed: true,
            missing_scopes: Vec::new(),
            entitlement: None,
        });
    };
    if !key.scopes.contains(&action.scope) {
        return ActionCheck::Decided(Decision {
            missing_scopes: vec![action.scope.clone()],
            ..Decision::refused(VerifyCode::ScopeMissing, true)
        });
    }
    ActionCheck::NeedsEntitlement {
        product: product.id.as_str(),
    }
}

/// The last stage: the project's entitlement for the action's product
/// (`None`: no row, which is disabled — deny by default).
pub fn check_entitlement(
    product: Cow<'static, str>,
    entitlement: Option<&Entitlement>,
    now: DateTime<Utc>,
) -> Decision {
    let view = EntitlementView {
        product,
        status: entitlement.map_or(EntitlementStatus::Disabled, |e| e.status),
    };
    let code = match blocks(entitlement, now) {
        None => VerifyCode::Ok,
        Some(EntitlementBlock::Disabled) => VerifyCode::EntitlementDisabled,
        Some(EntitlementBlock::UpgradeRequired) => VerifyCode::EntitlementUpgradeRequired,
        Some(EntitlementBlock::TrialEnded) => VerifyCode::EntitlementTrialEnded,
    };
    Decision {
        code,
        valid: true,
        allowed: code == VerifyCode::Ok,
        missing_scopes: Vec::new(),
        entitlement: Some(view),
    }
}

/// The whole pipeline for a key that is not rate limited, in one call (the
/// verifier runs the stages itself, with its limiter between them).
pub fn decide(
    catalog: &Catalog,
    key: &VerifiableKey,
    context: &VerifyContext<'_>,
    entitlement: Option<&Entitlement>,
    now: DateTime<Utc>,
) -> Decision {
    if let Some(refused) = check_key(key, context, now) {
        return refused;
    }
    // Documented as a catalog action; one that is not is missing from
    // every key.
    let resolved = match context.action {
        None => None,
        Some(action) => match catalog.action(action) {
            Some(resolved) => Some(resolved),
            None => {
                return Decision {
                    missing_scopes: vec![action.to_owned()],
                    ..Decision::refused(VerifyCode::ScopeMissing, true)
                };
            }
        },
    };
    match check_action(key, resolved) {
        ActionCheck::Decided(decision) => decision,
        ActionCheck::NeedsEntitlement { product, .. } => {
            check_entitlement(product.to_owned().into(), entitlement, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DisplayName, KeyId, ProjectId};
    use crate::key::{Environment, Expiration, KeyKind};
    use crate::secret::SecretHash;
    use chrono::TimeDelta;

    fn key(scopes: &[&str], now: DateTime<Utc>) -> VerifiableKey {
        crate::key::KeyRecord {
            id: KeyId::generate(),
            project_id: ProjectId::parse("project_identity_demo").unwrap(),
            name: DisplayName::parse("k").unwrap(),
            kind: KeyKind::Project,
            environment: Environment::Production,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expiration: Expiration::Days7,
            secret_hash: SecretHash([0; 32]),
            secret_preview: "atk_live_...000000".into(),
            created_at: now,
            expires_at: Some(now + TimeDelta::days(7)),
            last_used_at: None,
            revoked_at: None,
            revoke_reason: None,
            rotated_from: None,
            rotated_to: None,
            created_by: None,
            allowed_ips: Default::default(),
            rate_limit: None,
        }
        .into()
    }

    fn for_action(action: Option<&str>) -> VerifyContext<'_> {
        VerifyContext {
            action,
            ..VerifyContext::default()
        }
    }

    #[test]
    fn an_allowlisted_key_is_refused_outside_its_networks_and_without_an_address() {
        let now = Utc::now();
        let mut k = key(&["qr.scan.read"], now);
        k.allowed_ips = crate::limits::IpAllowlist::parse(&["10.1.0.0/16"]).unwrap();
        let at = |k: &VerifiableKey, ip: Option<&str>| {
            let context = VerifyContext {
                action: Some("qr.scan.read"),
                client_ip: ip.map(|ip| ip.parse().unwrap()),
                origin: None,
            };
            check_key(k, &context, now).map(|d| (d.code, d.valid, d.allowed))
        };
        assert_eq!(at(&k, Some("10.1.2.3")), None);
        assert_eq!(
            at(&k, Some("10.2.0.1")),
            Some((VerifyCode::ForbiddenIp, true, false))
        );
        assert_eq!(at(&k, None), Some((VerifyCode::ForbiddenIp, true, false)));
        k.revoked_at = Some(now);
        assert_eq!(
            at(&k, Some("10.2.0.1")).unwrap().0,
            VerifyCode::Revoked,
            "status first"
        );
    }

    #[test]
    fn a_forwarded_browser_origin_is_blocked_before_scopes_and_entitlements() {
        let now = Utc::now();
        let k = key(&[], now);
        let context = VerifyContext {
            action: Some("marketing.campaign.send"),
            client_ip: None,
            origin: Some("https://app.example"),
        };
        let d = decide(Catalog::get(), &k, &context, None, now);
        assert_eq!(
            (d.code, d.valid, d.allowed),
            (VerifyCode::BrowserOriginBlocked, true, false)
        );
        let blank = VerifyContext {
            origin: Some(" "),
            ..context
        };
        assert_eq!(
            decide(Catalog::get(), &k, &blank, None, now).code,
            VerifyCode::ScopeMissing
        );
    }

    fn entitlement(product: &str, status: EntitlementStatus) -> Entitlement {
        Entitlement {
            product: product.into(),
            status,
            trial_ends_at: None,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn revocation_wins_over_expiry_and_scope() {
        let now = Utc::now();
        let mut k = key(&[], now);
        k.revoked_at = Some(now);
        k.expires_at = Some(now);
        let d = decide(
            Catalog::get(),
            &k,
            &for_action(Some("qr.scan.read")),
            None,
            now,
        );
        assert_eq!(
            (d.code, d.valid, d.allowed),
            (VerifyCode::Revoked, false, false)
        );
    }

    #[test]
    fn a_key_stops_at_the_instant_it_expires() {
        let now = Utc::now();
        let k = key(&["qr.scan.read"], now);
        let expires = k.expires_at.unwrap();
        let before = decide(
            Catalog::get(),
            &k,
            &for_action(None),
            None,
            expires - TimeDelta::milliseconds(1),
        );
        let at = decide(Catalog::get(), &k, &for_action(None), None, expires);
        assert_eq!(before.code, VerifyCode::Ok);
        assert_eq!(at.code, VerifyCode::Expired);
    }

    #[test]
    fn a_missing_scope_is_reported_before_the_entitlement() {
        let now = Utc::now();
        let k = key(&["qr.scan.read"], now);
        let upgrade = entitlement("marketing", EntitlementStatus::UpgradeRequired);
        let d = decide(
            Catalog::get(),
            &k,
            &for_action(Some("marketing.campaign.send")),
            Some(&upgrade),
            now,
        );
        assert_eq!(d.code, VerifyCode::ScopeMissing);
        assert!(d.valid && !d.allowed);
        assert_eq!(d.missing_scopes, ["marketing.campaign.send"]);
    }

    #[test]
    fn an_upgrade_required_entitlement_blocks_even_with_the_scope() {
        let now = Utc::now();
        let k = key(&["marketing.campaign.send"], now);
        let upgrade = entitlement("marketing", EntitlementStatus::UpgradeRequired);
        let d = decide(
            Catalog::get(),
            &k,
            &for_action(Some("marketing.campaign.send")),
            Some(&upgrade),
            now,
        );
        assert_eq!(d.code, VerifyCode::EntitlementUpgradeRequired);
        assert_eq!(
            d.entitlement,
            Some(EntitlementView {
                product: "marketing".into(),
                status: EntitlementStatus::UpgradeRequired
            })
        );
    }

    #[test]
    fn without_an_entitlement_row_the_action_is_denied() {
        let now = Utc::now();
        let k = key(&["qr.scan.read"], now);
        let d = decide(
            Catalog::get(),
            &k,
            &for_action(Some("qr.scan.read")),
            None,
            now,
        );
        assert_eq!(d.code, VerifyCode::EntitlementDisabled);
    }

    #[test]
    fn every_code_round_trips_through_its_text() {
        for code in VerifyCode::ALL {
            assert_eq!(VerifyCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn without_an_action_allowed_equals_valid() {
        let now = Utc::now();
        let d = decide(Catalog::get(), &key(&[], now), &for_action(None), None, now);
        assert_eq!((d.code, d.valid, d.allowed), (VerifyCode::Ok, true, true));
    }
}
