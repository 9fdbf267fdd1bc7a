//! API keys: the list (Project Settings / API Keys), the seven-step create
//! flow, the one-time reveal, key detail with usage and the lifecycle
//! actions (rotate, revoke, expire).
//!
//! The secret exists only in the body of the response to the create or
//! rotate post: never in a URL, a cookie or a log, and `no-store` keeps it
//! out of the browser cache. A resubmitted post (reload, back) finds its
//! one-time form nonce spent and gets a page without the secret.

use askama::Template;
use atk_core::Catalog;
use atk_core::access::Operation;
use atk_core::ids::ProjectId;
use atk_core::key::{Environment, Expiration, KeyKind, KeyStatus, PreviewRow};
use atk_core::lifecycle::Grace;
use atk_core::policy::{BlockedScope, Confirmation, KeyRequest, blocked_scopes};
use atk_core::usage::Granularity;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use super::chart::Chart;
use super::form::{Form, PagePath, PageQuery};
use super::page::parse_project;
use super::page::{FieldErrors, Layout, PageError, render};
use super::paths;
use super::projects::{ProductView, product_views};
use super::session::Console;
use crate::http::AppState;
use crate::service::{KeyFilter, ServiceError};

/// Keys expiring within this many days carry the "Expires soon" marker.
const EXPIRES_SOON_DAYS: i64 = 14;
const PAGE_SIZE: u32 = 25;
/// The help route id of the create flow (SPEC section 5).
pub const CREATE_FLOW_HELP_ROUTE: &str = "/project-settings/key-create";
/// The hidden field that makes a create or rotate form take effect once.
const NONCE_FIELD: &str = "form_nonce";

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Project => "Project API Key",
        KeyKind::ProductScoped => "Product-scoped API Key",
        KeyKind::AnalyticsRead => "Read-only Analytics Key",
        KeyKind::BackendSecret => "Backend Secret Key",
        KeyKind::ServiceRole => "Service Role Key",
    }
}

/// A preview row as pages show it.
pub struct RowView {
    pub id: String,
    pub href: String,
    pub project_id: String,
    pub name: String,
    pub kind: &'static str,
    /// Rotating needs the danger confirmation; revoking may cascade.
    pub service_role: bool,
    pub environment: &'static str,
    pub secret_preview: String,
    pub status: KeyStatus,
    pub created: String,
    pub expires: String,
    pub expires_soon: bool,
    pub last_used: String,
    pub revoked: Option<String>,
    pub scopes: Vec<(String, String)>,
    pub rotated_from: Option<(String, String)>,
    pub rotated_to: Option<(String, String)>,
}

impl RowView {
    pub fn new(row: &PreviewRow, now: DateTime<Utc>) -> Self {
        let catalog = Catalog::get();
        let link =
            |id: &atk_core::ids::KeyId| (id.to_string(), paths::key(&row.project_id, id.as_str()));
        Self {
            id: row.id.to_string(),
            href: paths::key(&row.project_id, row.id.as_str()),
            project_id: row.project_id.to_string(),
            name: row.name.clone(),
            kind: kind_name(row.kind),
            service_role: row.kind == KeyKind::ServiceRole,
            environment: row.environment.as_str(),
            secret_preview: row.secret_preview.clone(),
            status: row.status,
            created: time(row.created_at),
            expires: row.expires_at.map_or_else(|| "Never".to_owned(), time),
            expires_soon: row.status == KeyStatus::Active
                && row
                    .expires_at
                    .is_some_and(|at| at - now <= TimeDelta::days(EXPIRES_SOON_DAYS)),
            last_used: row.last_used_at.map_or_else(|| "Never".to_owned(), time),
            revoked: row.revoked_at.map(time),
            scopes: row
                .scopes
                .iter()
                .map(|scope| {
                    let product = catalog
                        .action(scope)
                        .map_or_else(String::new, |(p, _)| p.name.clone());
                    (product, scope.clone())
                })
                .collect(),
            rotated_from: row.rotated_from.as_ref().map(link),
            rotated_to: row.rotated_to.as_ref().map(link),
        }
    }

