//! Accounts: first-owner setup, sign-in and sign-out, invites and roles.

use askama::Template;
use atk_core::access::{Operation, Role};
use atk_core::account::LinkPurpose;
use atk_core::ids::ProjectId;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::form::{Form, PagePath};
use super::page::{FieldErrors, Layout, PageError, parse_project, render};
use super::paths;
use super::session::{
    Console, FormGuard, MaybeConsole, clear_session_cookie, cookie, session_cookie,
};
use crate::http::AppState;
use crate::http::auth::SourceIp;
use crate::service::{NewAccount, NewSession, ServiceError};

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    layout: Layout,
    csrf: String,
    email: String,
    message: Option<String>,
}

#[derive(Template)]
#[template(path = "console/new_account.html")]
struct NewAccountPage {
    layout: Layout,
    heading: &'static str,
    intro: String,
    action: String,
    submit: &'static str,
    csrf: String,
    display_name: String,
    email: String,
    errors: FieldErrors,
    /// Signed in already: join with that account instead.
    join: Option<JoinOffer>,
    is_invite: bool,
}

/// An invite opened by someone already signed in.
struct JoinOffer {
    email: String,
    csrf: String,
}

/// Signed in: a 303 to the console with the session cookie.
fn signed_in(state: &AppState, session: &NewSession) -> Response {
    let mut response = Redirect::to(paths::HOME).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(session.token.expose(), state.console.secure_cookies),
    );
    response
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let guard = FormGuard::from_headers(&headers);
    let page = SignInPage {
        layout: Layout {
            title: "Sign in".into(),
            ..Layout::default()
        },
        csrf: guard.token.clone(),
        email: String::new(),
        message: None,
    };
    Ok(guard.set_cookie(render(&page)?, state.console.secure_cookies))
}

