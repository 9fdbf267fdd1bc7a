//! Usage counting. The verify hot path only sends an event down an
//! unbounded channel (lock-free); one aggregator task sums events in a
//! plain map and flushes the sums to the store at least once a second, in
//! one transaction per flush, as additive upserts. A failed flush keeps its
//! sums for the next one, so nothing is lost or counted twice; `stop`
//! drains the channel and flushes before the process exits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use atk_core::decision::VerifyCode;
use atk_core::ids::{KeyId, ProjectId};
use atk_core::key::KeyRecord;
use atk_core::usage::hour_of;
use atk_store::{Store, UsageCount};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

/// How often sums reach the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

enum Message {
    Hit {
        key: Arc<KeyRecord>,
        action: Option<&'static str>,
        code: VerifyCode,
        at: DateTime<Utc>,
    },
    /// Flush everything received so far, then answer.
    Flush(oneshot::Sender<()>),
    /// Flush everything and stop.
    Stop(oneshot::Sender<()>),
}

/// Cheap to clone; every clone feeds the same aggregator.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    sender: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("usage::Message")
    }
}

impl UsageRecorder {
    /// Spawns the aggregator on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(aggregate(store, receiver));
        Self { sender }
    }

    /// Counts one verification of a found key. Never blocks.
    pub fn record(
        &self,
        key: &Arc<KeyRecord>,
        action: Option<&'static str>,
        code: VerifyCode,
        at: DateTime<Utc>,
    ) {
        let hit = Message::Hit {
            key: key.clone(),
            action,
            code,
            at,
        };
        if self.sender.send(hit).is_err() {
            // Only possible after `stop`, when no request is in flight.
            tracing::error!(key_id = %key.id, "usage recorder stopped; a verification was not counted");
        }
    }

    /// Writes every count recorded so far to the store.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.sender.send(Message::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Writes every count recorded so far and stops the aggregator.
    pub async fn stop(&self) {
        let (ack, done) = oneshot::channel();
        if self.sender.send(Message::Stop(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

/// One key's sums since the last flush. Keyed by key first, so counting
/// an event for a key already seen allocates nothing.
struct KeyTally {
    project_id: ProjectId,
    last_used: DateTime<Utc>,
    counts: HashMap<(Option<&'static str>, VerifyCode, DateTime<Utc>), u64>,
}

#[derive(Default)]
struct Pending {
    keys: HashMap<KeyId, KeyTally>,
}

impl Pending {
    fn add(
        &mut self,
        key: &KeyRecord,
        action: Option<&'static str>,
        code: VerifyCode,
        at: DateTime<Utc>,
    ) {
        if !self.keys.contains_key(&key.id) {
            let tally = KeyTally {
                project_id: key.project_id.clone(),
                last_used: at,
                counts: HashMap::new(),
            };
            self.keys.insert(key.id.clone(), tally);
        }
        let tally = self.keys.get_mut(&key.id).expect("inserted above");
        *tally.counts.entry((action, code, hour_of(at))).or_default() += 1;
        tally.last_used = tally.last_used.max(at);
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// One transaction; the sums are dropped only once it committed.
    async fn flush(&mut self, store: &dyn Store) -> bool {
        if self.is_empty() {
            return true;
        }
        // Sorted, so two nodes flushing the same counters lock the rows in
        // the same order and cannot deadlock each other.
        let mut counts: Vec<UsageCount> = Vec::new();
        let mut last_used: Vec<(KeyId, DateTime<Utc>)> = Vec::new();
        for (key_id, tally) in &self.keys {
            last_used.push((key_id.clone(), tally.last_used));
            for ((action, code, hour), count) in &tally.counts {
                counts.push(UsageCount {
                    key_id: key_id.clone(),
                    project_id: tally.project_id.clone(),
                    action: *action,
                    code: *code,
                    hour: *hour,
                    count: *count,
                });
            }
        }
        counts.sort_by(|a, b| {
            (a.key_id.as_str(), a.action, a.code.as_str(), a.hour).cmp(&(
                b.key_id.as_str(),
                b.action,
                b.code.as_str(),
                b.hour,
            ))
        });
        last_used.sort();
        match store.add_usage(&counts, &last_used).await {
            Ok(()) => {
                self.keys.clear();
                true
            }
            Err(error) => {
                tracing::warn!(error = ?error, counters = counts.len(), "usage flush failed; will retry");
                false
            }
        }
    }
}

async fn aggregate(store: Arc<dyn Store>, mut receiver: mpsc::UnboundedReceiver<Message>) {
    let mut pending = Pending::default();
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = receiver.recv() => match message {
                Some(Message::Hit { key, action, code, at }) => pending.add(&key, action, code, at),
                // The channel is FIFO, so every hit sent before this message
                // has been added already.
                Some(Message::Flush(ack)) => {
                    pending.flush(store.as_ref()).await;
                    let _ = ack.send(());
                }
                Some(Message::Stop(ack)) => {
                    stop(store.as_ref(), &mut pending, &mut receiver).await;
                    let _ = ack.send(());
                    return;
                }
                None => {
                    stop(store.as_ref(), &mut pending, &mut receiver).await;
                    return;
                }
            },
            _ = ticker.tick() => {
                pending.flush(store.as_ref()).await;
            }
        }
    }
}

/// Takes what is still queued, then flushes, retrying a few times: this is
/// the last chance before the process exits.
async fn stop(
    store: &dyn Store,
    pending: &mut Pending,
    receiver: &mut mpsc::UnboundedReceiver<Message>,
) {
    receiver.close();
    while let Ok(message) = receiver.try_recv() {
        match message {
            Message::Hit {
                key,
                action,
                code,
                at,
            } => pending.add(&key, action, code, at),
            Message::Flush(ack) | Message::Stop(ack) => {
                let _ = ack.send(());
            }
        }
    }
    for attempt in 1..=5 {
        if pending.flush(store).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
    tracing::error!(
        keys = pending.keys.len(),
        "usage counts could not be saved before stopping"
    );
}
