//! What every console page needs: the layout (who is signed in, which
//! project, navigation), rendering, HTML error pages and the security
//! headers.

use askama::Template;
use atk_core::ids::ProjectId;
use atk_core::project::Project;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::paths;
use crate::service::ServiceError;

/// The Content-Security-Policy of every console page: only our own script
/// and stylesheet, no inline code or style, no framing, forms post only
/// back to us.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A project id from a console path; one that cannot be a project id
/// names no page.
pub fn parse_project(raw: &str) -> Result<ProjectId, PageError> {
    ProjectId::parse(raw).map_err(|_| PageError::NotFound("There is no such project.".into()))
}

/// One entry of the project switcher.
#[derive(Debug, Clone)]
pub struct ProjectLink {
    pub id: ProjectId,
    pub name: String,
    pub current: bool,
}

/// The part of every page around its content.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub title: String,
    /// Signed in: the account's name, and the CSRF token for the sign-out form.
    pub user: Option<UserBar>,
    /// Inside a project: the navigation.
    pub project: Option<ProjectNav>,
    /// The Page Help route id of this page, when it has one.
    pub help_route: Option<String>,
    /// The Page Help widget, on signed-in pages that have a help route.
    pub help: Option<HelpWidget>,
}

/// The Page Help widget as a page shows it: suggested questions, a
/// question box, the allowed sources and, after a question, the answer.
#[derive(Debug, Clone)]
pub struct HelpWidget {
    pub route: String,
    pub title: String,
    pub surface: String,
    pub platform_step: String,
    pub suggested: Vec<String>,
    pub sources: Vec<crate::help::SourceEntry>,
    pub project_id: String,
    pub csrf: String,
    pub answer: Option<HelpAnswerView>,
    /// The question was for the Knowledge Hub, not this page.
    pub hub_mode: bool,
    /// The key a key's page is about, so the answer links back to it.
    pub key_id: Option<String>,
}

/// An answer in the widget.
#[derive(Debug, Clone)]
pub struct HelpAnswerView {
    pub question: String,
    pub in_scope: bool,
    pub text: String,
    pub source_labels: Vec<String>,
    pub related: Option<(String, String)>,
}

impl HelpWidget {
    pub fn action(&self) -> &'static str {
        paths::HELP
    }
}

#[derive(Debug, Clone)]
pub struct UserBar {
    pub display_name: String,
    pub email: String,
    pub csrf: String,
}

#[derive(Debug, Clone)]
pub struct ProjectNav {
    pub id: ProjectId,
    pub name: String,
    pub switcher: Vec<ProjectLink>,
    /// `keys`, `entitlements`, `members`, `audit` or `help-gaps`.
    pub active: &'static str,
    /// Owners see Page Help's unanswered questions.
    pub shows_help_gaps: bool,
}

impl ProjectNav {
    pub fn new(
        project: &Project,
        visible: &[Project],
        active: &'static str,
        shows_help_gaps: bool,
    ) -> Self {
        Self {
            id: project.project_id.clone(),
            name: project.name.to_string(),
            switcher: visible
                .iter()
                .map(|p| ProjectLink {
                    id: p.project_id.clone(),
                    name: p.name.to_string(),
                    current: p.project_id == project.project_id,
                })
                .collect(),
            active,
            shows_help_gaps,
        }
    }

    pub fn keys_href(&self) -> String {
        paths::keys(&self.id)
    }
    pub fn entitlements_href(&self) -> String {
        paths::entitlements(&self.id)
    }
    pub fn members_href(&self) -> String {
        paths::members(&self.id)
    }
    pub fn audit_href(&self) -> String {
        paths::audit(&self.id)
    }
    pub fn help_gaps_href(&self) -> String {
        paths::help_gaps(&self.id)
    }
    pub fn is(&self, item: &str) -> bool {
        self.active == item
    }
    pub fn current_attr(&self, item: &str) -> &'static str {
        if self.is(item) { "page" } else { "false" }
    }
}

impl Layout {
    pub fn sign_in_href(&self) -> &'static str {
        paths::SIGN_IN
    }
    pub fn sign_out_href(&self) -> &'static str {
        paths::SIGN_OUT
    }
    pub fn stylesheet(&self) -> &'static str {
        paths::STYLESHEET
    }
    pub fn script(&self) -> &'static str {
        paths::SCRIPT
    }
    pub fn home(&self) -> &'static str {
        paths::HOME
    }
}

