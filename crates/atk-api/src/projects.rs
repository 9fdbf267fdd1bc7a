//! Projects and their Commerce entitlements (SPEC section 3).

use atk_core::entitlement::{Entitlement, EntitlementStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/projects`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// `^[a-z][a-z0-9_]{2,62}$`
    #[schema(example = "project_identity_demo")]
    pub project_id: String,
    /// 1–100 characters.
    pub name: String,
}

/// A project's entitlements, one per product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntitlementList {
    pub items: Vec<Entitlement>,
    /// Always `null`: a project has one entitlement per product.
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<String>,
}

/// `PUT /v1/projects/{project_id}/entitlements/{product}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEntitlement {
    pub status: EntitlementStatus,
    /// Only with `trial`: the trial blocks from this instant on.
    #[serde(default)]
    pub trial_ends_at: Option<DateTime<Utc>>,
}
