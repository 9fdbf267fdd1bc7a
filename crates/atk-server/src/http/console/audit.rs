//! The project's audit log: newest first, filter by action, paging.

use askama::Template;
use atk_core::audit::AuditAction;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::form::{PagePath, PageQuery};
use super::page::parse_project;
use super::page::{Layout, PageError, render};
use super::paths;
use super::session::Console;
use crate::http::AppState;
use crate::service::ServiceError;

const PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    cursor: Option<String>,
}

struct EventRow {
    at: String,
    actor: String,
    action: &'static str,
    target: String,
    source_ip: String,
    details: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    actions: [AuditAction; AuditAction::ALL.len()],
    selected: Option<AuditAction>,
    events: Vec<EventRow>,
    href: String,
    next_href: Option<String>,
    first_page: bool,
}

impl AuditPage {
    fn is_selected(&self, action: &AuditAction) -> bool {
        self.selected == Some(*action)
    }
}

pub async fn audit_log(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
    PageQuery(query): PageQuery<AuditQuery>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    let project = state
        .service
        .get_project(console.caller(), &project_id)
        .await?;
    let selected = match query.action.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            AuditAction::parse(text)
                .ok_or_else(|| PageError::BadRequest("Choose an action from the list.".into()))?,
        ),
    };
    let page = state
        .service
        .list_audit(
            console.caller(),
            &project_id,
            selected,
            Some(PAGE_SIZE),
            query.cursor.as_deref(),
        )
        .await
        .map_err(|error| match error {
            ServiceError::InvalidField(_) => {
                PageError::BadRequest("That page of the audit log does not exist.".into())
            }
            other => other.into(),
        })?;
    let href = paths::audit(&project_id);
    let next_href = page.next_cursor.map(|cursor| {
        let action = selected.map_or(String::new(), |a| format!("action={}&", a.as_str()));
        format!("{href}?{action}cursor={cursor}")
    });
    render(&AuditPage {
        layout: console
            .layout_with_help(
                &state,
                "Audit log",
                Some((&project, "audit")),
                Some("/project-settings/audit"),
            )
            .await?,
        actions: AuditAction::ALL,
        selected,
        events: page
            .items
            .into_iter()
            .map(|event| EventRow {
                at: event.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                actor: format!("{}: {}", event.actor.kind.as_str(), event.actor.id),
                action: event.action.as_str(),
                target: format!("{} {}", event.target.kind, event.target.id),
                source_ip: event.source_ip.unwrap_or_else(|| "-".into()),
                details: event.details.to_string(),
            })
            .collect(),
        href,
        next_href,
        first_page: query.cursor.is_none(),
    })
}

/// The audit log with one event, for Page Help's page copy.
pub(super) fn sample_audit_page(help_route: &'static str) -> Result<String, askama::Error> {
    use askama::Template;
    let project_id = super::page::sample_project();
    let href = paths::audit(&project_id);
    AuditPage {
        layout: Layout {
            title: "Audit log".into(),
            help_route: Some(help_route.to_owned()),
            ..Layout::default()
        },
        actions: AuditAction::ALL,
        selected: None,
        events: vec![EventRow {
            at: "2026-06-07 22:30:00 UTC".into(),
            actor: "account: acc_sample".into(),
            action: AuditAction::KeyCreate.as_str(),
            target: "key key_sample".into(),
            source_ip: "127.0.0.1".into(),
            details: r#"{"name":"Backend Project API Key"}"#.into(),
        }],
        href,
        next_href: None,
        first_page: true,
    }
    .render()
}
