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
            Some(text) => Some(audit_cursor(text).ok_or_else(bad_cursor)?),
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

/// An audit cursor is the position this API issued: a positive number in
/// plain digits. `+5`, `-1`, `007` or ` 5` were never issued, so they are
/// refused as strictly as key-list cursors are.
fn audit_cursor(text: &str) -> Option<i64> {
    let plain = !text.is_empty()
        // 18 digits: far past any position a log reaches, and always an i64.
        && text.len() <= 18
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    plain.then(|| text.parse::<i64>().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::audit_cursor;

    #[test]
    fn only_plain_positive_positions_are_audit_cursors() {
        assert_eq!(audit_cursor("42"), Some(42));
        assert_eq!(
            audit_cursor("999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        for refused in [
            "",
            "0",
            "007",
            "+5",
            "-1",
            " 5",
            "5 ",
            "1e3",
            "1000000000000000000",
            "9223372036854775807",
            "abc",
        ] {
            assert_eq!(audit_cursor(refused), None, "{refused:?}");
        }
    }
}
