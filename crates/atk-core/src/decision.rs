//! The verification decision. Codes are checked in the order of SPEC
//! section 3; the first that applies wins, so a caller always learns the
//! most fundamental reason a key cannot act.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::Catalog;
use crate::entitlement::{Entitlement, EntitlementBlock, EntitlementStatus, blocks};
use crate::key::{KeyRecord, KeyStatus, text_enum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Malformed,
    NotFound,
    Revoked,
    Expired,
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
    ScopeMissing => "SCOPE_MISSING",
    EntitlementDisabled => "ENTITLEMENT_DISABLED",
    EntitlementUpgradeRequired => "ENTITLEMENT_UPGRADE_REQUIRED",
    EntitlementTrialEnded => "ENTITLEMENT_TRIAL_ENDED",
    Ok => "OK",
});

/// The entitlement that applied to the requested action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntitlementView {
    pub product: String,
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

/// Decides what `key` may do. `action` must already be a catalog scope
/// (an unknown action is a bad request, not a decision); `entitlement` is
/// the project's entitlement for the action's product, if it has one.
pub fn decide(
    catalog: &Catalog,
    key: &KeyRecord,
    action: Option<&str>,
    entitlement: Option<&Entitlement>,
    now: DateTime<Utc>,
) -> Decision {
    match key.status_at(now) {
        KeyStatus::Revoked => return Decision::refused(VerifyCode::Revoked, false),
        KeyStatus::Expired => return Decision::refused(VerifyCode::Expired, false),
        KeyStatus::Active => {}
    }
    let Some(action) = action else {
        return Decision {
            code: VerifyCode::Ok,
            valid: true,
            allowed: true,
            missing_scopes: Vec::new(),
            entitlement: None,
        };
    };
    if !key.scopes.iter().any(|scope| scope == action) {
        return Decision {
            missing_scopes: vec![action.to_owned()],
            ..Decision::refused(VerifyCode::ScopeMissing, true)
        };
    }
    // Deny by default: a product without an entitlement row shows as disabled.
    let view = catalog.action(action).map(|(product, _)| EntitlementView {
        product: product.id.clone(),
        status: entitlement.map_or(EntitlementStatus::Disabled, |e| e.status),
    });
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
        entitlement: view,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DisplayName, KeyId, ProjectId};
    use crate::key::{Environment, Expiration, KeyKind};
    use crate::secret::SecretHash;
    use chrono::TimeDelta;

    fn key(scopes: &[&str], now: DateTime<Utc>) -> KeyRecord {
        KeyRecord {
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
        }
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
        let d = decide(Catalog::get(), &k, Some("qr.scan.read"), None, now);
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
            None,
            None,
            expires - TimeDelta::milliseconds(1),
        );
        let at = decide(Catalog::get(), &k, None, None, expires);
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
            Some("marketing.campaign.send"),
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
            Some("marketing.campaign.send"),
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
        let d = decide(Catalog::get(), &k, Some("qr.scan.read"), None, now);
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
        let d = decide(Catalog::get(), &key(&[], now), None, None, now);
        assert_eq!((d.code, d.valid, d.allowed), (VerifyCode::Ok, true, true));
    }
}
