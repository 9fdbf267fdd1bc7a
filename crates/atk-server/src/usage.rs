//! Usage counting. The verify hot path adds one to a counter in a map of
//! its own thread's shard (a mutex nobody else holds but the aggregator,
//! for an instant every [`DRAIN_EVERY`]): no channel, no shared reference
//! count, nobody woken. The aggregator moves the shards' sums into its own
//! map and adds them to the store at least every [`FLUSH_EVERY`], in
//! batches. A flush is a batch with an id, frozen until the store
//! acknowledges it: a failed flush is retried as the same batch, and the
//! store applies a batch id once, so a flush whose commit succeeded but
//! whose answer was lost is not counted twice. Nothing is lost either:
//! `stop` takes every shard and flushes before the process exits.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::metrics::Metrics;
use atk_core::decision::VerifyCode;
use atk_core::ids::{KeyId, ProjectId};
use atk_core::key::VerifiableKey;
use atk_store::{Store, UsageBatch, UsageCount};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How often the shards' sums are collected.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// How often sums reach the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Counters written in one transaction at most (a flush sends as many
/// batches as it needs).
pub const MAX_BATCH_COUNTERS: usize = 5_000;
/// How long one flush may take before it counts as failed (its sums are
/// kept for the next one), so a hung store cannot stall the aggregator.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Recording shards; threads are spread over them, so two verifying
/// threads seldom share one.
const SHARDS: usize = 32;

/// Commands; each answers whether everything recorded so far is saved.
enum Control {
    /// Save everything recorded so far, then answer.
    Flush(oneshot::Sender<bool>),
    /// Save everything and stop.
    Stop(oneshot::Sender<bool>),
}

type FastHash = foldhash::fast::RandomState;

/// Sums by key.
type Tallies = HashMap<KeyId, KeyTally, FastHash>;

/// One key's sums: by action, code and hour (whole hours since the epoch,
/// turned into instants only when a batch is made).
struct KeyTally {
    project_id: Arc<ProjectId>,
    last_used: DateTime<Utc>,
    counts: HashMap<(Option<&'static str>, VerifyCode, i64), u64, FastHash>,
}

/// Adds one verification. One hash for a key already seen (the common
/// case); a new key copies its ids once per drain.
fn add(
    tallies: &mut Tallies,
    key: &VerifiableKey,
    action: Option<&'static str>,
    code: VerifyCode,
    at: DateTime<Utc>,
) {
    let tally = match tallies.get_mut(&key.id) {
        Some(tally) => tally,
        None => tallies.entry(key.id.clone()).or_insert(KeyTally {
            project_id: key.project_id.clone(),
            last_used: at,
            counts: HashMap::default(),
        }),
    };
    let hour = at.timestamp().div_euclid(3600);
    *tally.counts.entry((action, code, hour)).or_default() += 1;
    tally.last_used = tally.last_used.max(at);
}

/// Adds `from`'s sums to `into`'s.
fn merge(into: &mut Tallies, from: Tallies) {
    for (key_id, tally) in from {
        match into.entry(key_id) {
            Entry::Vacant(vacant) => {
                vacant.insert(tally);
            }
            Entry::Occupied(mut occupied) => {
                let into = occupied.get_mut();
                into.last_used = into.last_used.max(tally.last_used);
                for (counter, count) in tally.counts {
                    *into.counts.entry(counter).or_default() += count;
                }
            }
        }
    }
}

#[derive(Default)]
struct Shard {
    /// Verifications recorded since the last drain.
    hits: u64,
    tallies: Tallies,
}

struct Shards {
    shards: Box<[Mutex<Shard>]>,
    /// Set by `stop` before it takes the shards; read under a shard's lock.
    stopped: AtomicBool,
}

impl Shards {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Moves everything recorded so far into `into`; how many
    /// verifications that was.
    fn take_into(&self, into: &mut Tallies) -> u64 {
        let mut hits = 0;
        for shard in &self.shards {
            let (shard_hits, tallies) = {
                let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                (
                    std::mem::take(&mut shard.hits),
                    std::mem::take(&mut shard.tallies),
                )
            };
            hits += shard_hits;
            merge(into, tallies);
        }
        hits
    }
}

/// This thread's shard.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

/// Cheap to clone; every clone feeds the same aggregator.
#[derive(Clone)]
pub struct UsageRecorder {
    shards: Arc<Shards>,
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
        let shards = Arc::new(Shards::new());
        let (control, commands) = mpsc::unbounded_channel();
        tokio::spawn(aggregate(store, metrics, shards.clone(), commands));
        Self { shards, control }
    }

