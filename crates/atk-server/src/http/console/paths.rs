//! Every console URL, named once: handlers, templates and tests build links
//! from these, never from string literals.

use atk_core::ids::ProjectId;

pub const HOME: &str = "/console";
pub const SIGN_IN: &str = "/console/sign-in";
pub const SIGN_OUT: &str = "/console/sign-out";
/// Page Help's form post (the widget without JavaScript).
pub const HELP: &str = "/console/help";
pub const STYLESHEET: &str = "/console/assets/console.css";
pub const SCRIPT: &str = "/console/assets/console.js";

/// Route templates for the router, relative to [`HOME`] (the console is
/// nested there, so it has its own fallback and headers).
pub mod route {
    pub const HOME: &str = "/";
    pub const SIGN_IN: &str = "/sign-in";
    pub const SIGN_OUT: &str = "/sign-out";
    pub const HELP: &str = "/help";
    pub const STYLESHEET: &str = "/assets/console.css";
    pub const SCRIPT: &str = "/assets/console.js";
    pub const SETUP: &str = "/setup/{token}";
    pub const INVITE: &str = "/invite/{token}";
    pub const PROJECT: &str = "/projects/{project_id}";
    pub const KEYS: &str = "/projects/{project_id}/keys";
    pub const NEW_KEY: &str = "/projects/{project_id}/keys/new";
    pub const KEY: &str = "/projects/{project_id}/keys/{key_id}";
    pub const ROTATE: &str = "/projects/{project_id}/keys/{key_id}/rotate";
    pub const REVOKE: &str = "/projects/{project_id}/keys/{key_id}/revoke";
    pub const EXPIRE: &str = "/projects/{project_id}/keys/{key_id}/expire";
    pub const ENTITLEMENTS: &str = "/projects/{project_id}/entitlements";
    pub const ENTITLEMENT: &str = "/projects/{project_id}/entitlements/{product}";
    pub const MEMBERS: &str = "/projects/{project_id}/members";
    pub const MEMBER_ROLE: &str = "/projects/{project_id}/members/{account_id}/role";
    pub const AUDIT: &str = "/projects/{project_id}/audit";
    pub const HELP_GAPS: &str = "/projects/{project_id}/help-gaps";
}

pub fn rotate(project: &ProjectId, key_id: &str) -> String {
    format!("/console/projects/{project}/keys/{key_id}/rotate")
}

pub fn revoke(project: &ProjectId, key_id: &str) -> String {
    format!("/console/projects/{project}/keys/{key_id}/revoke")
}

pub fn expire(project: &ProjectId, key_id: &str) -> String {
    format!("/console/projects/{project}/keys/{key_id}/expire")
}

pub fn member_role(project: &ProjectId, account_id: &str) -> String {
    format!("/console/projects/{project}/members/{account_id}/role")
}

pub fn setup(token: &str) -> String {
    format!("/console/setup/{token}")
}

pub fn invite(token: &str) -> String {
    format!("/console/invite/{token}")
}

pub fn keys(project: &ProjectId) -> String {
    format!("/console/projects/{project}/keys")
}

pub fn new_key(project: &ProjectId) -> String {
    format!("/console/projects/{project}/keys/new")
}

pub fn key(project: &ProjectId, key_id: &str) -> String {
    format!("/console/projects/{project}/keys/{key_id}")
}

pub fn entitlements(project: &ProjectId) -> String {
    format!("/console/projects/{project}/entitlements")
}

pub fn entitlement(project: &ProjectId, product: &str) -> String {
    format!("/console/projects/{project}/entitlements/{product}")
}

pub fn members(project: &ProjectId) -> String {
    format!("/console/projects/{project}/members")
}

pub fn audit(project: &ProjectId) -> String {
    format!("/console/projects/{project}/audit")
}

pub fn help_gaps(project: &ProjectId) -> String {
    format!("/console/projects/{project}/help-gaps")
}
