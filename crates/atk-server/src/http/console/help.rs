//! Page Help without JavaScript: the widget's form posts here and the
//! answer comes back on a page of its own, with the widget showing it and a
//! link back to the page it is about. With JavaScript, `console.js` posts
//! the same form asking for JSON and shows the answer in place (the session
//! cookie stays scoped to `/console`).

use askama::Template;
use atk_core::access::Operation;
use atk_core::ids::{KeyId, ProjectId};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::form::Form;
use super::page::{HelpAnswerView, Layout, PageError, render};
use super::paths;
use super::session::Console;
use crate::help::{HelpError, sources};
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/help_answer.html")]
struct HelpAnswerPage {
    layout: Layout,
    back_href: Option<String>,
}

pub async fn ask(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let route = form.text("route");
    // A suggested question's button carries the question itself.
    let question = form
        .get("suggested")
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| form.text("question"));
    let project = ProjectId::parse(form.text("project_id"))
        .ok()
        .filter(|p| console.caller().principal.may(Operation::ReadProject, p));
    // "Answer from: Knowledge Hub" asks the global helper instead.
    let hub_mode = form.text("mode") == "hub";
    let answer = if hub_mode {
        state.help.ask_hub(question).0
    } else {
        let page_data = match &project {
            Some(project) if state.help.uses_page_data(route) => {
                let label = state.help.page_data_label(route);
                sources::page_data(&state.service, console.caller(), project, &label).await?
            }
            _ => Vec::new(),
        };
        state
            .help
            .ask(route, question, project.as_ref(), page_data)
            .map_err(|error| match error {
                HelpError::UnknownRoute(_) => PageError::BadRequest(error.to_string()),
            })?
            .0
    };
    if let (false, Some(project)) = (answer.in_scope, &project) {
        let gap_route = if hub_mode {
            crate::help::HUB_ROUTE
        } else {
            route
        };
        state
            .help_gaps
            .record(console.caller(), project, gap_route, question)
            .await;
    }
    // The widget's script asks for JSON: the answer in place, no page.
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if wants_json {
        return Ok(Json(answer).into_response());
    }
    let project_details = match &project {
        Some(id) => Some(state.service.get_project(console.caller(), id).await?),
        None => None,
    };
    let mut layout = console
        .layout_with_help(
            &state,
            "Page Help",
            project_details.as_ref().map(|p| (p, "help")),
            Some(route),
        )
        .await?;
    // Back to the key when the question came from a key's page.
    let key_id = KeyId::parse(form.text("key_id")).ok();
    let back_href = project.as_ref().and_then(|p| match &key_id {
        Some(key_id) => Some(paths::key(p, key_id.as_str())),
        None => state.help.console_path(route, p),
    });
    if let Some(widget) = layout.help.as_mut() {
        widget.key_id = key_id.map(|k| k.to_string());
    }
    if let Some(widget) = layout.help.as_mut() {
        widget.hub_mode = hub_mode;
        widget.answer = Some(HelpAnswerView {
            question: question.chars().take(1000).collect(),
            in_scope: answer.in_scope,
            text: answer.answer,
            source_labels: answer.sources.iter().map(|s| s.label.clone()).collect(),
            related: answer.related_surface.map(|r| (r.label, r.href)),
        });
    }
    render(&HelpAnswerPage { layout, back_href })
}
