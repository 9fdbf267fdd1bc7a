use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::Catalog;
use crate::ids::{DisplayName, KeyId, ProjectId};
use crate::secret::{SecretHash, SecretPrefix};

/// Generates `as_str`, `parse` and `ALL` for a fieldless enum whose serde
/// names are its stored text, so the wire and the store spell it one way.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|value| value.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    #[default]
    Project,
    ProductScoped,
    AnalyticsRead,
    BackendSecret,
    ServiceRole,
}
text_enum!(KeyKind {
    Project => "project",
    ProductScoped => "product_scoped",
    AnalyticsRead => "analytics_read",
    BackendSecret => "backend_secret",
    ServiceRole => "service_role",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    #[default]
    Production,
    Staging,
    Development,
}
text_enum!(Environment {
    Production => "production",
    Staging => "staging",
    Development => "development",
});

impl Environment {
    /// Production secrets say `live` so a leaked one is recognisable at a glance.
    pub const fn secret_prefix(self) -> SecretPrefix {
        match self {
            Self::Production => SecretPrefix::Live,
            Self::Staging | Self::Development => SecretPrefix::Test,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
pub enum Expiration {
    #[serde(rename = "7_days")]
    Days7,
    #[serde(rename = "30_days")]
    Days30,
    #[default]
    #[serde(rename = "90_days")]
    Days90,
    #[serde(rename = "never")]
    Never,
}
text_enum!(Expiration {
    Days7 => "7_days",
    Days30 => "30_days",
    Days90 => "90_days",
    Never => "never",
});

impl Expiration {
    /// When a key created at `from` with this choice expires (`None`: never).
    pub fn expires_at(self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let days = Catalog::get().expiration(self).days?;
        Some(from + TimeDelta::days(i64::from(days)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}
text_enum!(KeyStatus {
    Active => "active",
    Expired => "expired",
    Revoked => "revoked",
});

/// A revoked key is revoked whatever the clock reads: revocation is never
/// scheduled, and `revoked_at` is the revoking node's time, so a node
/// whose clock is behind that node's must not serve the key until its
/// clock catches up (the store's `revoked` filter reads it the same way).
/// Expiry is a time, read against `now`.
fn status_at(
    revoked_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> KeyStatus {
    if revoked_at.is_some() {
        KeyStatus::Revoked
    } else if expires_at.is_some_and(|expires| expires <= now) {
        KeyStatus::Expired
    } else {
        KeyStatus::Active
    }
}

/// What verifying a key reads of it, and all the verifier caches: a node
/// holds a million of these, so the name, preview, lineage and timestamps
/// that only the console shows stay in the store. The project id and the
/// scope list are shared (`Arc`), so keys of one project can hold one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiableKey {
    pub id: KeyId,
    pub project_id: Arc<ProjectId>,
    pub kind: KeyKind,
    pub environment: Environment,
    pub scopes: Arc<Scopes>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub allowed_ips: crate::limits::IpAllowlist,
    pub rate_limit: Option<crate::limits::RateLimit>,
}

/// A key's scopes, with the JSON array of them written once: every
/// verification answer carries the list, and a Project API Key holds every
/// scope of the catalog, so writing it per answer cost more than deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    list: Box<[String]>,
    json: Box<str>,
}

impl Scopes {
    pub fn new(list: Vec<String>) -> Self {
        let json = serde_json::to_string(&list).expect("a list of strings serializes");
        Self {
            list: list.into(),
            json: json.into(),
        }
    }

    /// The list as a JSON array, exactly as serde_json writes it.
    pub fn as_json(&self) -> &str {
        &self.json
    }
}

/// As its list alone (the JSON is written from it), so a scope list can be
/// looked up among shared ones by its strings.
impl std::hash::Hash for Scopes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.list.hash(state);
    }
}

impl std::ops::Deref for Scopes {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.list
    }
}

impl VerifiableKey {
    /// The same status as [`KeyRecord::status_at`].
    pub fn status_at(&self, now: DateTime<Utc>) -> KeyStatus {
        status_at(self.revoked_at, self.expires_at, now)
    }
}

impl From<KeyRecord> for VerifiableKey {
    fn from(key: KeyRecord) -> Self {
        let project_id = Arc::new(key.project_id.clone());
        let scopes = Arc::new(Scopes::new(key.scopes.clone()));
        Self::sharing(key, project_id, scopes)
    }
}

impl VerifiableKey {
    /// What verifying reads of `key`, holding `project_id` and `scopes`:
    /// copies of its own that other keys share.
    pub fn sharing(key: KeyRecord, project_id: Arc<ProjectId>, scopes: Arc<Scopes>) -> Self {
        debug_assert!(*project_id == key.project_id && **scopes == *key.scopes);
        Self {
            id: key.id,
            project_id,
            kind: key.kind,
            environment: key.environment,
            scopes,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            allowed_ips: key.allowed_ips,
            rate_limit: key.rate_limit,
        }
    }
}

/// A key as the store keeps it: a keyed hash and a preview, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub project_id: ProjectId,
    pub name: DisplayName,
    pub kind: KeyKind,
    pub environment: Environment,
    /// The explicit list chosen at creation: catalog growth never widens it.
    pub scopes: Vec<String>,
    pub expiration: Expiration,
    pub secret_hash: SecretHash,
    pub secret_preview: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub rotated_from: Option<KeyId>,
    pub rotated_to: Option<KeyId>,
    /// The Service Role Key that created this key (or the key it rotated
    /// from), if one did: revoking it with `cascade` revokes this key too.
    pub created_by: Option<KeyId>,
    /// Where the key may be used from (Backend Secret and Service Role
    /// keys); empty: anywhere.
    pub allowed_ips: crate::limits::IpAllowlist,
    pub rate_limit: Option<crate::limits::RateLimit>,
}

impl KeyRecord {
    /// Status is derived, never stored, so a key stops at `expires_at` exactly,
    /// with no sweeper involved.
    pub fn status_at(&self, now: DateTime<Utc>) -> KeyStatus {
        status_at(self.revoked_at, self.expires_at, now)
    }

    pub fn preview_at(&self, now: DateTime<Utc>) -> PreviewRow {
        PreviewRow {
            id: self.id.clone(),
            project_id: self.project_id.clone(),
            name: self.name.to_string(),
            kind: self.kind,
            environment: self.environment,
            scopes: self.scopes.clone(),
            secret_preview: self.secret_preview.clone(),
            status: self.status_at(now),
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
            rotated_from: self.rotated_from.clone(),
            rotated_to: self.rotated_to.clone(),
            allowed_ips: self.allowed_ips.to_strings(),
            rate_limit: self.rate_limit,
        }
    }
}

/// What every API, page and CLI shows of a key. It has no field that could
/// hold the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviewRow {
    #[schema(value_type = String, example = "key_3hV9qT2mXbN8cK1pLr5wZa")]
    pub id: KeyId,
    #[schema(value_type = String, example = "project_identity_demo")]
    pub project_id: ProjectId,
    pub name: String,
    pub kind: KeyKind,
    pub environment: Environment,
    pub scopes: Vec<String>,
    /// First 9 characters, `...`, last 6: `atk_live_...x7Kq2B`.
    pub secret_preview: String,
    pub status: KeyStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub rotated_from: Option<KeyId>,
    #[schema(value_type = Option<String>)]
    pub rotated_to: Option<KeyId>,
    /// The networks the key may be used from; empty: anywhere.
    #[schema(example = json!(["10.1.0.0/16"]))]
    pub allowed_ips: Vec<String>,
    /// The key's own rate limit, if it has one.
    pub rate_limit: Option<crate::limits::RateLimit>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_as_their_list_and_write_as_serde_writes_the_list() {
        let list = vec!["notification.send".to_owned(), "odd\"name\\".to_owned()];
        let scopes = Scopes::new(list.clone());
        assert_eq!(&*scopes, list.as_slice());
        assert_eq!(scopes.as_json(), serde_json::to_string(&list).unwrap());
        assert_eq!(Scopes::new(Vec::new()).as_json(), "[]");
    }

    #[test]
    fn a_verifiable_key_stays_small_enough_to_cache_a_million() {
        // A node caches up to a million of these inline; each byte here is
        // a megabyte there. The key id is inline, the project id and the
        // scope list are shared.
        assert!(
            std::mem::size_of::<VerifiableKey>() <= 96,
            "{}",
            std::mem::size_of::<VerifiableKey>()
        );
        assert_eq!(std::mem::size_of::<KeyId>(), 26);
    }

    #[test]
    fn every_enum_value_round_trips_through_its_stored_text() {
        for kind in KeyKind::ALL {
            assert_eq!(KeyKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for env in Environment::ALL {
            assert_eq!(Environment::parse(env.as_str()), Some(env));
            assert_eq!(serde_json::to_value(env).unwrap(), env.as_str());
        }
        for expiration in Expiration::ALL {
            assert_eq!(Expiration::parse(expiration.as_str()), Some(expiration));
            assert_eq!(
                serde_json::to_value(expiration).unwrap(),
                expiration.as_str()
            );
        }
        for status in KeyStatus::ALL {
            assert_eq!(KeyStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn ninety_days_is_the_default_and_never_has_no_end() {
        let now = Utc::now();
        assert_eq!(Expiration::default(), Expiration::Days90);
        assert_eq!(
            Expiration::Days90.expires_at(now),
            Some(now + TimeDelta::days(90))
        );
        assert_eq!(Expiration::Never.expires_at(now), None);
    }
}
