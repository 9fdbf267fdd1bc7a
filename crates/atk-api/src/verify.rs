//! `POST /v1/keys/verify` (SPEC section 5).
//!
//! The response borrows where it can: the server answers straight from its
//! cached key record without copying it, and a client reads an owned
//! [`VerifyOutcome`].

use std::borrow::Cow;
use std::net::IpAddr;

use atk_core::decision::{EntitlementView, VerifyCode};
use atk_core::ids::{KeyId, ProjectId};
use atk_core::key::{Environment, KeyKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a product backend asks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The secret presented to the product backend.
    pub key: String,
    /// A catalog action, for example `notification.send`.
    pub action: Option<String>,
    /// What the calling backend knows of its own caller's address.
    /// A key with an IP allowlist answers `FORBIDDEN_IP` when this is
    /// outside it or missing.
    #[schema(value_type = Option<String>, format = "ip", example = "203.0.113.7")]
    pub client_ip: Option<IpAddr>,
    /// The browser `Origin` the calling backend saw, if any: keys are
    /// backend-only, so any origin answers `BROWSER_ORIGIN_BLOCKED`.
    pub origin: Option<String>,
}

// `Debug` leaves the key out, so a logged request shows no secret.
impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("key", &"[secret, not printed]")
            .field("action", &self.action)
            .field("client_ip", &self.client_ip)
            .field("origin", &self.origin)
            .finish()
    }
}

/// The key as verification reports it: no secret, no hash, no name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifiedKey<'a> {
    #[schema(value_type = String)]
    pub id: Cow<'a, KeyId>,
    #[schema(value_type = String)]
    pub project_id: Cow<'a, ProjectId>,
    pub environment: Environment,
    pub kind: KeyKind,
    #[schema(value_type = Vec<String>)]
    pub scopes: Cow<'a, [String]>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse<'a> {
    /// The key exists and is active.
    pub valid: bool,
    /// The key may perform `action` now (equals `valid` without an action).
    pub allowed: bool,
    pub code: VerifyCode,
    /// `null` unless the key was found.
    pub key: Option<VerifiedKey<'a>>,
    #[schema(value_type = Option<EntitlementView>)]
    pub entitlement: Option<Cow<'a, EntitlementView>>,
    #[schema(value_type = Vec<String>)]
    pub missing_scopes: Cow<'a, [String]>,
}

impl VerifiedKey<'_> {
    /// The same key, owning its fields.
    pub fn into_owned(self) -> VerifiedKeyOwned {
        VerifiedKey {
            id: Cow::Owned(self.id.into_owned()),
            project_id: Cow::Owned(self.project_id.into_owned()),
            environment: self.environment,
            kind: self.kind,
            scopes: Cow::Owned(self.scopes.into_owned()),
            expires_at: self.expires_at,
        }
    }
}

impl VerifyResponse<'_> {
    /// The same answer, owning its fields.
    pub fn into_owned(self) -> VerifyOutcome {
        VerifyResponse {
            valid: self.valid,
            allowed: self.allowed,
            code: self.code,
            key: self.key.map(VerifiedKey::into_owned),
            entitlement: self.entitlement.map(|view| Cow::Owned(view.into_owned())),
            missing_scopes: Cow::Owned(self.missing_scopes.into_owned()),
        }
    }
}

/// A verify answer as a client holds it: owned.
pub type VerifyOutcome = VerifyResponse<'static>;
pub type VerifiedKeyOwned = VerifiedKey<'static>;