pub async fn sign_in(
    State(state): State<AppState>,
    SourceIp(source): SourceIp,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    FormGuard::check(&headers, &form)?;
    let email = form.text("email");
    match state
        .accounts
        .sign_in(email, form.text("password"), source)
        .await
    {
        Ok(session) => Ok(signed_in(&state, &session)),
        Err(error @ (ServiceError::InvalidCredentials | ServiceError::RateLimited(_))) => {
            let status = match error {
                ServiceError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let message = match error {
                ServiceError::RateLimited(message) => message,
                _ => "That email and password do not match an account.".to_owned(),
            };
            let guard = FormGuard::from_headers(&headers);
            let page = SignInPage {
                layout: Layout {
                    title: "Sign in".into(),
                    ..Layout::default()
                },
                csrf: guard.token.clone(),
                email: email.trim().to_owned(),
                message: Some(message),
            };
            let mut response = render(&page)?;
            *response.status_mut() = status;
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    console: Console,
    form: Form,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    state.accounts.sign_out(console.session_token()).await?;
    let mut response = Redirect::to(paths::SIGN_IN).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        clear_session_cookie(state.console.secure_cookies),
    );
    Ok(response)
}

/// The setup or invite form for `purpose`.
fn new_account_page(
    purpose: LinkPurpose,
    token: &str,
    csrf: String,
    intro: String,
) -> NewAccountPage {
    let (heading, action, submit) = match purpose {
        LinkPurpose::Setup => (
            "Create the first owner",
            paths::setup(token),
            "Create owner account",
        ),
        LinkPurpose::Invite => ("Join the project", paths::invite(token), "Create account"),
    };
    NewAccountPage {
        layout: Layout {
            title: heading.into(),
            ..Layout::default()
        },
        heading,
        intro,
        action,
        submit,
        csrf,
        display_name: String::new(),
        email: String::new(),
        errors: FieldErrors::default(),
        join: None,
        is_invite: purpose == LinkPurpose::Invite,
    }
}

fn link_refused(purpose: LinkPurpose) -> PageError {
    PageError::NotFound(match purpose {
        LinkPurpose::Setup => "This setup link has been used or has expired. Restart `atk serve` on a deployment without accounts for a new one, or sign in.".into(),
        LinkPurpose::Invite => "This invite link has been used or has expired. Ask a project owner for a new one.".into(),
    })
}

fn intro(purpose: LinkPurpose, grant: Option<&(ProjectId, Role)>) -> String {
    match (purpose, grant) {
        (LinkPurpose::Invite, Some((project, role))) => format!(
            "You are invited to project {project} as {}. Choose how you sign in.",
            role.label()
        ),
        _ => "This one-time link creates the first console account. It owns every project and administers the platform.".into(),
    }
}

async fn link_page(
    state: &AppState,
    headers: &HeaderMap,
    purpose: LinkPurpose,
    token: &str,
    signed_in: Option<&Console>,
) -> Result<Response, PageError> {
    let link = state
        .accounts
        .open_link(token, purpose)
        .await?
        .ok_or_else(|| link_refused(purpose))?;
    let guard = FormGuard::from_headers(headers);
    let mut page = new_account_page(
        purpose,
        token,
        guard.token.clone(),
        intro(purpose, link.grant.as_ref()),
    );
    if purpose == LinkPurpose::Invite {
        page.join = signed_in.map(|console| JoinOffer {
            email: console.user.account.email.to_string(),
            csrf: console.csrf.clone(),
        });
    }
    Ok(guard.set_cookie(render(&page)?, state.console.secure_cookies))
}
pub async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePath(token): PagePath<String>,
) -> Result<Response, PageError> {
    link_page(&state, &headers, LinkPurpose::Setup, &token, None).await
}

pub async fn invite_page(
    State(state): State<AppState>,
    MaybeConsole(signed_in): MaybeConsole,
    headers: HeaderMap,
    PagePath(token): PagePath<String>,
) -> Result<Response, PageError> {
    link_page(
        &state,
        &headers,
        LinkPurpose::Invite,
        &token,
        signed_in.as_ref(),
    )
    .await
}

async fn redeem(
    state: &AppState,
    headers: &HeaderMap,
    source: Option<std::net::IpAddr>,
    purpose: LinkPurpose,
    token: &str,
    form: &Form,
) -> Result<Response, PageError> {
    FormGuard::check(headers, form)?;
    let link = state
        .accounts
        .open_link(token, purpose)
        .await?
        .ok_or_else(|| link_refused(purpose))?;
    let new_account = NewAccount {
        email: form.text("email"),
        display_name: form.text("display_name"),
        password: form.text("password"),
    };
    let result = match purpose {
        LinkPurpose::Setup => {
            state
                .accounts
                .redeem_setup(token, new_account, source)
                .await
        }
        LinkPurpose::Invite => {
            state
                .accounts
                .redeem_invite(token, new_account, source)
                .await
        }
    };
    match result {
        Ok(session) => Ok(signed_in(state, &session)),
        Err(ServiceError::Conflict(_)) => Err(link_refused(purpose)),
        Err(error) => {
            let errors = FieldErrors::from_service(error)?;
            let mut page = new_account_page(
                purpose,
                token,
                cookie(headers, super::session::FORM_COOKIE)
                    .unwrap_or("")
                    .to_owned(),
                intro(purpose, link.grant.as_ref()),
            );
            page.display_name = new_account.display_name.trim().to_owned();
            page.email = new_account.email.trim().to_owned();
            page.errors = errors;
            let mut response = render(&page)?;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
    }
}

pub async fn setup(
    State(state): State<AppState>,
    SourceIp(source): SourceIp,
    headers: HeaderMap,
    PagePath(token): PagePath<String>,
    form: Form,
) -> Result<Response, PageError> {
    redeem(&state, &headers, source, LinkPurpose::Setup, &token, &form).await
}

pub async fn accept_invite(
    State(state): State<AppState>,
    MaybeConsole(signed_in): MaybeConsole,
    SourceIp(source): SourceIp,
    headers: HeaderMap,
    PagePath(token): PagePath<String>,
    form: Form,
) -> Result<Response, PageError> {
    if form.get("join") == Some("yes") {
        // Joining with the account already signed in.
        let Some(console) = signed_in else {
            return Ok(Redirect::to(paths::SIGN_IN).into_response());
        };
        console.check_csrf(&form)?;
        let (project, _) = state
            .accounts
            .join_with_invite(&token, &console.user)
            .await?;
        return Ok(Redirect::to(&paths::keys(&project)).into_response());
    }
    redeem(&state, &headers, source, LinkPurpose::Invite, &token, &form).await
}

/// A member row of the members page.
struct MemberRow {
    account_id: String,
    display_name: String,
    email: String,
    role: Role,
    role_href: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    layout: Layout,
    csrf: String,
    project_id: ProjectId,
    members: Vec<MemberRow>,
    can_manage: bool,
    roles: [Role; 3],
    invite_href: String,
    /// Shown once, right after it was made.
    new_invite_link: Option<String>,
}

impl MemberRow {
    fn has_role(&self, role: &Role) -> bool {
        self.role == *role
    }
}

async fn members_page(
    state: &AppState,
    console: &Console,
    project_id: &ProjectId,
    new_invite_link: Option<String>,
) -> Result<Response, PageError> {
    let project = state
        .service
        .get_project(console.caller(), project_id)
        .await?;
    let members = state.accounts.members(console.caller(), project_id).await?;
    let me = &console.user.account.id;
    let page = MembersPage {
        layout: console
            .layout_with_help(
                state,
                "Members",
                Some((&project, "members")),
                Some("/project-settings/members"),
            )
            .await?,
        csrf: console.csrf.clone(),
        members: members
            .into_iter()
            .map(|(account, role)| MemberRow {
                role_href: paths::member_role(project_id, account.id.as_str()),
                is_me: &account.id == me,
                account_id: account.id.to_string(),
                display_name: account.display_name.to_string(),
                email: account.email.to_string(),
                role,
            })
            .collect(),
        can_manage: console
            .caller()
            .principal
            .may(Operation::ManageMembers, project_id),
        roles: Role::ALL,
        invite_href: paths::members(project_id),
        project_id: project_id.clone(),
        new_invite_link,
    };
    render(&page)
}

pub async fn members(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
) -> Result<Response, PageError> {
    let project_id = parse_project(&project_id)?;
    members_page(&state, &console, &project_id, None).await
}

/// Makes an invite link and shows it once on the members page.
pub async fn invite(
    State(state): State<AppState>,
    console: Console,
    PagePath(project_id): PagePath<String>,
    form: Form,
) -> Result<Response, PageError> {
    let project_id = console.post_to(&form, &project_id, Operation::ManageMembers)?;
    let role = Role::parse(form.text("role"))
        .ok_or_else(|| PageError::BadRequest("Choose a role: viewer, admin or owner.".into()))?;
    let token = state
        .accounts
        .invite(console.caller(), &project_id, role)
        .await?;
    let link = format!(
        "{}{}",
        state.console.public_url,
        paths::invite(token.expose())
    );
    let mut response = members_page(&state, &console, &project_id, Some(link)).await?;
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

pub async fn set_role(
    State(state): State<AppState>,
    console: Console,
    PagePath((project_id, account_id)): PagePath<(String, String)>,
    form: Form,
) -> Result<Response, PageError> {
    let project_id = console.post_to(&form, &project_id, Operation::ManageMembers)?;
    let role = Role::parse(form.text("role"))
        .ok_or_else(|| PageError::BadRequest("Choose a role: viewer, admin or owner.".into()))?;
    state
        .accounts
        .set_role(console.caller(), &project_id, &account_id, role)
        .await
        .map_err(|error| match error {
            ServiceError::InvalidField(field) => PageError::BadRequest(field.message),
            other => other.into(),
        })?;
    Ok(Redirect::to(&paths::members(&project_id)).into_response())
}

/// The members page with one owner and one viewer, for Page Help's page copy.
pub(super) fn sample_members_page(help_route: &'static str) -> Result<String, askama::Error> {
    let project_id = super::page::sample_project();
    let member = |name: &str, email: &str, role, is_me| MemberRow {
        account_id: "acc_sample".into(),
        display_name: name.into(),
        email: email.into(),
        role,
        role_href: paths::members(&project_id),
        is_me,
    };
    MembersPage {
        layout: Layout {
            title: "Members".into(),
            help_route: Some(help_route.to_owned()),
            ..Layout::default()
        },
        csrf: String::new(),
        members: vec![
            member("Ana Owner", "owner@example.com", Role::Owner, true),
            member("Vic Viewer", "viewer@example.com", Role::Viewer, false),
        ],
        can_manage: true,
        roles: Role::ALL,
        invite_href: paths::members(&project_id),
        project_id,
        new_invite_link: None,
    }
    .render()
}
