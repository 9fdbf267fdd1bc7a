//! The AuthToolkit Keys domain. Pure Rust: no database, network or file I/O
//! (the only system call is the OS random source used to mint secrets).
//! Storage, HTTP and CLI depend on this crate, never the other way round.

/// Who may do what: principals, operations and the one `decide` function.
pub mod access;
/// Console accounts, sessions and one-time links (setup, invites).
pub mod account;
/// Audit events: actor, action, target, source address, details.
pub mod audit;
/// Products, actions (scopes), key kinds, expirations and confirmations as
/// data, loaded from `data/catalog.json`.
pub mod catalog;
/// Injectable time source, so lifecycle code can be tested by moving time.
pub mod clock;
/// The verification decision: which code a key gets for an action, and why.
pub mod decision;
/// Commerce entitlement states and whether one lets an action run now.
pub mod entitlement;
/// Identifiers and names that parse at the boundary: `ProjectId`, `KeyId`, `DisplayName`.
pub mod ids;
/// The stored key record, its derived status and its public preview row.
pub mod key;
/// Lifecycle rules: rotation grace, which keys can still be ended.
pub mod lifecycle;
/// Per-key restrictions: an IP allowlist and a rate limit.
pub mod limits;
/// Create-key policy: defaults per kind, allowed scopes, confirmations, expiry.
pub mod policy;
/// Projects and the entitlement table they start with.
pub mod project;
/// Secret format (`atk_live_…`), checksum, preview and keyed hashing.
pub mod secret;
/// Usage counters and their summaries (totals and time series).
pub mod usage;

pub use catalog::Catalog;
pub use clock::{Clock, ManualClock, SystemClock};