    /// Counts one verification of a found key. Never blocks on I/O, never
    /// wakes anyone.
    pub fn record(
        &self,
        key: &VerifiableKey,
        action: Option<&'static str>,
        code: VerifyCode,
        at: DateTime<Utc>,
    ) {
        let mut shard = self.shards.shards[shard_index()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.shards.stopped.load(Ordering::Relaxed) {
            // Only possible after `stop`, when no request is in flight.
            drop(shard);
            tracing::error!(key_id = %key.id, "usage recorder stopped; a verification was not counted");
            return;
        }
        shard.hits += 1;
        add(&mut shard.tallies, key, action, code, at);
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

#[derive(Default)]
struct Pending {
    keys: Tallies,
    /// The batch sent to the store and not yet acknowledged; sent again,
    /// unchanged, before anything newer.
    unacknowledged: Option<UsageBatch>,
}

impl Pending {
    /// Moves everything the shards hold into the pending sums; how many
    /// verifications that was.
    fn take_recorded(&mut self, shards: &Shards) -> u64 {
        shards.take_into(&mut self.keys)
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys with sums not yet acknowledged by the store.
    fn key_count(&self) -> usize {
        self.keys.len()
            + self
                .unacknowledged
                .as_ref()
                .map_or(0, |batch| batch.last_used.len())
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
        // the same order and cannot deadlock each other (the store locks
        // the keys' rows in key order too).
        let mut counts: Vec<UsageCount> = Vec::with_capacity(counters);
        let mut last_used: Vec<(KeyId, DateTime<Utc>)> = Vec::with_capacity(taken.len());
        for key_id in taken {
            let tally = self.keys.remove(&key_id).expect("taken from the map above");
            last_used.push((key_id.clone(), tally.last_used));
            for ((action, code, hour), count) in tally.counts {
                counts.push(UsageCount {
                    key_id: key_id.clone(),
                    project_id: (*tally.project_id).clone(),
                    action,
                    code,
                    hour: DateTime::from_timestamp(hour * 3600, 0)
                        .expect("an hour of a recorded instant is an instant"),
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
    shards: Arc<Shards>,
    mut commands: mpsc::UnboundedReceiver<Control>,
) {
    let mut pending = Pending::default();
    let mut drain = tokio::time::interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flush = Instant::now();
    loop {
        tokio::select! {
            _ = drain.tick() => {
                // How many verifications had waited to be summed.
                let waited = pending.take_recorded(&shards);
                metrics
                    .usage_queue_depth
                    .set(i64::try_from(waited).unwrap_or(i64::MAX));
                if last_flush.elapsed() >= FLUSH_EVERY {
                    pending.flush(store.as_ref(), &metrics).await;
                    last_flush = Instant::now();
                }
                metrics
                    .usage_pending_keys
                    .set(i64::try_from(pending.key_count()).unwrap_or(i64::MAX));
            }
            command = commands.recv() => match command {
                // Every verification recorded before the command was sent
                // is in a shard by now, so taking the shards takes it.
                Some(Control::Flush(ack)) => {
                    pending.take_recorded(&shards);
                    let saved = pending.flush(store.as_ref(), &metrics).await;
                    let _ = ack.send(saved);
                }
                Some(Control::Stop(ack)) => {
                    let saved = stop(store.as_ref(), &metrics, &mut pending, &shards).await;
                    let _ = ack.send(saved);
                    return;
                }
                None => {
                    stop(store.as_ref(), &metrics, &mut pending, &shards).await;
                    return;
                }
            },
        }
    }
}

/// Takes what the shards hold (nothing can be added after), then flushes,
/// retrying a few times: this is the last chance before the process exits.
async fn stop(
    store: &dyn Store,
    metrics: &Metrics,
    pending: &mut Pending,
    shards: &Shards,
) -> bool {
    shards.stopped.store(true, Ordering::SeqCst);
    pending.take_recorded(shards);
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
