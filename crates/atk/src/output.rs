//! Text output for people; `--json` prints the API's JSON shapes instead.

use std::io::Write;

use atk_core::audit::AuditEvent;
use atk_core::key::PreviewRow;
use atk_core::usage::UsageReport;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints to stdout. A closed pipe (`atk keys list | head -1`) is not
    /// an error worth a panic: the reader has what it wanted.
    pub fn print(&self, value: &impl serde::Serialize, text: impl FnOnce() -> String) {
        let rendered = if self.json {
            serde_json::to_string_pretty(value).expect("output serializes")
        } else {
            text()
        };
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "{rendered}") {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("error: cannot write the output: {error}");
            }
            _ => {}
        }
    }
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or("-".to_owned(), |at| at.to_rfc3339())
}

pub fn secret_once(secret: &str, key: &PreviewRow) -> String {
    format!(
        "Secret (shown once, store it securely):\n\n    {secret}\n\n{}",
        describe_key(key)
    )
}

pub fn describe_key(key: &PreviewRow) -> String {
    [
        format!("id:             {}", key.id),
        format!("name:           {}", key.name),
        format!("project:        {}", key.project_id),
        format!("kind:           {}", key.kind.as_str()),
        format!("environment:    {}", key.environment.as_str()),
        format!("status:         {}", key.status.as_str()),
        format!("secret preview: {}", key.secret_preview),
        format!("scopes:         {}", key.scopes.join(", ")),
        format!("created:        {}", key.created_at.to_rfc3339()),
        format!("expires:        {}", time(key.expires_at)),
        format!("last used:      {}", time(key.last_used_at)),
        format!("revoked:        {}", time(key.revoked_at)),
        format!(
            "rotated from:   {}",
            key.rotated_from
                .as_ref()
                .map_or("-".into(), |id| id.to_string())
        ),
        format!(
            "rotated to:     {}",
            key.rotated_to
                .as_ref()
                .map_or("-".into(), |id| id.to_string())
        ),
    ]
    .join("\n")
}

pub fn key_lines(keys: &[PreviewRow], next_cursor: Option<&str>) -> String {
    let mut lines: Vec<String> = keys
        .iter()
        .map(|key| {
            format!(
                "{}  {:<8} {:<15} {:<11} {}  {}",
                key.id,
                key.status.as_str(),
                key.kind.as_str(),
                key.environment.as_str(),
                key.secret_preview,
                key.name
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push("no keys".into());
    }
    if let Some(cursor) = next_cursor {
        lines.push(format!("more: --cursor {cursor}"));
    }
    lines.join("\n")
}

pub fn audit_lines(events: &[AuditEvent], next_cursor: Option<&str>) -> String {
    let mut lines: Vec<String> = events
        .iter()
        .map(|event| {
            format!(
                "{}  {:<22} {}:{}  {}:{}  {}",
                event.at.to_rfc3339(),
                event.action.as_str(),
                event.actor.kind.as_str(),
                event.actor.id,
                event.target.kind,
                event.target.id,
                event.source_ip.as_deref().unwrap_or("-")
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push("no events".into());
    }
    if let Some(cursor) = next_cursor {
        lines.push(format!("more: --cursor {cursor}"));
    }
    lines.join("\n")
}

pub fn usage_text(report: &UsageReport) -> String {
    let mut lines = vec![format!(
        "{} verifications from {} to {}",
        report.total,
        report.from.to_rfc3339(),
        report.to.to_rfc3339()
    )];
    for (code, count) in &report.by_code {
        lines.push(format!("  {code:<30} {count}"));
    }
    lines.push("by action:".into());
    for (action, count) in &report.by_action {
        lines.push(format!("  {action:<30} {count}"));
    }
    lines.join("\n")
}