    pub fn status_label(&self) -> &'static str {
        match self.status {
            KeyStatus::Active => "Active",
            KeyStatus::Expired => "Expired",
            KeyStatus::Revoked => "Revoked",
        }
    }

    pub fn status_class(&self) -> &'static str {
        match self.status {
            KeyStatus::Active => "badge ok",
            KeyStatus::Expired => "badge warning",
            KeyStatus::Revoked => "badge danger",
        }
    }

    pub fn is_active(&self) -> bool {
        self.status == KeyStatus::Active
    }
}

// --- The list -------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    environment: Option<String>,
    kind: Option<String>,
    expiring: Option<String>,
    cursor: Option<String>,
}

/// A `<select>` option.
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

fn choices<T: Copy + PartialEq>(
    all: &[T],
    value: fn(T) -> &'static str,
    label: fn(T) -> &'static str,
    selected: Option<T>,
) -> Vec<Choice> {
    all.iter()
        .map(|item| Choice {
            value: value(*item),
            label: label(*item),
            selected: selected == Some(*item),
        })
        .collect()
}

fn status_label(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "Active",
        KeyStatus::Expired => "Expired",
        KeyStatus::Revoked => "Revoked",
    }
}

fn environment_label(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => "Production",
        Environment::Staging => "Staging",
        Environment::Development => "Development",
    }
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    layout: Layout,
    rows: Vec<RowView>,
    statuses: Vec<Choice>,
    environments: Vec<Choice>,
    kinds: Vec<Choice>,
    expiring: bool,
    href: String,
    new_key_href: Option<String>,
    next_href: Option<String>,
    first_page: bool,
    filtered: bool,
}

fn parse_filter<T>(
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> Result<Option<T>, PageError> {
    match raw {
        None | Some("") => Ok(None),
        Some(text) => parse(text)
            .map(Some)
            .ok_or_else(|| PageError::BadRequest(format!("Choose a {what} from the list."))),
    }
}

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
    PageQuery(query): PageQuery<ListQuery>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    let project = state
        .service
        .get_project(console.caller(), &project_id)
        .await?;
    let status = parse_filter(query.status.as_deref(), KeyStatus::parse, "status")?;
    let environment = parse_filter(
        query.environment.as_deref(),
        Environment::parse,
        "environment",
    )?;
    let kind = parse_filter(query.kind.as_deref(), KeyKind::parse, "kind")?;
    let expiring = query.expiring.as_deref() == Some("on");
    let filter = KeyFilter {
        status,
        environment,
        kind,
        expiring_within_days: expiring.then_some(EXPIRES_SOON_DAYS as u32),
        limit: Some(PAGE_SIZE),
        cursor: query.cursor.clone(),
    };
    let page = state
        .service
        .list_keys(console.caller(), &project_id, &filter)
        .await
        .map_err(|error| match error {
            ServiceError::InvalidField(_) => {
                PageError::BadRequest("That page of keys does not exist.".into())
            }
            other => other.into(),
        })?;
    let now = state.service.now();
    let href = paths::keys(&project_id);
    let mut params = Vec::new();
    if let Some(status) = status {
        params.push(format!("status={status}"));
    }
    if let Some(environment) = environment {
        params.push(format!("environment={environment}"));
    }
    if let Some(kind) = kind {
        params.push(format!("kind={kind}"));
    }
    if expiring {
        params.push("expiring=on".into());
    }
    let filtered = !params.is_empty();
    let next_href = page.next_cursor.map(|cursor| {
        let mut all = params.clone();
        all.push(format!("cursor={cursor}"));
        format!("{href}?{}", all.join("&"))
    });
    let may_create = console
        .caller()
        .principal
        .may(Operation::CreateKey(KeyKind::Project), &project_id);
    render(&KeysPage {
        layout: console
            .layout_with_help(
                &state,
                "API Keys",
                Some((&project, "keys")),
                Some("/project-settings/api-keys"),
            )
            .await?,
        rows: page
            .items
            .iter()
            .map(|row| RowView::new(row, now))
            .collect(),
        statuses: choices(&KeyStatus::ALL, KeyStatus::as_str, status_label, status),
        environments: choices(
            &Environment::ALL,
            Environment::as_str,
            environment_label,
            environment,
        ),
        kinds: choices(&KeyKind::ALL, KeyKind::as_str, kind_name, kind),
        expiring,
        new_key_href: may_create.then(|| paths::new_key(&project_id)),
        first_page: query.cursor.is_none(),
        href,
        next_href,
        filtered,
    })
}

