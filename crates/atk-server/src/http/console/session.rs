//! Console sessions and CSRF. The session token lives in an HttpOnly,
//! SameSite=Strict cookie scoped to `/console`; the session itself lives in
//! the store, so every node accepts it and sign-out ends it everywhere.
//!
//! CSRF: every state-changing form carries a token. Signed in, it is derived
//! from the session token with the pepper; before sign-in (sign-in, setup,
//! invite forms) it is a random value also set as a cookie (double submit).
//! SameSite=Strict alone would already keep other sites' posts from
//! carrying the session; the token also covers old browsers and same-site
//! subdomains.

use atk_core::access::Operation;
use atk_core::ids::ProjectId;
use atk_core::project::Project;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::form::Form;
use super::page::{HelpWidget, Layout, PageError, ProjectNav, UserBar, parse_project};
use super::paths;
use crate::http::AppState;
use crate::http::auth::source_ip;
use crate::service::{Caller, SignedIn};

pub const SESSION_COOKIE: &str = "atk_session";
pub const FORM_COOKIE: &str = "atk_form";
/// The hidden field every console form carries.
pub const CSRF_FIELD: &str = "csrf";

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

fn cookie_header(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}",
        paths::HOME
    ))
    .expect("cookie values are base62")
}

pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    cookie_header(
        SESSION_COOKIE,
        token,
        atk_core::account::SESSION_ABSOLUTE.num_seconds(),
        secure,
    )
}

pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    cookie_header(SESSION_COOKIE, "", 0, secure)
}

fn tokens_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

fn csrf_refused() -> PageError {
    PageError::Forbidden(
        "This form is missing its security token or it has expired. Reload the page and try again."
            .into(),
    )
}

/// The pre-sign-in CSRF token: the one in the browser's cookie, or a new
/// one to set with [`FormGuard::set_cookie`].
#[derive(Debug)]
pub struct FormGuard {
    pub token: String,
    new: bool,
}

impl FormGuard {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match cookie(headers, FORM_COOKIE) {
            Some(token)
                if token.len() == 32 && token.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Self {
                    token: token.to_owned(),
                    new: false,
                }
            }
            _ => Self {
                token: atk_core::secret::random_base62(32),
                new: true,
            },
        }
    }

    /// Adds the cookie to a page response when it is new.
    pub fn set_cookie(&self, mut response: Response, secure: bool) -> Response {
        if self.new {
            response.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(FORM_COOKIE, &self.token, 3600, secure),
            );
        }
        response
    }

    /// The post's field must equal the cookie.
    pub fn check(headers: &HeaderMap, form: &Form) -> Result<(), PageError> {
        let expected = cookie(headers, FORM_COOKIE).unwrap_or("");
        if tokens_match(expected, form.text(CSRF_FIELD)) {
            Ok(())
        } else {
            Err(csrf_refused())
        }
    }
}

/// A signed-in console user. Without a live session, pages redirect to
/// sign-in.
#[derive(Debug, Clone)]
pub struct Console {
    pub user: SignedIn,
    /// Derived from the session token; every form of the page carries it.
    pub csrf: String,
    session_token: String,
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match MaybeConsole::from_request_parts(parts, state).await? {
            MaybeConsole(Some(console)) => Ok(console),
            MaybeConsole(None) => Err(Redirect::to(paths::SIGN_IN).into_response()),
        }
    }
}

/// The signed-in user if there is one, for pages anyone may open (an invite
/// link offers a signed-in member to join with the account they have).
#[derive(Debug, Clone)]
pub struct MaybeConsole(pub Option<Console>);

impl FromRequestParts<AppState> for MaybeConsole {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(Self(None));
        };
        match state.accounts.session(token, source_ip(parts)).await {
            Ok(user) => Ok(Self(user.map(|user| Console {
                csrf: state.accounts.csrf_token(token),
                session_token: token.to_owned(),
                user,
            }))),
            Err(error) => Err(PageError::from(error).into_response()),
        }
    }
}

impl Console {
    pub fn caller(&self) -> &Caller {
        &self.user.caller
    }

    pub fn session_token(&self) -> &str {
        &self.session_token
    }

    /// Refuses a post whose CSRF field is not this session's.
    pub fn check_csrf(&self, form: &Form) -> Result<(), PageError> {
        if tokens_match(&self.csrf, form.text(CSRF_FIELD)) {
            Ok(())
        } else {
            Err(csrf_refused())
        }
    }

    /// What every state-changing post inside a project checks first, in
    /// this order: the form's CSRF token, the project id in the path, and
    /// the caller's right to `operation` there (before any field is read,
    /// so a refusal never depends on what the form says).
    pub fn post_to(
        &self,
        form: &Form,
        project_id: &str,
        operation: Operation,
    ) -> Result<ProjectId, PageError> {
        self.check_csrf(form)?;
        let project_id = parse_project(project_id)?;
        self.caller().authorize(operation, Some(&project_id))?;
        Ok(project_id)
    }

    /// The layout of a page, inside `project` when given.
    pub async fn layout(
        &self,
        state: &AppState,
        title: impl Into<String>,
        project: Option<(&Project, &'static str)>,
    ) -> Result<Layout, PageError> {
        self.layout_with_help(state, title, project, None).await
    }

    /// The layout of a page with the Page Help widget of `help_route`.
    pub async fn layout_with_help(
        &self,
        state: &AppState,
        title: impl Into<String>,
        project: Option<(&Project, &'static str)>,
        help_route: Option<&str>,
    ) -> Result<Layout, PageError> {
        let help = help_route.and_then(|route| {
            let info = state.help.route_info(route)?;
            Some(HelpWidget {
                route: info.route,
                title: info.title,
                surface: info.surface,
                platform_step: info.platform_step,
                suggested: info.suggested_questions,
                sources: info.allowed_sources,
                project_id: project
                    .map(|(p, _)| p.project_id.to_string())
                    .unwrap_or_default(),
                csrf: self.csrf.clone(),
                answer: None,
                hub_mode: false,
                key_id: None,
            })
        });
        let project = match project {
            Some((project, active)) => {
                let visible = state.service.list_projects(self.caller()).await?;
                let shows_help_gaps = self
                    .caller()
                    .principal
                    .may(Operation::ReadHelpGaps, &project.project_id);
                Some(ProjectNav::new(project, &visible, active, shows_help_gaps))
            }
            None => None,
        };
        Ok(Layout {
            title: title.into(),
            user: Some(UserBar {
                display_name: self.user.account.display_name.to_string(),
                email: self.user.account.email.to_string(),
                csrf: self.csrf.clone(),
            }),
            project,
            help_route: help_route.map(str::to_owned),
            help,
        })
    }
}
