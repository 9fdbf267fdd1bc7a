//! Keys: create, list, show, rotate, revoke, expire, usage (SPEC section 3).

use atk_core::key::{Environment, Expiration, KeyKind, KeyStatus, PreviewRow};
use atk_core::lifecycle::Grace;
use atk_core::limits::RateLimit;
use atk_core::policy::{BlockedScope, Confirmation};
use atk_core::usage::{Granularity, UsageReport};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/projects/{project_id}/keys`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// 1–100 characters, trimmed, no control characters.
    #[schema(example = "Backend Project API Key")]
    pub name: String,
    /// Default `project`.
    pub kind: Option<KeyKind>,
    /// Default `production`.
    pub environment: Option<Environment>,
    /// Catalog actions; default depends on the kind (`product_scoped` has none).
    pub scopes: Option<Vec<String>>,
    /// Default `90_days`.
    pub expiration: Option<Expiration>,
    /// `backend_only`, `secret_shown_once`, `entitlements_may_block`, and for
    /// `service_role` also `service_role_danger`. Missing ones are a 422
    /// listing them, also when the field is left out.
    #[serde(default)]
    pub confirmations: Vec<Confirmation>,
    /// Backend Secret and Service Role keys only: the networks (CIDR, or a
    /// single address) the key may be used from; verify answers
    /// `FORBIDDEN_IP` for a `client_ip` outside them. Up to 50. Kept on
    /// rotation.
    #[schema(example = json!(["10.1.0.0/16", "2001:db8::/32"]))]
    pub allowed_ips: Option<Vec<String>>,
    /// The key's own limit, per node: verify answers `RATE_LIMITED` past
    /// it. Kept on rotation.
    pub rate_limit: Option<RateLimit>,
}

impl CreateKey {
    /// The request as the key policy reads it (everything but the name).
    pub fn policy_request(&self) -> atk_core::policy::KeyRequest {
        atk_core::policy::KeyRequest {
            kind: self.kind,
            environment: self.environment,
            scopes: self.scopes.clone(),
            expiration: self.expiration,
            confirmations: self.confirmations.clone(),
            allowed_ips: self.allowed_ips.clone(),
            rate_limit: self.rate_limit,
        }
    }
}

/// What a create answers: the only time the secret is shown.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedKeyBody {
    /// The plaintext secret. This response is the only time it is shown.
    #[schema(example = "atk_live_4fT0cQ9vR2mX7bN1kP5sW8zY3hJ6dL0aGq7K2B")]
    pub secret: String,
    pub key: PreviewRow,
    /// Chosen scopes that the project's Commerce entitlements block today.
    pub blocked_scopes: Vec<String>,
    /// The same scopes, each with the entitlement status that blocks it
    /// (and, for a trial, when it ended).
    pub blocked_scope_reasons: Vec<BlockedScope>,
}

// `Debug` leaves the secret out, so a logged response shows none.
impl std::fmt::Debug for CreatedKeyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKeyBody")
            .field("secret", &"[shown once, not printed]")
            .field("key", &self.key)
            .field("blocked_scopes", &self.blocked_scopes)
            .field("blocked_scope_reasons", &self.blocked_scope_reasons)
            .finish()
    }
}

/// A page of preview rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<PreviewRow>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/projects/{project_id}/keys`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListKeysQuery {
    pub status: Option<KeyStatus>,
    pub environment: Option<Environment>,
    pub kind: Option<KeyKind>,
    /// Active keys whose expiry falls within this many days.
    pub expiring_within_days: Option<u32>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `POST /v1/projects/{project_id}/keys/{key_id}/rotate`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working: `none`, `1_hour`, `24_hours`, `7_days`.
    pub grace: Grace,
    /// Must include `secret_shown_once` (a 422 otherwise).
    #[serde(default)]
    pub confirmations: Vec<Confirmation>,
}

/// What a rotation answers: the new secret, once, and both keys.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RotatedKeyBody {
    /// The new key's secret. This response is the only time it is shown.
    pub secret: String,
    /// The new key.
    pub key: PreviewRow,
    /// The old key, now linked by `rotated_to` and ending after the grace.
    pub previous: PreviewRow,
}

// `Debug` leaves the secret out, so a logged response shows none.
impl std::fmt::Debug for RotatedKeyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedKeyBody")
            .field("secret", &"[shown once, not printed]")
            .field("key", &self.key)
            .field("previous", &self.previous)
            .finish()
    }
}

/// `POST /v1/projects/{project_id}/keys/{key_id}/revoke` (the body is optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    /// Why; kept with the key and in the audit log (up to 500 characters).
    pub reason: Option<String>,
    /// Also revoke every key this key created (a Service Role Key's keys),
    /// each with its own audit event.
    #[serde(default)]
    pub cascade: bool,
}

/// `POST /v1/projects/{project_id}/keys/{key_id}/expire` takes no fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpireKey {}

/// `GET /v1/projects/{project_id}/keys/{key_id}/usage`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// RFC 3339; default: 24 hours (hour) or 30 days (day) before `to`.
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339; default: now.
    pub to: Option<DateTime<Utc>>,
    /// `hour` (default) or `day`.
    pub granularity: Option<Granularity>,
}

/// A key's usage: its id and the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyUsage {
    pub key_id: String,
    #[serde(flatten)]
    pub report: UsageReport,
}
