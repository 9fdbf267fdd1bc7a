//! Usage counting. The verify hot path only pushes an event onto an
//! unbounded channel: lock-free, and nobody is woken, because the
//! aggregator does not wait on that channel; it drains it every
//! [`DRAIN_EVERY`], sums events in a plain map, and adds the sums to the
//! store at least every [`FLUSH_EVERY`], in one transaction per flush. A
//! flush is a batch with an id, frozen until the store acknowledges it:
//! a failed flush is retried as the same batch, and the store applies a
//! batch id once, so a flush whose commit succeeded but whose answer was
//! lost is not counted twice. Nothing is lost either: `stop` drains and
//! flushes before the process exits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use atk_core::decision::VerifyCode;
use atk_core::ids::{KeyId, ProjectId};
use atk_core::key::KeyRecord;
use atk_core::usage::hour_of;
use atk_store::{Store, UsageBatch, UsageCount};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How often queued events are summed.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// How often sums reach the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Counters written in one transaction at most (a flush sends as many
/// batches as it needs).
pub const MAX_BATCH_COUNTERS: usize = 5_000;
/// How long one flush may take before it counts as failed (its sums are
/// kept for the next one), so a hung store cannot stall the aggregator.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

struct Hit {
    key: Arc<KeyRecord>,
    action: Option<&'static str>,
    code: VerifyCode,
    at: DateTime<Utc>,
}

/// Commands; each answers whether everything recorded so far is saved.
enum Control {
    /// Save everything recorded so far, then answer.
    Flush(oneshot::Sender<bool>),
    /// Save everything and stop.
    Stop(oneshot::Sender<bool>),
}

/// Cheap to clone; every clone feeds the same aggregator.
#[derive(Clone)]
pub struct UsageRecorder {
    hits: mpsc::UnboundedSender<Hit>,
    control: mpsc::UnboundedSender<Control>,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder").finish_non_exhaustive()
    }
}

impl UsageRecorder {
    /// Spawns the aggregator on the current tokio runtime; it reports its
    /// queue depth and flushes to `metrics`.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let (hits, hit_queue) = mpsc::unbounded_channel();
        let (control, commands) = mpsc::unbounded_channel();
        tokio::spawn(aggregate(store, metrics, hit_queue, commands));
        Self { hits, control }
    }

    /// Counts one verification of a found key. Never blocks, never wakes.
    pub fn record(
        &self,
        key: &Arc<KeyRecord>,
        action: Option<&'static str>,
        code: VerifyCode,
        at: DateTime<Utc>,
    ) {
        let hit = Hit {
            key: key.clone(),
            action,
            code,
            at,
        };
        if self.hits.send(hit).is_err() {
            // Only possible after `stop`, when no request is in flight.
            tracing::error!(key_id = %key.id, "usage recorder stopped; a verification was not counted");
        }
    }

    /// Writes every count recorded so far to the store; `false` when that
    /// failed (the counts stay in memory for the next try).
    pub async fn flush(&self) -> bool {
        self.command(Control::Flush).await
    }

    /// Writes every count recorded so far and stops the aggregator; `false`
    /// when some counts could not be saved.
    pub async fn stop(&self) -> bool {
        self.command(Control::Stop).await
    }

    async fn command(&self, command: fn(oneshot::Sender<bool>) -> Control) -> bool {
        let (ack, done) = oneshot::channel();
        if self.control.send(command(ack)).is_err() {
            // Already stopped: whatever it had was saved or reported then.
            return true;
        }
        done.await.unwrap_or(false)
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
    /// The batch sent to the store and not yet acknowledged; sent again,
    /// unchanged, before anything newer.
    unacknowledged: Option<UsageBatch>,
}

impl Pending {
    fn add(
        &mut self,
        key: &KeyRecord,
        action: Option<&'static str>,
        code: VerifyCode,
        at: DateTime<Utc>,
    ) {
        // One hash for a key already seen (the common case).
        let tally = match self.keys.get_mut(&key.id) {
            Some(tally) => tally,
            None => self.keys.entry(key.id.clone()).or_insert(KeyTally {
                project_id: key.project_id.clone(),
                last_used: at,
                counts: HashMap::new(),
            }),
        };
        *tally.counts.entry((action, code, hour_of(at))).or_default() += 1;
        tally.last_used = tally.last_used.max(at);
    }

