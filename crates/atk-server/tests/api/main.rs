//! Behaviour of the HTTP API, through HTTP, on a real server with a real
//! database. One test binary, so the build links once.

mod auth;
mod bad_input;
mod client_address;
mod cluster;
mod frame;
mod helpers;
mod keys;
mod lifecycle;
mod metrics;
mod openapi;
mod projects;
mod secret_scanning;
mod verify;
mod verify_context;
