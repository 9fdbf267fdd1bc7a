//! The console's entry, the project switcher and the entitlements page.

use askama::Template;
use atk_core::Catalog;
use atk_core::access::Operation;
use atk_core::entitlement::{Entitlement, EntitlementStatus, blocks, describe};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike, NaiveDate, NaiveTime};
use serde::Deserialize;

use super::form::{Form, PagePath, PageQuery};
use super::page::parse_project;
use super::page::{Layout, PageError, render};
use super::paths;
use super::session::Console;
use crate::http::AppState;
use crate::service::ServiceError;

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
    PageQuery(query): PageQuery<HomeQuery>,
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

pub async fn project_home(PagePath(project_id): PagePath<String>) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    Ok(Redirect::to(&paths::keys(&project_id)).into_response())
}

/// A product and its entitlement, as pages show it.
pub struct ProductView {
    pub id: String,
    pub name: String,
    pub status: EntitlementStatus,
    /// A trial's end as `YYYY-MM-DD` (UTC), for the change form.
    pub trial_ends_on: String,
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
                trial_ends_on: entitlement
                    .and_then(|e| e.trial_ends_at)
                    .map(|at| at.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
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
    project_id: atk_core::ids::ProjectId,
    csrf: String,
    products: Vec<ProductView>,
    /// Platform admins (standing for Commerce) change entitlements here.
    may_change: bool,
    statuses: [EntitlementStatus; 4],
    /// The product whose change was refused, and why.
    error: Option<(String, String)>,
}

impl EntitlementsPage {
    fn change_href(&self, product: &ProductView) -> String {
        paths::entitlement(&self.project_id, &product.id)
    }

    fn error_for(&self, product: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(id, _)| id == product)
            .map(|(_, message)| message.as_str())
    }
}

impl ProductView {
    fn has_status(&self, status: &EntitlementStatus) -> bool {
        self.status == *status
    }
}

async fn entitlements_page(
    state: &AppState,
    console: &Console,
    project_id: &atk_core::ids::ProjectId,
    error: Option<(String, String)>,
) -> Result<Response, PageError> {
    let project = state
        .service
        .get_project(console.caller(), project_id)
        .await?;
    let entitlements = state
        .service
        .list_entitlements(console.caller(), project_id)
        .await?;
    let failed = error.is_some();
    let mut response = render(&EntitlementsPage {
        layout: console
            .layout_with_help(
                state,
                "Commerce entitlements",
                Some((&project, "entitlements")),
                Some("/project-settings/entitlements"),
            )
            .await?,
        project_id: project_id.clone(),
        csrf: console.csrf.clone(),
        products: product_views(&entitlements, state.service.now()),
        may_change: console
            .caller()
            .principal
            .may(Operation::ChangeEntitlements, project_id),
        statuses: [
            EntitlementStatus::Enabled,
            EntitlementStatus::Trial,
            EntitlementStatus::UpgradeRequired,
            EntitlementStatus::Disabled,
        ],
        error,
    })?;
    if failed {
        *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

pub async fn entitlements(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    entitlements_page(&state, &console, &project_id, None).await
}

/// A platform admin changes one product's entitlement (audited like the
/// API's `PUT …/entitlements/{product}`).
pub async fn change_entitlement(
    State(state): State<AppState>,
    console: Console,
    PagePath((project_id, product)): PagePath<(String, String)>,
    form: Form,
) -> Result<Response, PageError> {
    let project_id = console.post_to(&form, &project_id, Operation::ChangeEntitlements)?;
    let refuse = |message: &str| Some((product.clone(), message.to_owned()));
    let Some(status) = EntitlementStatus::parse(form.text("status")) else {
        return entitlements_page(&state, &console, &project_id, refuse("Choose a status.")).await;
    };
    let trial_ends_at = match form.text("trial_ends_on").trim() {
        "" => None,
        date => match NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            // The API's times are RFC 3339, which has four-digit years.
            Ok(day) if (1970..=9999).contains(&day.year()) => {
                Some(day.and_time(NaiveTime::MIN).and_utc())
            }
            _ => {
                let message = refuse("Enter the end of the trial as a date like 2027-01-31.");
                return entitlements_page(&state, &console, &project_id, message).await;
            }
        },
    };
    match state
        .service
        .put_entitlement(
            console.caller(),
            &project_id,
            &product,
            status,
            trial_ends_at,
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&paths::entitlements(&project_id)).into_response()),
        Err(ServiceError::InvalidField(field)) => {
            let message = if field.field == "trial_ends_at" {
                "Only a trial has an end date.".to_owned()
            } else {
                field.message
            };
            entitlements_page(&state, &console, &project_id, refuse(&message)).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The entitlements page with the initial table, for Page Help's page copy.
pub(super) fn sample_entitlements_page(help_route: &'static str) -> Result<String, askama::Error> {
    use askama::Template;
    let now = super::page::sample_now();
    let project_id = super::page::sample_project();
    EntitlementsPage {
        layout: Layout {
            title: "Commerce entitlements".into(),
            help_route: Some(help_route.to_owned()),
            ..Layout::default()
        },
        project_id,
        csrf: String::new(),
        products: product_views(
            &atk_core::project::initial_entitlements(Catalog::get(), now),
            now,
        ),
        may_change: false,
        statuses: [
            EntitlementStatus::Enabled,
            EntitlementStatus::Trial,
            EntitlementStatus::UpgradeRequired,
            EntitlementStatus::Disabled,
        ],
        error: None,
    }
    .render()
}
