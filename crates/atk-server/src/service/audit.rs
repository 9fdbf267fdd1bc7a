use atk_core::access::Operation;
use atk_core::audit::{AuditAction, AuditEvent};
use atk_core::ids::ProjectId;
use atk_store::AuditQuery;

use super::{Caller, Service, ServiceError, bad_cursor, page_limit};

#[derive(Debug, Clone)]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

impl Service {
    /// The project's audit events, newest first.
    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn list_audit(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        action: Option<AuditAction>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<AuditPage, ServiceError> {
        caller.authorize(Operation::ReadAudit, Some(project_id))?;
        self.existing_project(project_id).await?;
        let before = match cursor {
            None | Some("") => None,
            Some(text) => Some(text.parse::<i64>().map_err(|_| bad_cursor())?),
        };
        let query = AuditQuery {
            action,
            limit: page_limit(limit)?,
            before,
        };
        let page = self.store.list_audit(project_id, &query).await?;
        Ok(AuditPage {
            items: page.items,
            next_cursor: page.next.map(|seq| seq.to_string()),
        })
    }
}
