//! Lifecycle rules: what rotation, revocation and expiry may do to a key.
//! The store applies them atomically; these functions say what to apply.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use crate::key::{KeyRecord, KeyStatus, text_enum};

/// How long the old key keeps working after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Grace {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "1_hour")]
    Hour1,
    #[serde(rename = "24_hours")]
    Hours24,
    #[serde(rename = "7_days")]
    Days7,
}
text_enum!(Grace {
    None => "none",
    Hour1 => "1_hour",
    Hours24 => "24_hours",
    Days7 => "7_days",
});

impl Grace {
    pub fn duration(self) -> TimeDelta {
        match self {
            Self::None => TimeDelta::zero(),
            Self::Hour1 => TimeDelta::hours(1),
            Self::Hours24 => TimeDelta::hours(24),
            Self::Days7 => TimeDelta::days(7),
        }
    }

    /// When the old key of a rotation at `now` stops: after the grace, but
    /// never later than it would have anyway.
    pub fn old_key_ends_at(
        self,
        now: DateTime<Utc>,
        current_expiry: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        let end = now + self.duration();
        current_expiry.map_or(end, |expiry| expiry.min(end))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LifecycleError {
    #[error("the key is already {0}")]
    Ended(KeyStatus),
    #[error("the key was already rotated")]
    AlreadyRotated,
}

/// A key can be revoked or expired while it is active (a rotated key in its
/// grace period included); rotated only once, while active.
pub fn check_can_end(key: &KeyRecord, now: DateTime<Utc>) -> Result<(), LifecycleError> {
    match key.status_at(now) {
        KeyStatus::Active => Ok(()),
        ended => Err(LifecycleError::Ended(ended)),
    }
}

pub fn check_can_rotate(key: &KeyRecord, now: DateTime<Utc>) -> Result<(), LifecycleError> {
    check_can_end(key, now)?;
    if key.rotated_to.is_some() {
        return Err(LifecycleError::AlreadyRotated);
    }
    Ok(())
}

/// How a key is ended before its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Revoke { reason: Option<String> },
    Expire,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_never_outlives_the_key() {
        let now = Utc::now();
        let soon = now + TimeDelta::minutes(10);
        assert_eq!(Grace::Hour1.old_key_ends_at(now, Some(soon)), soon);
        assert_eq!(
            Grace::Hour1.old_key_ends_at(now, None),
            now + TimeDelta::hours(1)
        );
        assert_eq!(Grace::None.old_key_ends_at(now, None), now);
        assert_eq!(
            Grace::Days7.old_key_ends_at(now, Some(now + TimeDelta::days(90))),
            now + TimeDelta::days(7)
        );
    }

    #[test]
    fn every_grace_round_trips_through_its_text() {
        for grace in Grace::ALL {
            assert_eq!(Grace::parse(grace.as_str()), Some(grace));
            assert_eq!(serde_json::to_value(grace).unwrap(), grace.as_str());
        }
    }
}