// --- The create flow ------------------------------------------------------

/// What the create form holds (defaults, or what the user sent back).
#[derive(Debug, Clone)]
struct CreateForm {
    name: String,
    environment: Environment,
    kind: KeyKind,
    scopes: Vec<String>,
    expiration: Expiration,
    confirmations: Vec<Confirmation>,
}

impl Default for CreateForm {
    fn default() -> Self {
        Self {
            name: "Backend Project API Key".into(),
            environment: Environment::Production,
            kind: KeyKind::Project,
            scopes: Catalog::get().default_scopes(KeyKind::Project),
            expiration: Expiration::Days90,
            confirmations: Vec::new(),
        }
    }
}

impl CreateForm {
    /// Reads the posted form; unknown values become field errors.
    fn parse(form: &Form, errors: &mut FieldErrors) -> Self {
        let mut parsed = Self {
            name: form.text("name").to_owned(),
            scopes: form.all("scopes").into_iter().map(str::to_owned).collect(),
            confirmations: Vec::new(),
            ..Self::default()
        };
        match Environment::parse(form.text("environment")) {
            Some(environment) => parsed.environment = environment,
            None => errors.add("environment", "Choose production, staging or development."),
        }
        match KeyKind::parse(form.text("kind")) {
            Some(kind) => parsed.kind = kind,
            None => errors.add("kind", "Choose a key kind."),
        }
        match Expiration::parse(form.text("expiration")) {
            Some(expiration) => parsed.expiration = expiration,
            None => errors.add("expiration", "Choose an expiration."),
        }
        for id in form.all("confirmations") {
            match Confirmation::parse(id) {
                Some(confirmation) => parsed.confirmations.push(confirmation),
                None => errors.add("confirmations", "Unknown confirmation."),
            }
        }
        parsed
    }
}

struct KindOption {
    id: &'static str,
    name: String,
    badge: String,
    danger: bool,
    summary: String,
    default_use: String,
    checked: bool,
    may_create: bool,
    needs_danger_confirmation: bool,
}

struct ScopeOption {
    scope: String,
    product: String,
    description: String,
    checked: bool,
    entitlement_label: String,
    entitlement_class: &'static str,
    /// Space-separated kinds that allow this scope (for the script).
    kinds: String,
    /// Space-separated kinds that select this scope by default.
    default_for: String,
    /// Why Commerce blocks it today, if it does.
    blocked_reason: Option<String>,
}

struct ExpirationOption {
    id: &'static str,
    label: String,
    description: String,
    checked: bool,
    recommended: bool,
}

struct ConfirmationOption {
    id: &'static str,
    text: String,
    severity: String,
    checked: bool,
    service_role_only: bool,
}

#[derive(Template)]
#[template(path = "console/key_new.html")]
struct CreatePage {
    layout: Layout,
    csrf: String,
    nonce: String,
    action: String,
    keys_href: String,
    project_id: ProjectId,
    name: String,
    environments: Vec<Choice>,
    kinds: Vec<KindOption>,
    scopes: Vec<ScopeOption>,
    products: Vec<ProductView>,
    blocked: Vec<(String, String)>,
    expirations: Vec<ExpirationOption>,
    confirmations: Vec<ConfirmationOption>,
    errors: FieldErrors,
}

async fn create_page(
    state: &AppState,
    console: &Console,
    project_id: &ProjectId,
    form: &CreateForm,
    errors: FieldErrors,
) -> Result<CreatePage, PageError> {
    let project = state
        .service
        .get_project(console.caller(), project_id)
        .await?;
    let entitlements = state
        .service
        .list_entitlements(console.caller(), project_id)
        .await?;
    let layout = console
        .layout_with_help(
            state,
            "Create key",
            Some((&project, "keys")),
            Some(CREATE_FLOW_HELP_ROUTE),
        )
        .await?;
    Ok(create_view(CreateView {
        layout,
        csrf: console.csrf.clone(),
        principal: &console.caller().principal,
        project_id,
        entitlements: &entitlements,
        now: state.service.now(),
        form,
        errors,
    }))
}