/// A console page that went wrong, shown as an HTML page with its status.
#[derive(Debug)]
pub enum PageError {
    BadRequest(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    TooManyRequests(String),
    PayloadTooLarge,
    /// The database is unreachable: 503, try again shortly.
    StoreUnavailable,
    /// The cause goes to the log only.
    Internal(String),
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            Self::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                "That request was not right",
                message,
            ),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "Not allowed", message),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            Self::Conflict(message) => (StatusCode::CONFLICT, "Already done", message),
            Self::TooManyRequests(message) => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many attempts", message)
            }
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                format!(
                    "Console forms are limited to {} KiB.",
                    crate::http::BODY_LIMIT / 1024
                ),
            ),
            Self::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The database cannot be reached right now. Try again in a moment.".to_owned(),
            ),
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server log has the details. Try again in a moment.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            layout: Layout {
                title: heading.to_owned(),
                ..Layout::default()
            },
            status: status.as_u16(),
            heading,
            message: atk_core::secret::redact_secrets(&message).into_owned(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, heading).into_response(),
        }
    }
}

impl From<ServiceError> for PageError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidRequest(message) => Self::BadRequest(message),
            ServiceError::InvalidField(field) => Self::BadRequest(field.message),
            ServiceError::Policy(policy) => Self::BadRequest(policy.to_string()),
            ServiceError::Forbidden(message) => Self::Forbidden(message.to_owned()),
            ServiceError::NotFound(what) => Self::NotFound(format!(
                "That {what} does not exist, or you may not see it."
            )),
            ServiceError::Conflict(message) => Self::Conflict(message),
            ServiceError::InvalidCredentials => Self::BadRequest(error.to_string()),
            ServiceError::RateLimited(message) => Self::TooManyRequests(message),
            ServiceError::Unavailable(message) => Self::Internal(message),
            ServiceError::Store(atk_store::StoreError::Unavailable(_)) => Self::StoreUnavailable,
            ServiceError::Store(store) => Self::Internal(format!("{store:?}")),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        Self::Internal(format!("template: {error}"))
    }
}

/// Renders a page (200).
pub fn render(page: &impl Template) -> Result<Response, PageError> {
    Ok(Html(page.render()?).into_response())
}

pub async fn not_found() -> PageError {
    PageError::NotFound("There is no console page at this address.".into())
}

pub async fn method_not_allowed() -> Response {
    let mut response =
        PageError::BadRequest("This page does not accept that method.".into()).into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// Errors to show next to form fields, by field name.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    /// One error, on one field.
    pub fn one(field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    /// The field a service error is about, or the error as a page when it
    /// is about no field (not found, forbidden, …).
    pub fn from_service(error: ServiceError) -> Result<Self, PageError> {
        use atk_core::limits::LimitError;
        use atk_core::policy::PolicyError;
        let mut errors = Self::default();
        match error {
            ServiceError::InvalidField(field) => errors.add(field.field, sentence(&field.message)),
            ServiceError::Policy(policy) => {
                let kind_name = |kind| atk_core::Catalog::get().kind(kind).name.clone();
                let (field, message) = match &policy {
                    PolicyError::MissingConfirmations(_) => ("confirmations", policy.to_string()),
                    PolicyError::UnknownScopes(_) => ("scopes", policy.to_string()),
                    PolicyError::ScopesNotAllowed { kind, scopes } => (
                        "scopes",
                        format!(
                            "a {} may not carry: {}",
                            kind_name(*kind),
                            scopes.join(", ")
                        ),
                    ),
                    PolicyError::NoScopes(kind) => (
                        "scopes",
                        format!("a {} needs at least one scope", kind_name(*kind)),
                    ),
                    PolicyError::Limit(LimitError::Requests | LimitError::Seconds) => {
                        ("rate_limit", policy.to_string())
                    }
                    PolicyError::Limit(_) | PolicyError::AllowlistNotForKind(_) => {
                        ("allowed_ips", policy.to_string())
                    }
                };
                errors.add(field, sentence(&message));
            }
            other => return Err(other.into()),
        }
        Ok(errors)
    }
}

/// "missing confirmations: x" → "Missing confirmations: x."
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// The instant sample pages (Page Help's page copy) are rendered at.
pub(super) fn sample_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::days(20_000)
}

/// The project sample pages show: the demo project.
pub(super) fn sample_project() -> ProjectId {
    ProjectId::parse(atk_core::project::DEMO_PROJECT_ID).expect("the demo project id parses")
}
