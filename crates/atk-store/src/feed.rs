//! The change feed: every change that a verifier may have cached (a key
//! created, rotated, revoked or expired; an entitlement set) is announced
//! by the transaction that makes it, to every node.
//!
//! - PostgreSQL: `pg_notify` inside the changing transaction, so the
//!   announcement is delivered exactly when (and only if) the change
//!   commits; each node LISTENs on one dedicated connection.
//! - SQLite: the change is written to the `changes` table in the same
//!   transaction and announced in process after the commit; other
//!   processes on the same file (the CLI) are picked up by a poll of that
//!   table every [`SQLITE_POLL`].
//!
//! A node that may have missed announcements (its listener reconnected)
//! moves to a new [`ChangeFeed::epoch`] and sends [`Change::Reset`]:
//! whatever it cached before may be stale. While the listener is down the
//! epoch is odd and nothing may be cached at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use atk_core::ids::ProjectId;
use atk_core::secret::SecretHash;
use chrono::Utc;
use tokio::sync::broadcast;

/// The PostgreSQL channel every node listens on.
pub const CHANNEL: &str = "atk_changes";
/// How often a SQLite node looks for changes made by another process.
pub const SQLITE_POLL: Duration = Duration::from_millis(50);
/// Announcements buffered per subscriber; one that falls further behind is
/// told to [`Change::Reset`].
const BUFFER: usize = 4096;

/// One announced change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key with this secret hash was created or changed.
    Key(SecretHash),
    /// The project's entitlement for this product was set.
    Entitlement { project: ProjectId, product: String },
    /// Announcements may have been missed: drop everything cached.
    Reset,
}

impl Change {
    /// The text form carried by `pg_notify` and the SQLite `changes` table,
    /// with the announcing node's clock in microseconds for the lag metric:
    /// `k <hash hex> <µs>` or `e <project> <product> <µs>`.
    pub fn payload(&self) -> String {
        let sent = Utc::now().timestamp_micros();
        match self {
            Self::Key(hash) => format!("k {} {sent}", hex(&hash.0)),
            Self::Entitlement { project, product } => format!("e {project} {product} {sent}"),
            Self::Reset => format!("r {sent}"),
        }
    }

    /// Reads [`Change::payload`]; with the time it was sent, in
    /// microseconds since the epoch. `None` for anything else.
    pub fn parse(payload: &str) -> Option<(Self, i64)> {
        let mut parts = payload.split(' ');
        let change = match parts.next()? {
            "k" => {
                let text = parts.next()?;
                let mut hash = [0u8; 32];
                if text.len() != 64 {
                    return None;
                }
                for (byte, pair) in hash.iter_mut().zip(text.as_bytes().chunks(2)) {
                    *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
                }
                Self::Key(SecretHash(hash))
            }
            "e" => Self::Entitlement {
                project: ProjectId::parse(parts.next()?).ok()?,
                product: parts.next()?.to_owned(),
            },
            "r" => Self::Reset,
            _ => return None,
        };
        let sent = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some((change, sent))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(64), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// A received change and how long after it was sent it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub change: Change,
    /// Sender's clock to receiver's clock: exact on one node, as good as
    /// the clocks' agreement across nodes.
    pub lag: Duration,
}

/// Counters of the feed, for metrics.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Times the listener (re)connected after the first connection.
    pub reconnects: AtomicU64,
    pub received: AtomicU64,
}

/// The receiving side, shared by everything in a node that caches.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Received>,
    /// Even: connected, announcements flow. Odd: disconnected. Changes on
    /// every reconnect, so a cache knows whether it may have missed some.
    epoch: Arc<AtomicU64>,
    pub stats: Arc<FeedStats>,
}

impl ChangeFeed {
    /// A feed that is connected from the start (SQLite in process).
    pub(crate) fn connected() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            epoch: Arc::new(AtomicU64::new(0)),
            stats: Arc::default(),
        }
    }

    /// A feed whose listener has yet to connect (PostgreSQL).
    pub(crate) fn disconnected() -> Self {
        let feed = Self::connected();
        feed.epoch.store(1, Ordering::SeqCst);
        feed
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Received> {
        self.sender.subscribe()
    }

    /// Even while connected; see the field.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether announcements are flowing, so a cache may hold entries.
    pub fn is_live(&self) -> bool {
        self.epoch().is_multiple_of(2)
    }

    pub(crate) fn deliver(&self, payload: &str) {
        let Some((change, sent_micros)) = Change::parse(payload) else {
            tracing::warn!(
                payload_len = payload.len(),
                "an unreadable change announcement"
            );
            return;
        };
        let lag_micros = (Utc::now().timestamp_micros() - sent_micros).max(0);
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        // No subscriber yet is fine: nothing is cached then.
        let _ = self.sender.send(Received {
            change,
            lag: Duration::from_micros(lag_micros.unsigned_abs()),
        });
    }

    /// The listener lost its connection: stop caching until it is back.
    pub(crate) fn lost(&self) {
        if self.is_live() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            tracing::warn!("change feed disconnected; caches are bypassed until it is back");
        }
    }

    /// The listener is (again) connected: a new epoch, and a reset for
    /// whatever was cached before.
    pub(crate) fn reconnected(&self, first: bool) {
        if !self.is_live() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        if !first {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("change feed reconnected; caches reset");
        }
        let _ = self.sender.send(Received {
            change: Change::Reset,
            lag: Duration::ZERO,
        });
    }
}