/// What the create page is made of, besides the catalog.
struct CreateView<'a> {
    layout: Layout,
    csrf: String,
    principal: &'a atk_core::access::Principal,
    project_id: &'a ProjectId,
    entitlements: &'a [atk_core::entitlement::Entitlement],
    now: DateTime<Utc>,
    form: &'a CreateForm,
    errors: FieldErrors,
}

/// The create page from its parts (no I/O: Page Help renders it too).
fn create_view(view: CreateView<'_>) -> CreatePage {
    let CreateView {
        layout,
        csrf,
        principal,
        project_id,
        entitlements,
        now,
        form,
        errors,
    } = view;
    let catalog = Catalog::get();
    let blocked_now = blocked_scopes(catalog, &form.scopes, entitlements, now);
    let all_scopes: Vec<String> = catalog
        .products
        .iter()
        .flat_map(|p| p.actions.iter().map(|a| a.scope.clone()))
        .collect();
    let every_blocked = blocked_scopes(catalog, &all_scopes, entitlements, now);
    let products = product_views(entitlements, now);
    CreatePage {
        layout,
        csrf,
        nonce: atk_core::secret::random_base62(32),
        action: paths::keys(project_id),
        keys_href: paths::keys(project_id),
        project_id: project_id.clone(),
        name: form.name.clone(),
        environments: choices(
            &Environment::ALL,
            Environment::as_str,
            Environment::as_str,
            Some(form.environment),
        ),
        kinds: catalog
            .kinds
            .iter()
            .map(|info| KindOption {
                id: info.id.as_str(),
                name: info.name.clone(),
                badge: info.badge.clone(),
                danger: info.administers_project,
                summary: info.summary.clone(),
                default_use: info.default_use.clone(),
                checked: info.id == form.kind,
                may_create: principal.may(Operation::CreateKey(info.id), project_id),
                needs_danger_confirmation: !info.extra_confirmations.is_empty(),
            })
            .collect(),
        scopes: catalog
            .products
            .iter()
            .flat_map(|product| {
                let view = products.iter().find(|v| v.id == product.id);
                product
                    .actions
                    .iter()
                    .map(move |action| (product, action, view))
            })
            .map(|(product, action, view)| {
                let allowed: Vec<&str> = KeyKind::ALL
                    .into_iter()
                    .filter(|kind| catalog.kind_allows(*kind, &action.scope))
                    .map(KeyKind::as_str)
                    .collect();
                let default_for: Vec<&str> = KeyKind::ALL
                    .into_iter()
                    .filter(|kind| catalog.default_scopes(*kind).contains(&action.scope))
                    .map(KeyKind::as_str)
                    .collect();
                ScopeOption {
                    scope: action.scope.clone(),
                    product: product.name.clone(),
                    description: action.description.clone(),
                    checked: form.scopes.contains(&action.scope),
                    entitlement_label: view.map_or_else(|| "Disabled".into(), ProductView::label),
                    entitlement_class: view.map_or("badge danger", ProductView::badge_class),
                    kinds: allowed.join(" "),
                    default_for: default_for.join(" "),
                    blocked_reason: every_blocked
                        .iter()
                        .find(|b| b.scope == action.scope)
                        .map(|b| b.reason(catalog)),
                }
            })
            .collect(),
        products,
        blocked: reasons(&blocked_now),
        expirations: catalog
            .expirations
            .iter()
            .map(|info| ExpirationOption {
                id: info.id.as_str(),
                label: info.label.clone(),
                description: info.description.clone(),
                checked: info.id == form.expiration,
                recommended: info.id == Expiration::default(),
            })
            .collect(),
        confirmations: catalog
            .confirmations
            .iter()
            .map(|info| ConfirmationOption {
                id: info.id.as_str(),
                text: info.text.clone(),
                severity: info.severity.clone(),
                checked: form.confirmations.contains(&info.id),
                service_role_only: !info.every_kind,
            })
            .collect(),
        errors,
    }
}

