//! The audit log (SPEC section 3).

use atk_core::audit::{AuditAction, AuditEvent};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /v1/projects/{project_id}/audit`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListQuery {
    /// Only events of this action, for example `key.revoke`.
    pub action: Option<AuditAction>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A page of audit events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for older events; `null` on the last page.
    pub next_cursor: Option<String>,
}