    /// Sums everything waiting in the queue.
    fn take_queued(&mut self, hit_queue: &mut mpsc::UnboundedReceiver<Hit>) {
        while let Ok(hit) = hit_queue.try_recv() {
            self.add(&hit.key, hit.action, hit.code, hit.at);
        }
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Freezes the sums of some keys, at most [`MAX_BATCH_COUNTERS`]
    /// counters unless one key alone has more, into a batch with a new id.
    /// The rest waits for the next batch of the same flush: one huge
    /// transaction could outlast the flush timeout on every retry and never
    /// commit.
    fn take_batch(&mut self) -> UsageBatch {
        let mut taken: Vec<KeyId> = Vec::new();
        let mut counters = 0;
        for (key_id, tally) in &self.keys {
            if !taken.is_empty() && counters + tally.counts.len() > MAX_BATCH_COUNTERS {
                break;
            }
            counters += tally.counts.len();
            taken.push(key_id.clone());
        }
        // Sorted, so two nodes flushing the same counters lock the rows in
        // the same order and cannot deadlock each other.
        let mut counts: Vec<UsageCount> = Vec::with_capacity(counters);
        let mut last_used: Vec<(KeyId, DateTime<Utc>)> = Vec::with_capacity(taken.len());
        for key_id in taken {
            let tally = self.keys.remove(&key_id).expect("taken from the map above");
            last_used.push((key_id.clone(), tally.last_used));
            for ((action, code, hour), count) in tally.counts {
                counts.push(UsageCount {
                    key_id: key_id.clone(),
                    project_id: tally.project_id.clone(),
                    action,
                    code,
                    hour,
                    count,
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
        UsageBatch {
            id: atk_core::secret::random_base62(22),
            made_at: Utc::now(),
            counts,
            last_used,
        }
    }

    /// Sends the unacknowledged batch, then the sums since, each in one
    /// transaction; `true` once everything is acknowledged.
    async fn flush(&mut self, store: &dyn Store, metrics: &Metrics) -> bool {
        loop {
            if self.unacknowledged.is_none() {
                if self.is_empty() {
                    return true;
                }
                self.unacknowledged = Some(self.take_batch());
            }
            let batch = self.unacknowledged.as_ref().expect("set above");
            let started = Instant::now();
            metrics.store_query(crate::metrics::StoreQuery::UsageFlush);
            let outcome = tokio::time::timeout(FLUSH_TIMEOUT, store.add_usage(batch)).await;
            metrics
                .usage_flush_seconds
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(())) => self.unacknowledged = None,
                Ok(Err(error)) => {
                    tracing::warn!(error = ?error, counters = batch.counts.len(), "usage flush failed; will retry");
                    return false;
                }
                Err(_) => {
                    tracing::warn!(
                        counters = batch.counts.len(),
                        "usage flush timed out; will retry"
                    );
                    return false;
                }
            }
        }
    }
}

async fn aggregate(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut hit_queue: mpsc::UnboundedReceiver<Hit>,
    mut commands: mpsc::UnboundedReceiver<Control>,
) {
    let mut pending = Pending::default();
    let mut drain = tokio::time::interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flush = Instant::now();
    loop {
        tokio::select! {
            _ = drain.tick() => {
                // Sampled before draining: how far behind the counting is.
                metrics
                    .usage_queue_depth
                    .set(i64::try_from(hit_queue.len()).unwrap_or(i64::MAX));
                pending.take_queued(&mut hit_queue);
                if last_flush.elapsed() >= FLUSH_EVERY {
                    pending.flush(store.as_ref(), &metrics).await;
                    last_flush = Instant::now();
                }
            }
            command = commands.recv() => match command {
                // Every hit recorded before the command was sent is in the
                // queue by now, so draining takes it.
                Some(Control::Flush(ack)) => {
                    pending.take_queued(&mut hit_queue);
                    let saved = pending.flush(store.as_ref(), &metrics).await;
                    let _ = ack.send(saved);
                }
                Some(Control::Stop(ack)) => {
                    let saved = stop(store.as_ref(), &metrics, &mut pending, &mut hit_queue).await;
                    let _ = ack.send(saved);
                    return;
                }
                None => {
                    stop(store.as_ref(), &metrics, &mut pending, &mut hit_queue).await;
                    return;
                }
            },
        }
    }
}

/// Takes what is still queued, then flushes, retrying a few times: this is
/// the last chance before the process exits.
async fn stop(
    store: &dyn Store,
    metrics: &Metrics,
    pending: &mut Pending,
    hit_queue: &mut mpsc::UnboundedReceiver<Hit>,
) -> bool {
    hit_queue.close();
    pending.take_queued(hit_queue);
    for attempt in 1..=5 {
        if pending.flush(store, metrics).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
    tracing::error!(
        keys = pending.keys.len(),
        unacknowledged = pending.unacknowledged.is_some(),
        "usage counts could not be saved before stopping"
    );
    false
}
