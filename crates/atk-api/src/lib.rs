//! The HTTP API's wire types (SPEC sections 3 and 5): every request and
//! response body, the error body and its codes. The server serialises
//! them, the client and the CLI read them: one definition of each JSON
//! shape. Domain values that travel as they are (a key's preview row, a
//! project, an audit event) are `atk-core`'s own types, re-exported here
//! so a client needs only this crate.
//!
//! Requests refuse unknown fields, as the server does; responses accept
//! them, so an older client keeps working against a newer server.

pub mod audit;
pub mod error;
pub mod help;
pub mod keys;
pub mod projects;
pub mod timestamp;
pub mod verify;

pub use atk_core::audit::{AuditAction, AuditEvent};
pub use atk_core::decision::{EntitlementView, VerifyCode};
pub use atk_core::entitlement::{Entitlement, EntitlementStatus};
pub use atk_core::key::{Environment, Expiration, KeyKind, KeyStatus, PreviewRow};
pub use atk_core::lifecycle::Grace;
pub use atk_core::limits::RateLimit;
pub use atk_core::policy::{BlockedScope, Confirmation};
pub use atk_core::project::Project;
pub use atk_core::usage::{Granularity, UsageReport};
