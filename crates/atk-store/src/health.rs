//! Whether the database is reachable, learned from the queries themselves:
//! a circuit breaker. Once a query finds the database unreachable, every
//! call fails at once with [`StoreError::Unavailable`] instead of waiting on
//! the pool, except one call every [`PROBE_EVERY`], which tries for real; the
//! first one that succeeds closes the breaker. So a lost database costs
//! callers one pool timeout, then answers are immediate, and the node
//! recovers by itself when the database returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::StoreError;

/// How often a call goes through to the database while it is unreachable.
const PROBE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub(crate) struct Health {
    down: AtomicBool,
    /// Milliseconds since `started`, when the next probe may go through.
    next_probe: AtomicU64,
    started: Instant,
}

impl Health {
    pub(crate) fn new() -> Self {
        Self {
            down: AtomicBool::new(false),
            next_probe: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go to the database now.
    pub(crate) fn admit(&self) -> Result<(), StoreError> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = self.now();
        let due = self.next_probe.load(Ordering::Acquire);
        let probe = now >= due
            && self
                .next_probe
                .compare_exchange(
                    due,
                    now + PROBE_EVERY.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok();
        if probe {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "the database is unreachable (retrying in the background)".into(),
            ))
        }
    }

    /// Learns from a call's outcome and hands it back.
    pub(crate) fn observe<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        match &outcome {
            Err(StoreError::Unavailable(cause)) => {
                self.next_probe.store(
                    self.now() + PROBE_EVERY.as_millis() as u64,
                    Ordering::Release,
                );
                if !self.down.swap(true, Ordering::AcqRel) {
                    tracing::error!(%cause, "database unreachable; answering 503 until it returns");
                }
            }
            // Any answer from the database, even a refusal, means it is up.
            _ => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("database reachable again");
                }
            }
        }
        outcome
    }
}

/// Whether a driver error means the database could not be reached (as
/// opposed to a query it refused): connecting failed, the pool timed out,
/// the connection broke, or the server is shutting down or starting.
pub(crate) fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 is "connection exception"; 57P01-57P03 are
        // admin shutdown, crash shutdown and "cannot connect now".
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    #[test]
    fn after_an_unreachable_database_calls_fail_at_once_until_a_probe_succeeds() {
        let health = Health::new();
        assert!(health.admit().is_ok());
        assert!(health.observe(unreachable()).is_err());
        // Inside the probe interval nothing goes through.
        assert!(matches!(health.admit(), Err(StoreError::Unavailable(_))));
        // A probe that succeeds closes the breaker.
        health.next_probe.store(0, Ordering::Release);
        assert!(health.admit().is_ok(), "the probe goes through");
        assert!(
            matches!(health.admit(), Err(StoreError::Unavailable(_))),
            "only one probe per interval"
        );
        health.observe(Ok(())).unwrap();
        assert!(health.admit().is_ok());
        assert!(health.admit().is_ok());
    }

    #[test]
    fn a_refusal_from_the_database_is_not_an_outage() {
        let health = Health::new();
        let _ = health.observe::<()>(Err(StoreError::Conflict));
        assert!(health.admit().is_ok());
    }
}
