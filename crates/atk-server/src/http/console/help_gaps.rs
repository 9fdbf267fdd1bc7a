//! Help coverage: the questions Page Help and the Knowledge Hub answered
//! with the fallback in this project, most asked first, for owners to pass
//! to whoever writes the docs.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::form::PagePath;
use super::page::{Layout, PageError, parse_project, render};
use super::session::Console;
use crate::help::HUB_ROUTE;
use crate::http::AppState;

struct GapRow {
    place: String,
    question: Option<String>,
    asked: u64,
    last_asked: String,
}

#[derive(Template)]
#[template(path = "console/help_gaps.html")]
struct HelpGapsPage {
    layout: Layout,
    gaps: Vec<GapRow>,
    listed: u32,
}

pub async fn help_gaps(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    let project = state
        .service
        .get_project(console.caller(), &project_id)
        .await?;
    let gaps = state.help_gaps.list(console.caller(), &project_id).await?;
    let place = |route: &str| {
        if route == HUB_ROUTE {
            return "Knowledge Hub".to_owned();
        }
        state
            .help
            .route_info(route)
            .map_or_else(|| route.to_owned(), |info| info.title)
    };
    render(&HelpGapsPage {
        layout: console
            .layout_with_help(&state, "Help coverage", Some((&project, "help-gaps")), None)
            .await?,
        gaps: gaps
            .into_iter()
            .map(|gap| GapRow {
                place: place(&gap.route),
                question: gap.question,
                asked: gap.asked,
                last_asked: gap.last_asked_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
            .collect(),
        listed: crate::service::LISTED_GAPS,
    })
}