fn reasons(blocked: &[BlockedScope]) -> Vec<(String, String)> {
    blocked
        .iter()
        .map(|b| (b.scope.clone(), b.reason(Catalog::get())))
        .collect()
}

pub async fn new_key(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    console
        .caller()
        .authorize(Operation::CreateKey(KeyKind::Project), Some(&project_id))?;
    let page = create_page(
        &state,
        &console,
        &project_id,
        &CreateForm::default(),
        FieldErrors::default(),
    )
    .await?;
    render(&page)
}

/// The one-time reveal: steps 6 and 7 after a create, or a rotation's.
#[derive(Template)]
#[template(path = "console/key_reveal.html")]
struct RevealPage {
    layout: Layout,
    heading: &'static str,
    secret: String,
    row: RowView,
    blocked: Vec<(String, String)>,
    previous: Option<RowView>,
    keys_href: String,
}

#[derive(Template)]
#[template(path = "console/already_done.html")]
struct AlreadyDonePage {
    layout: Layout,
    keys_href: String,
}

/// Claims the form's one-time nonce; a second submission of the same form
/// gets a page that says the secret was shown once and will not be again.
async fn claim_nonce(
    state: &AppState,
    console: &Console,
    form: &Form,
    project_id: &ProjectId,
) -> Result<Option<Response>, PageError> {
    let nonce = form.text(NONCE_FIELD);
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(PageError::BadRequest(
            "The form is incomplete. Reload the page and try again.".into(),
        ));
    }
    if state.accounts.claim_form(nonce).await? {
        return Ok(None);
    }
    let project = state
        .service
        .get_project(console.caller(), project_id)
        .await?;
    let mut response = render(&AlreadyDonePage {
        layout: console
            .layout(state, "Already submitted", Some((&project, "keys")))
            .await?,
        keys_href: paths::keys(project_id),
    })?;
    *response.status_mut() = StatusCode::CONFLICT;
    Ok(Some(response))
}

pub async fn create(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
    form: Form,
) -> Result<Response, PageError> {
    let project_id = console.post_to(&form, &project_id, Operation::CreateKey(KeyKind::Project))?;
    let mut errors = FieldErrors::default();
    let parsed = CreateForm::parse(&form, &mut errors);
    if errors.is_empty() {
        if let Some(done) = claim_nonce(&state, &console, &form, &project_id).await? {
            return Ok(done);
        }
        let request = KeyRequest {
            kind: Some(parsed.kind),
            environment: Some(parsed.environment),
            scopes: Some(parsed.scopes.clone()),
            expiration: Some(parsed.expiration),
            confirmations: parsed.confirmations.clone(),
            ..KeyRequest::default()
        };
        match state
            .service
            .create_key(console.caller(), &project_id, &parsed.name, &request)
            .await
        {
            Ok(created) => {
                let project = state
                    .service
                    .get_project(console.caller(), &project_id)
                    .await?;
                let layout = console
                    .layout_with_help(
                        &state,
                        "Key created",
                        Some((&project, "keys")),
                        Some(CREATE_FLOW_HELP_ROUTE),
                    )
                    .await?;
                let page = RevealPage {
                    layout,
                    heading: "Key created",
                    secret: created.secret.expose().to_owned(),
                    row: RowView::new(&created.key, state.service.now()),
                    blocked: reasons(&created.blocked_scopes),
                    previous: None,
                    keys_href: paths::keys(&project_id),
                };
                let mut response = render(&page)?;
                *response.status_mut() = StatusCode::CREATED;
                return Ok(response);
            }
            Err(error) => errors = FieldErrors::from_service(error)?,
        }
    }
    let page = create_page(&state, &console, &project_id, &parsed, errors).await?;
    let mut response = render(&page)?;
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

// --- Key detail and lifecycle ---------------------------------------------

#[derive(Debug, Deserialize)]
pub struct DetailQuery {
    /// `day` for 30 days by day; default 24 hours by hour.
    window: Option<String>,
}

struct GraceOption {
    id: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "console/key_detail.html")]
