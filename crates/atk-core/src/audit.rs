//! Audit events: who changed what, when, from where. Append-only; built
//! only from ids and public fields, so no secret or hash can get in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ids::ProjectId;
use crate::key::text_enum;
use crate::secret::random_base62;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// The platform admin token.
    Admin,
    /// A service role key of the project.
    ServiceRoleKey,
    /// A console account.
    Account,
    /// The `atk` command line, talking to the store directly.
    Cli,
    /// The service itself (first-start setup).
    System,
}
text_enum!(ActorType {
    Admin => "admin",
    ServiceRoleKey => "service_role_key",
    Account => "account",
    Cli => "cli",
    System => "system",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    pub id: String,
}

impl Actor {
    pub fn admin() -> Self {
        Self {
            kind: ActorType::Admin,
            id: "admin".into(),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: ActorType::System,
            id: "atk".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    #[serde(rename = "project.create")]
    ProjectCreate,
    #[serde(rename = "entitlement.update")]
    EntitlementUpdate,
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    #[serde(rename = "key.expire")]
    KeyExpire,
    #[serde(rename = "console.sign_in")]
    ConsoleSignIn,
    #[serde(rename = "console.sign_in_failed")]
    ConsoleSignInFailed,
    #[serde(rename = "account.create")]
    AccountCreate,
    #[serde(rename = "member.invite")]
    MemberInvite,
    #[serde(rename = "member.role_change")]
    MemberRoleChange,
}
text_enum!(AuditAction {
    ProjectCreate => "project.create",
    EntitlementUpdate => "entitlement.update",
    KeyCreate => "key.create",
    KeyRotate => "key.rotate",
    KeyRevoke => "key.revoke",
    KeyExpire => "key.expire",
    ConsoleSignIn => "console.sign_in",
    ConsoleSignInFailed => "console.sign_in_failed",
    AccountCreate => "account.create",
    MemberInvite => "member.invite",
    MemberRoleChange => "member.role_change",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    /// `project`, `entitlement`, `key` or `account`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// `evt_` + base62.
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub target: Target,
    #[serde(skip)]
    pub project_id: Option<ProjectId>,
    /// The address the change came from, when it came over the network.
    pub source_ip: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

impl AuditEvent {
    pub fn new(
        at: DateTime<Utc>,
        actor: Actor,
        action: AuditAction,
        project_id: &ProjectId,
        target: (&str, &str),
        source_ip: Option<String>,
        details: Value,
    ) -> Self {
        Self {
            id: format!("evt_{}", random_base62(22)),
            at,
            actor,
            action,
            target: Target {
                kind: target.0.to_owned(),
                id: target.1.to_owned(),
            },
            project_id: Some(project_id.clone()),
            source_ip,
            details,
        }
    }
}
