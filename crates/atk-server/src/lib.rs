//! The AuthToolkit Keys server: everything between the domain (`atk-core`),
//! the store (`atk-store`) and the outside world. The `atk` binary and every
//! test build the service through [`startup::Application`].

/// Typed configuration: listen address, data dir, database, admin token, pepper.
pub mod config;
/// Page Help: answers about a console page from its approved sources only.
pub mod help;
/// The HTTP API: one module per resource over a shared state.
pub mod http;
/// Each key's own rate limit, per node, in bounded memory.
pub mod limiter;
/// Hands freed heap memory back to the operating system.
pub mod memory;
/// `GET /metrics`: what the service counts, in Prometheus text format.
pub mod metrics;
/// Application services shared by HTTP and CLI: projects, entitlements, keys.
pub mod service;
/// Startup: connect, migrate, first-start bootstrap, bind, serve, stop cleanly.
pub mod startup;
/// Log setup for the binary.
pub mod telemetry;
/// Usage counting: lock-free recording, batched additive flushes.
pub mod usage;
/// The one verification path: parse, hash, look up, decide.
pub mod verifier;

pub use config::Config;
pub use startup::Application;