struct DetailPage {
    layout: Layout,
    csrf: String,
    nonce: String,
    row: RowView,
    chain: Vec<RowView>,
    chart: Chart,
    by_day: bool,
    hour_href: String,
    day_href: String,
    may_manage: bool,
    may_rotate: bool,
    rotate_href: String,
    revoke_href: String,
    expire_href: String,
    graces: Vec<GraceOption>,
    errors: FieldErrors,
    reason: String,
}

fn grace_label(grace: Grace) -> &'static str {
    match grace {
        Grace::None => "No grace: the old key ends now",
        Grace::Hour1 => "1 hour",
        Grace::Hours24 => "24 hours",
        Grace::Days7 => "7 days",
    }
}

async fn detail_page(
    state: &AppState,
    console: &Console,
    project_id: &ProjectId,
    key_id: &str,
    by_day: bool,
    errors: FieldErrors,
    reason: String,
) -> Result<Response, PageError> {
    let project = state
        .service
        .get_project(console.caller(), project_id)
        .await?;
    let key = state
        .service
        .get_key(console.caller(), project_id, key_id)
        .await?;
    let now = state.service.now();
    // The rotation chain, oldest first: walk back, then forward (bounded).
    let mut chain = vec![key.clone()];
    while let Some(previous) = chain.first().and_then(|k| k.rotated_from.clone()) {
        if chain.len() >= 20 {
            break;
        }
        match state
            .service
            .get_key(console.caller(), project_id, previous.as_str())
            .await
        {
            Ok(row) => chain.insert(0, row),
            Err(_) => break,
        }
    }
    while let Some(next) = chain.last().and_then(|k| k.rotated_to.clone()) {
        if chain.len() >= 40 {
            break;
        }
        match state
            .service
            .get_key(console.caller(), project_id, next.as_str())
            .await
        {
            Ok(row) => chain.push(row),
            Err(_) => break,
        }
    }
    let granularity = if by_day {
        Granularity::Day
    } else {
        Granularity::Hour
    };
    let usage = state
        .service
        .key_usage(
            console.caller(),
            project_id,
            key_id,
            None,
            None,
            Some(granularity),
        )
        .await?;
    let href = paths::key(project_id, key_id);
    let errors_present = !errors.is_empty();
    let mut layout = console
        .layout_with_help(
            state,
            key.name.clone(),
            Some((&project, "keys")),
            Some("/project-settings/key-detail"),
        )
        .await?;
    if let Some(help) = layout.help.as_mut() {
        // The widget's answer page links back to this key, not the list.
        help.key_id = Some(key_id.to_owned());
    }
    let mut response = render(&DetailPage {
        layout,
        csrf: console.csrf.clone(),
        nonce: atk_core::secret::random_base62(32),
        chain: if chain.len() > 1 {
            chain.iter().map(|row| RowView::new(row, now)).collect()
        } else {
            Vec::new()
        },
        row: RowView::new(&key, now),
        chart: Chart::new(&usage),
        by_day,
        hour_href: href.clone(),
        day_href: format!("{href}?window=day"),
        may_manage: console
            .caller()
            .principal
            .may(Operation::ManageKeys, project_id),
        // Rotating hands out a new secret of the key's kind.
        may_rotate: console
            .caller()
            .principal
            .may(Operation::CreateKey(key.kind), project_id),
        rotate_href: paths::rotate(project_id, key_id),
        revoke_href: paths::revoke(project_id, key_id),
        expire_href: paths::expire(project_id, key_id),
        graces: Grace::ALL
            .into_iter()
            .map(|grace| GraceOption {
                id: grace.as_str(),
                label: grace_label(grace),
            })
            .collect(),
        errors,
        reason,
    })?;
    if errors_present {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

/// Key detail again after a refused lifecycle form, with each error next
/// to its field (422) and the reason the user typed kept.
async fn detail_with_errors(
    state: &AppState,
    console: &Console,
    project_id: &ProjectId,
    key_id: &str,
    errors: FieldErrors,
    reason: String,
) -> Result<Response, PageError> {
    detail_page(state, console, project_id, key_id, false, errors, reason).await
}

pub async fn detail(
    State(state): State<AppState>,
    console: Console,
    PagePath((project_id, key_id)): PagePath<(String, String)>,
    PageQuery(query): PageQuery<DetailQuery>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    let by_day = query.window.as_deref() == Some("day");
    detail_page(
        &state,
        &console,
        &project_id,
        &key_id,
        by_day,
        FieldErrors::default(),
        String::new(),
    )
    .await
}

pub async fn rotate(
    State(state): State<AppState>,
    console: Console,
    PagePath((project_id, key_id)): PagePath<(String, String)>,
    form: Form,
) -> Result<Response, PageError> {
    let project_id = console.post_to(&form, &project_id, Operation::ManageKeys)?;
    let Some(grace) = Grace::parse(form.text("grace")) else {
        let errors = FieldErrors::one("grace", "Choose how long the old key keeps working.");
        return detail_with_errors(
            &state,
            &console,
            &project_id,
            &key_id,
            errors,
            String::new(),
        )
        .await;
    };
    if let Some(done) = claim_nonce(&state, &console, &form, &project_id).await? {
        return Ok(done);
    }
    let confirmations: Vec<Confirmation> = form
        .all("confirmations")
        .into_iter()
        .filter_map(Confirmation::parse)
        .collect();
    match state
        .service
        .rotate_key(
            console.caller(),
            &project_id,
            &key_id,
            grace,
            &confirmations,
        )
        .await
    {
        Ok(rotated) => {
            let project = state
                .service
                .get_project(console.caller(), &project_id)
                .await?;
            let now = state.service.now();
            let page = RevealPage {
                layout: console
                    .layout_with_help(
                        &state,
                        "Key rotated",
                        Some((&project, "keys")),
                        Some("/project-settings/key-detail"),
                    )
                    .await?,
                heading: "Key rotated",
                secret: rotated.secret.expose().to_owned(),
                row: RowView::new(&rotated.key, now),
                blocked: Vec::new(),
                previous: Some(RowView::new(&rotated.previous, now)),
                keys_href: paths::keys(&project_id),
            };
            let mut response = render(&page)?;
            *response.status_mut() = StatusCode::CREATED;
            Ok(response)
        }
        Err(error @ (ServiceError::Policy(_) | ServiceError::InvalidField(_))) => {
            let errors = FieldErrors::from_service(error)?;
            detail_with_errors(
                &state,
                &console,
                &project_id,
                &key_id,
                errors,
                String::new(),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    console: Console,
    PagePath((project_id, key_id)): PagePath<(String, String)>,
    form: Form,
) -> Result<Response, PageError> {
    let project_id = console.post_to(&form, &project_id, Operation::ManageKeys)?;
    let key = state
        .service
        .get_key(console.caller(), &project_id, &key_id)
        .await?;
    let reason = form.text("reason").to_owned();
    if form.text("confirm_name").trim() != key.name {
        let errors = FieldErrors::one(
            "confirm_name",
            format!("Type the key name, {}, to confirm.", key.name),
        );
        return detail_with_errors(&state, &console, &project_id, &key_id, errors, reason).await;
    }
    let reason_given = (!reason.trim().is_empty()).then_some(reason.as_str());
    match state
        .service
        .revoke_key(
            console.caller(),
            &project_id,
            &key_id,
            reason_given,
            form.text("cascade") == "yes",
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&paths::key(&project_id, &key_id)).into_response()),
        Err(error @ ServiceError::InvalidField(_)) => {
            let errors = FieldErrors::from_service(error)?;
            detail_with_errors(&state, &console, &project_id, &key_id, errors, reason).await
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn expire(
    State(state): State<AppState>,
    console: Console,
    PagePath((project_id, key_id)): PagePath<(String, String)>,
    form: Form,
) -> Result<Response, PageError> {
    let project_id = console.post_to(&form, &project_id, Operation::ManageKeys)?;
    if form.get("confirm_expire") != Some("yes") {
        let errors = FieldErrors::one(
            "confirm_expire",
            "Confirm that the key should stop working now.",
        );
        return detail_with_errors(
            &state,
            &console,
            &project_id,
            &key_id,
            errors,
            String::new(),
        )
        .await;
    }
    state
        .service
        .expire_key(console.caller(), &project_id, &key_id)
        .await?;
    Ok(Redirect::to(&paths::key(&project_id, &key_id)).into_response())
}

// --- Samples for Page Help ------------------------------------------------
//
// Page Help quotes each page's copy as it renders: these are the same
// templates with sample data (the demo project, its initial entitlements,
// an invented key) and never a secret.

use super::page::{sample_now, sample_project};

fn sample_row(now: DateTime<Utc>) -> PreviewRow {
    PreviewRow {
        id: atk_core::ids::KeyId::generate(),
        project_id: sample_project(),
        name: "Backend Project API Key".into(),
        kind: KeyKind::Project,
        environment: Environment::Production,
        scopes: Catalog::get().default_scopes(KeyKind::Project),
        secret_preview: "atk_live_...x7Kq2B".into(),
        status: KeyStatus::Active,
        created_at: now,
        expires_at: Some(now + TimeDelta::days(90)),
        last_used_at: None,
        revoked_at: None,
        rotated_from: None,
        rotated_to: None,
        allowed_ips: Vec::new(),
        rate_limit: None,
    }
}

fn sample_layout(title: &str, help_route: &'static str) -> Layout {
    Layout {
        title: title.into(),
        help_route: Some(help_route.to_owned()),
        ..Layout::default()
    }
}

pub(super) fn sample_create_page() -> Result<String, askama::Error> {
    let now = sample_now();
    let project = sample_project();
    let entitlements = atk_core::project::initial_entitlements(Catalog::get(), now);
    create_view(CreateView {
        layout: sample_layout("Create key", CREATE_FLOW_HELP_ROUTE),
        csrf: String::new(),
        principal: &atk_core::access::Principal::PlatformAdmin,
        project_id: &project,
        entitlements: &entitlements,
        now,
        form: &CreateForm::default(),
        errors: FieldErrors::default(),
    })
    .render()
}

pub(super) fn sample_list_page(help_route: &'static str) -> Result<String, askama::Error> {
    let now = sample_now();
    let project = sample_project();
    KeysPage {
        layout: sample_layout("API Keys", help_route),
        rows: vec![RowView::new(&sample_row(now), now)],
        statuses: choices(&KeyStatus::ALL, KeyStatus::as_str, status_label, None),
        environments: choices(
            &Environment::ALL,
            Environment::as_str,
            environment_label,
            None,
        ),
        kinds: choices(&KeyKind::ALL, KeyKind::as_str, kind_name, None),
        expiring: false,
        href: paths::keys(&project),
        new_key_href: Some(paths::new_key(&project)),
        next_href: None,
        first_page: true,
        filtered: false,
    }
    .render()
}

pub(super) fn sample_detail_page(help_route: &'static str) -> Result<String, askama::Error> {
    let now = sample_now();
    let project = sample_project();
    let row = sample_row(now);
    let usage = atk_core::usage::summarize(&[], now - TimeDelta::hours(24), now, Granularity::Hour);
    let href = paths::key(&project, row.id.as_str());
    DetailPage {
        layout: sample_layout(&row.name, help_route),
        csrf: String::new(),
        nonce: String::new(),
        chain: Vec::new(),
        chart: Chart::new(&usage),
        by_day: false,
        hour_href: href.clone(),
        day_href: format!("{href}?window=day"),
        may_manage: true,
        may_rotate: true,
        rotate_href: paths::rotate(&project, row.id.as_str()),
        revoke_href: paths::revoke(&project, row.id.as_str()),
        expire_href: paths::expire(&project, row.id.as_str()),
        graces: Grace::ALL
            .into_iter()
            .map(|grace| GraceOption {
                id: grace.as_str(),
                label: grace_label(grace),
            })
            .collect(),
        errors: FieldErrors::default(),
        reason: String::new(),
        row: RowView::new(&row, now),
    }
    .render()
}
