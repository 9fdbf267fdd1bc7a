//! The console's entry, the project switcher and the entitlements page.

use askama::Template;
use atk_core::Catalog;
use atk_core::entitlement::{Entitlement, EntitlementStatus, blocks, describe};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::accounts::parse_project;
use super::page::{Layout, PageError, render};
use super::paths;
use super::session::Console;
use crate::http::AppState;

#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    /// From the project switcher.
    project: Option<String>,
}

#[derive(Template)]
#[template(path = "console/no_projects.html")]
struct NoProjectsPage {
    layout: Layout,
}

/// `/console`: the chosen (or first visible) project's keys.
pub async fn home(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<HomeQuery>,
) -> Result<Response, PageError> {
    let visible = state.service.list_projects(console.caller()).await?;
    let chosen = query
        .project
        .as_deref()
        .and_then(|wanted| visible.iter().find(|p| p.project_id.as_str() == wanted))
        .or_else(|| visible.first());
    match chosen {
        Some(project) => Ok(Redirect::to(&paths::keys(&project.project_id)).into_response()),
        None => render(&NoProjectsPage {
            layout: console.layout(&state, "No projects", None).await?,
        }),
    }
}

pub async fn project_home(Path(project_id): Path<String>) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    Ok(Redirect::to(&paths::keys(&project_id)).into_response())
}

/// A product and its entitlement, as pages show it.
pub struct ProductView {
    pub id: String,
    pub name: String,
    pub status: EntitlementStatus,
    pub note: String,
    pub blocks: bool,
    pub scopes: Vec<String>,
}

impl ProductView {
    pub fn badge_class(&self) -> &'static str {
        match self.status {
            EntitlementStatus::Enabled => "badge ok",
            EntitlementStatus::Trial if self.blocks => "badge danger",
            EntitlementStatus::Trial => "badge info",
            EntitlementStatus::UpgradeRequired => "badge warning",
            EntitlementStatus::Disabled => "badge danger",
        }
    }

    pub fn label(&self) -> String {
        if self.status == EntitlementStatus::Trial && self.blocks {
            "Trial ended".into()
        } else {
            self.status.label().into()
        }
    }
}

pub fn product_views(
    entitlements: &[Entitlement],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<ProductView> {
    Catalog::get()
        .products
        .iter()
        .map(|product| {
            let entitlement = entitlements.iter().find(|e| e.product == product.id);
            ProductView {
                id: product.id.clone(),
                name: product.name.clone(),
                status: entitlement.map_or(EntitlementStatus::Disabled, |e| e.status),
                note: describe(product, entitlement, now),
                blocks: blocks(entitlement, now).is_some(),
                scopes: product.actions.iter().map(|a| a.scope.clone()).collect(),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/entitlements.html")]
struct EntitlementsPage {
    layout: Layout,
    products: Vec<ProductView>,
}

pub async fn entitlements(
    State(state): State<AppState>,
    console: Console,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    let project = state
        .service
        .get_project(console.caller(), &project_id)
        .await?;
    let entitlements = state
        .service
        .list_entitlements(console.caller(), &project_id)
        .await?;
    render(&EntitlementsPage {
        layout: console
            .layout(
                &state,
                "Commerce entitlements",
                Some((&project, "entitlements")),
            )
            .await?,
        products: product_views(&entitlements, state.service.now()),
    })
}