/// Writes `changes` inside the caller's transaction: the announcement
/// commits, or rolls back, with the change itself.
pub(crate) trait Announce {
    async fn announce(&mut self, origin: i64, changes: &[Change]) -> Result<(), sqlx::Error>;
}

impl Announce for sqlx::SqliteConnection {
    async fn announce(&mut self, origin: i64, changes: &[Change]) -> Result<(), sqlx::Error> {
        let at = Utc::now().timestamp_millis();
        for change in changes {
            sqlx::query("INSERT INTO changes (origin, payload, at) VALUES ($1, $2, $3)")
                .bind(origin)
                .bind(change.payload())
                .bind(at)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

impl Announce for sqlx::PgConnection {
    async fn announce(&mut self, _origin: i64, changes: &[Change]) -> Result<(), sqlx::Error> {
        for change in changes {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(change.payload())
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

/// Listens on [`CHANNEL`] until the pool closes, reconnecting with a
/// growing pause (at most a second) while the database is away.
pub(crate) async fn listen_postgres(pool: sqlx::PgPool, feed: ChangeFeed) {
    let mut first = true;
    let mut pause = Duration::from_millis(50);
    while !pool.is_closed() {
        if let Ok(mut listener) = sqlx::postgres::PgListener::connect_with(&pool).await
            && listener.listen(CHANNEL).await.is_ok()
        {
            feed.reconnected(first);
            first = false;
            pause = Duration::from_millis(50);
            // `Ok(None)`: the connection was lost; an error: the same or
            // the pool closed. Either way start over on a fresh one.
            while let Ok(Some(notification)) = listener.try_recv().await {
                feed.deliver(notification.payload());
            }
        }
        feed.lost();
        if pool.is_closed() {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Reads what other processes wrote to `changes` every [`SQLITE_POLL`],
/// and removes rows older than ten minutes now and then.
pub(crate) async fn poll_sqlite(pool: sqlx::SqlitePool, origin: i64, feed: ChangeFeed) {
    const KEEP_MILLIS: i64 = 600_000;
    let mut last: Option<i64> = None;
    let mut polls: u64 = 0;
    let mut ticker = tokio::time::interval(SQLITE_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        ticker.tick().await;
        polls += 1;
        let Some(seen) = last else {
            // Everything before the start is already in the store.
            match sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(seq), 0) FROM changes")
                .fetch_one(&pool)
                .await
            {
                Ok(max) => last = Some(max),
                Err(error) => tracing::debug!(%error, "change feed: SQLite not readable yet"),
            }
            continue;
        };
        let rows: Result<Vec<(i64, i64, String)>, _> =
            sqlx::query_as("SELECT seq, origin, payload FROM changes WHERE seq > $1 ORDER BY seq")
                .bind(seen)
                .fetch_all(&pool)
                .await;
        match rows {
            Ok(rows) => {
                for (seq, from, payload) in rows {
                    // This process announced its own changes at commit.
                    if from != origin {
                        feed.deliver(&payload);
                    }
                    last = Some(seq);
                }
            }
            Err(error) => tracing::debug!(%error, "change feed: poll failed"),
        }
        if polls.is_multiple_of(1200) {
            let cutoff = Utc::now().timestamp_millis() - KEEP_MILLIS;
            let _ = sqlx::query("DELETE FROM changes WHERE at < $1")
                .bind(cutoff)
                .execute(&pool)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_reads_back_from_its_payload() {
        let changes = [
            Change::Key(SecretHash([0xab; 32])),
            Change::Entitlement {
                project: ProjectId::parse("project_identity_demo").unwrap(),
                product: "commerce".into(),
            },
            Change::Reset,
        ];
        for change in changes {
            let (read, sent) = Change::parse(&change.payload()).expect("reads back");
            assert_eq!(read, change);
            assert!(sent > 0);
        }
    }

    #[test]
    fn a_payload_with_anything_extra_or_missing_is_ignored() {
        for payload in [
            "",
            "k",
            "k abc 1",
            "x 1",
            "r 1 2",
            "e project_identity_demo commerce",
        ] {
            assert_eq!(Change::parse(payload), None, "{payload:?}");
        }
    }
}
