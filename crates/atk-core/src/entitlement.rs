use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Commercial access to one product, owned by Commerce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementStatus {
    Enabled,
    Trial,
    UpgradeRequired,
    Disabled,
}

impl EntitlementStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Trial => "trial",
            Self::UpgradeRequired => "upgrade_required",
            Self::Disabled => "disabled",
        }
    }

    /// As the console shows it.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Trial => "Trial",
            Self::UpgradeRequired => "Upgrade required",
            Self::Disabled => "Disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Enabled,
            Self::Trial,
            Self::UpgradeRequired,
            Self::Disabled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One project's entitlement for one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entitlement {
    pub product: String,
    pub status: EntitlementStatus,
    /// Only meaningful for `trial`: after this instant the trial blocks.
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Why an entitlement stops an action, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntitlementBlock {
    Disabled,
    UpgradeRequired,
    TrialEnded,
}

impl Entitlement {
    /// `None` when the product may run now; otherwise the reason it may not.
    pub fn blocks_at(&self, now: DateTime<Utc>) -> Option<EntitlementBlock> {
        blocks(Some(self), now)
    }
}

/// One sentence on what the entitlement means for the product now: the
/// catalog's note while the product has its initial status, otherwise one
/// built from the live status.
pub fn describe(
    product: &crate::catalog::Product,
    entitlement: Option<&Entitlement>,
    now: DateTime<Utc>,
) -> String {
    let name = &product.name;
    let Some(entitlement) = entitlement else {
        return format!("{name} is disabled for this project.");
    };
    match (entitlement.status, entitlement.trial_ends_at) {
        (EntitlementStatus::Trial, Some(ends)) if ends <= now => format!(
            "{name}'s trial ended on {}; its actions are blocked.",
            ends.format("%Y-%m-%d %H:%M UTC")
        ),
        (EntitlementStatus::Trial, Some(ends)) => format!(
            "{name} is available in trial mode until {}.",
            ends.format("%Y-%m-%d %H:%M UTC")
        ),
        (status, _) if status == product.initial_entitlement => product.entitlement_note.clone(),
        (EntitlementStatus::Enabled, _) => format!("{name} is enabled for this project."),
        (EntitlementStatus::Trial, None) => format!("{name} is available in trial mode."),
        (EntitlementStatus::UpgradeRequired, _) => {
            format!("{name} requires a plan upgrade even when a key scope is selected.")
        }
        (EntitlementStatus::Disabled, _) => format!("{name} is disabled for this project."),
    }
}

/// Deny by default: a product without an entitlement row is disabled.
pub fn blocks(entitlement: Option<&Entitlement>, now: DateTime<Utc>) -> Option<EntitlementBlock> {
    let Some(entitlement) = entitlement else {
        return Some(EntitlementBlock::Disabled);
    };
    match entitlement.status {
        EntitlementStatus::Enabled => None,
        EntitlementStatus::Trial => match entitlement.trial_ends_at {
            Some(ends) if ends <= now => Some(EntitlementBlock::TrialEnded),
            _ => None,
        },
        EntitlementStatus::UpgradeRequired => Some(EntitlementBlock::UpgradeRequired),
        EntitlementStatus::Disabled => Some(EntitlementBlock::Disabled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn entitlement(status: EntitlementStatus, trial_ends_at: Option<DateTime<Utc>>) -> Entitlement {
        Entitlement {
            product: "verification".into(),
            status,
            trial_ends_at,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_trial_blocks_from_the_instant_it_ends() {
        let now = Utc::now();
        let ending_now = entitlement(EntitlementStatus::Trial, Some(now));
        assert_eq!(
            ending_now.blocks_at(now),
            Some(EntitlementBlock::TrialEnded)
        );
        assert_eq!(ending_now.blocks_at(now - TimeDelta::milliseconds(1)), None);
        assert_eq!(
            entitlement(EntitlementStatus::Trial, None).blocks_at(now),
            None
        );
    }

    #[test]
    fn a_missing_entitlement_is_treated_as_disabled() {
        assert_eq!(blocks(None, Utc::now()), Some(EntitlementBlock::Disabled));
    }

    #[test]
    fn every_status_round_trips_through_its_text() {
        for status in [
            EntitlementStatus::Enabled,
            EntitlementStatus::Trial,
            EntitlementStatus::UpgradeRequired,
            EntitlementStatus::Disabled,
        ] {
            assert_eq!(EntitlementStatus::parse(status.as_str()), Some(status));
        }
    }
}
