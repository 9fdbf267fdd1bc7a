//! Application services: the use cases behind both the HTTP API and the CLI.
//! Each takes already-authorised input, asks the domain for a decision and
//! then the store to keep it (with its audit event, in one transaction);
//! nothing here knows about HTTP.
//!
//! Spans carry only validated identifiers (`skip_all` + explicit fields):
//! raw client strings such as names, cursors or unparsed ids could hold
//! anything, a pasted secret included, and must not reach the log.

mod accounts;
mod audit;
mod help_gaps;
mod keys;
pub mod leaks;
mod projects;

use std::net::IpAddr;
use std::sync::Arc;

use atk_core::Clock;
use atk_core::access::{Access, Operation, Principal, decide};
use atk_core::audit::{Actor, AuditAction, AuditEvent};
use atk_core::catalog::Catalog;
use atk_core::ids::{IdError, KeyId, ProjectId};
use atk_core::key::KeyRecord;
use atk_core::lifecycle::LifecycleError;
use atk_core::policy::PolicyError;
use atk_core::secret::Pepper;
use atk_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use thiserror::Error;

pub use accounts::{Accounts, ConsoleToken, NewAccount, NewSession, SignedIn};
pub use audit::AuditPage;
pub use help_gaps::{HelpGaps, LISTED_GAPS};
pub use keys::{CreatedKey, KeyFilter, KeyPage, RotatedKey};

use crate::verifier::Verifier;

/// Largest page a list call returns, whatever `limit` asks for.
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_PAGE: u32 = 50;

/// A field of a request and what is wrong with it, so a form can show the
/// message next to the field and the API can name it in `details.field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{}", .0.message)]
    InvalidField(FieldError),
    #[error("{0}")]
    Forbidden(&'static str),
    /// A sign-in with a wrong email or password (which of the two is not said).
    #[error("the email or password is not right")]
    InvalidCredentials,
    #[error("{0}")]
    RateLimited(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A dependency failed in a way worth retrying.
    #[error("{0}")]
    Unavailable(String),
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidField(FieldError {
            field,
            message: message.into(),
        })
    }
}

/// An id or name that did not parse names the field it came from.
impl From<IdError> for ServiceError {
    fn from(error: IdError) -> Self {
        let field = match error {
            IdError::ProjectId(_) => "project_id",
            IdError::KeyId => "key_id",
            IdError::AccountId => "account_id",
            IdError::Email => "email",
            IdError::NameLength | IdError::NameControlCharacter | IdError::NameLooksLikeSecret => {
                "name"
            }
        };
        Self::field(field, error.to_string())
    }
}

impl From<LifecycleError> for ServiceError {
    fn from(error: LifecycleError) -> Self {
        Self::Conflict(error.to_string())
    }
}

/// Who asks, and from where. Services decide with the domain's access rules
/// ([`atk_core::access::decide`]) whether the principal may act, and audit
/// events record it with the source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub source_ip: Option<IpAddr>,
}

impl Caller {
    pub fn new(principal: Principal, source_ip: Option<IpAddr>) -> Self {
        Self {
            principal,
            source_ip,
        }
    }

    /// The `atk` command line, acting as the local operator.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Self::new(Principal::Operator { user }, None)
    }

    /// The service itself (first-start setup).
    pub fn system() -> Self {
        Self::new(Principal::System, None)
    }

    /// The Service Role Key making the call, if it is one.
    pub fn service_role_key(&self) -> Option<&KeyId> {
        match &self.principal {
            Principal::ServiceRoleKey { key_id, .. } => Some(key_id),
            _ => None,
        }
    }

    pub fn actor(&self) -> Actor {
        self.principal.actor()
    }

    fn event(
        &self,
        at: DateTime<Utc>,
        action: AuditAction,
        project: &ProjectId,
        target: (&str, &str),
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent::new(
            at,
            self.actor(),
            action,
            project,
            target,
            self.source_ip.map(|ip| ip.to_string()),
            details,
        )
    }

    /// `Ok` when the access rules allow `operation` on `project`; a project
    /// the caller has no standing in is "not found", as if it did not exist.
    pub fn authorize(
        &self,
        operation: Operation,
        project: Option<&ProjectId>,
    ) -> Result<(), ServiceError> {
        match decide(&self.principal, operation, project) {
            Access::Allowed => Ok(()),
            Access::Hidden => Err(ServiceError::NotFound("project")),
            Access::Forbidden => Err(ServiceError::Forbidden(forbidden_message(operation))),
        }
    }
}

fn forbidden_message(operation: Operation) -> &'static str {
    match operation {
        Operation::CreateProject | Operation::ChangeEntitlements => {
            "only the platform admin may do this"
        }
        Operation::ManageMembers => "only a project owner may manage members",
        Operation::ReadHelpGaps => "only a project owner may read Page Help's unanswered questions",
        Operation::CreateKey(atk_core::key::KeyKind::ServiceRole) => {
            "only a project owner or the platform admin may create service role keys"
        }
        Operation::CreateKey(_) | Operation::ManageKeys => {
            "your role in this project may not manage keys"
        }
        Operation::ReadProject | Operation::ReadAudit => "your role may not read this project",
    }
}

/// The configured admin token, kept in memory only to refuse it where free
/// text is stored. A generated token starts `atk_admin_` and is refused by
/// its shape already; a configured one may look like anything.
#[derive(Clone, Default)]
pub struct AdminTokenText(Option<Arc<str>>);

impl std::fmt::Debug for AdminTokenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminTokenText(<redacted>)")
    }
}

impl AdminTokenText {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(Arc::from))
    }

    /// `field` must not hold the admin token.
    pub fn check(&self, field: &'static str, text: &str) -> Result<(), ServiceError> {
        match &self.0 {
            Some(token) if text.contains(&**token) => Err(ServiceError::field(
                field,
                format!("{field} must not contain a secret (it holds the admin token)"),
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    admin_token: AdminTokenText,
    store: Arc<dyn Store>,
    pepper: Pepper,
    clock: Arc<dyn Clock>,
    catalog: &'static Catalog,
    /// Told about changes, so its caches never serve a stale decision on
    /// this node.
    verifier: Arc<Verifier>,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        pepper: Pepper,
        clock: Arc<dyn Clock>,
        verifier: Arc<Verifier>,
    ) -> Self {
        Self {
            admin_token: AdminTokenText::default(),
            store,
            pepper,
            clock,
            catalog: Catalog::get(),
            verifier,
        }
    }

    /// Refuses the configured admin token wherever free text is stored
    /// (names, reasons), as a pasted key is refused.
    pub fn refusing(mut self, admin_token: AdminTokenText) -> Self {
        self.admin_token = admin_token;
        self
    }

    pub fn admin_token_text(&self) -> &AdminTokenText {
        &self.admin_token
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A key of the project, or 404. A malformed id cannot name a key, so it
    /// gets the same answer as an unknown one.
    async fn key(&self, project_id: &ProjectId, key_id: &str) -> Result<KeyRecord, ServiceError> {
        let key_id = KeyId::parse(key_id).map_err(|_| ServiceError::NotFound("key"))?;
        self.store
            .get_key(project_id, &key_id)
            .await?
            .ok_or(ServiceError::NotFound("key"))
    }
}

/// `limit` within 1..=MAX_PAGE, default DEFAULT_PAGE.
fn page_limit(limit: Option<u32>) -> Result<u32, ServiceError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(limit @ 1..=MAX_PAGE) => Ok(limit),
        Some(_) => Err(ServiceError::field(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        )),
    }
}

fn bad_cursor() -> ServiceError {
    ServiceError::field("cursor", "cursor is not one this API returned")
}
