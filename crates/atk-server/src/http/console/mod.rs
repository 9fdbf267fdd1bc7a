//! The web console: server-rendered pages over the same services as the
//! JSON API (the console adds pages, never a second copy of the rules).
//! Every flow is a plain form post; `console.js` only adds conveniences
//! (copy button, scope defaults per kind). One module per feature, plus what
//! every page needs: `session` (cookies, CSRF), `page` (layout, HTML error
//! pages, security headers) and `paths` (every URL, named once).

mod accounts;
mod assets;
mod audit;
mod chart;
mod form;
mod help;
mod help_gaps;
mod keys;
mod page;
pub mod paths;
mod projects;
mod session;

use axum::Router;
use axum::routing::{MethodRouter, get, post};

use super::AppState;

/// The console pages Page Help knows, by page id (`help/routes.toml`).
pub const HELP_PAGES: [&str; 6] = [
    "key-create",
    "api-keys",
    "key-detail",
    "entitlements",
    "members",
    "audit",
];

/// A console page rendered with sample data (never a secret), for Page
/// Help's `page_copy`: the help quotes what the template says, so a change
/// to a template changes the help with it. `None` for an unknown page id.
pub fn sample_page(page: &str, help_route: &'static str) -> Option<Result<String, askama::Error>> {
    Some(match page {
        "key-create" => keys::sample_create_page(),
        "api-keys" => keys::sample_list_page(help_route),
        "key-detail" => keys::sample_detail_page(help_route),
        "entitlements" => projects::sample_entitlements_page(help_route),
        "members" => accounts::sample_members_page(help_route),
        "audit" => audit::sample_audit_page(help_route),
        _ => return None,
    })
}

/// The console session token a request carries, if any (Page Help accepts
/// console sessions as well as bearer credentials).
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    session::cookie(headers, session::SESSION_COOKIE)
}

/// Console settings from configuration.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// Mark the session cookie `Secure` (the console is served over HTTPS).
    pub secure_cookies: bool,
    /// Where people reach the console, for links shown to them (invites).
    pub public_url: std::sync::Arc<str>,
}

/// Every console route, to be nested at [`paths::HOME`]. HTML errors and
/// the security headers are this router's own; the JSON API keeps its error
/// shape.
pub fn router() -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .fallback(page::not_found)
        .method_not_allowed_fallback(page::method_not_allowed)
        .layer(axum::middleware::map_response(page::security_headers))
}

/// The templates of [`router`]'s routes, relative to [`paths::HOME`].
pub fn templates() -> impl Iterator<Item = &'static str> {
    routes().into_iter().map(|(path, _)| path)
}

fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    use paths::route;
    vec![
        (route::HOME, get(projects::home)),
        (route::STYLESHEET, get(assets::stylesheet)),
        (route::SCRIPT, get(assets::script)),
        (
            route::SIGN_IN,
            get(accounts::sign_in_page).post(accounts::sign_in),
        ),
        (route::SIGN_OUT, post(accounts::sign_out)),
        (route::HELP, post(help::ask)),
        (
            route::SETUP,
            get(accounts::setup_page).post(accounts::setup),
        ),
        (
            route::INVITE,
            get(accounts::invite_page).post(accounts::accept_invite),
        ),
        (route::PROJECT, get(projects::project_home)),
        (route::KEYS, get(keys::list).post(keys::create)),
        (route::NEW_KEY, get(keys::new_key)),
        (route::KEY, get(keys::detail)),
        (route::ROTATE, post(keys::rotate)),
        (route::REVOKE, post(keys::revoke)),
        (route::EXPIRE, post(keys::expire)),
        (route::ENTITLEMENTS, get(projects::entitlements)),
        (route::ENTITLEMENT, post(projects::change_entitlement)),
        (
            route::MEMBERS,
            get(accounts::members).post(accounts::invite),
        ),
        (route::MEMBER_ROLE, post(accounts::set_role)),
        (route::AUDIT, get(audit::audit_log)),
        (route::HELP_GAPS, get(help_gaps::help_gaps)),
    ]
}
