//! `GET /metrics`: Prometheus text format, one registry per node (per
//! [`crate::Application`], so two nodes in one test process count apart).
//!
//! Labels never hold a secret, a key hash, a key id or a project id: only
//! verify codes, route templates, methods, statuses and fixed kinds, so the
//! number of series is bounded by the code, not by the traffic.
//!
//! Hot-path metrics are resolved once (one counter per verify code, one
//! per cache outcome); those every request adds to (verifications, cache
//! hits, misses and evictions, HTTP requests) are counted per thread (see
//! [`per_thread`]), so recording one is a plain add. Only the HTTP request
//! counter looks its labels up per request, in a map of its own with a
//! fast hash (see [`HttpRequests`]).

use std::time::Duration;

use atk_core::decision::VerifyCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod per_thread;

/// A counter that every request adds to. Its `inc` returns what the
/// calling thread's line held, not the total; nothing reads it.
type HotCounter = Counter<u64, per_thread::PerThreadCount>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template (`/v1/projects/{project_id}/keys`), or
    /// `unmatched`: never the raw path, which holds ids.
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

/// A route template as a static string: each distinct template (there are
/// as many as the router has routes) is stored once for the process. The
/// frame labels requests with these (see `http::frame::RouteLabels`), so
/// this runs when the server starts, not per request.
pub fn route_label(template: &str) -> &'static str {
    type Templates = std::collections::HashSet<&'static str, foldhash::fast::FixedState>;
    static TEMPLATES: std::sync::OnceLock<std::sync::RwLock<Templates>> =
        std::sync::OnceLock::new();
    let templates = TEMPLATES.get_or_init(Default::default);
    if let Some(known) = templates
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(template)
    {
        return known;
    }
    let mut templates = templates
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match templates.get(template) {
        Some(known) => known,
        None => {
            let stored: &'static str = Box::leak(template.into());
            templates.insert(stored);
            stored
        }
    }
}

/// The method as a static string (`other` for extension methods).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Which store query, for `atk_store_queries_total`.
#[derive(Debug, Clone, Copy)]
pub enum StoreQuery {
    KeyLookup,
    EntitlementLookup,
    KeyHashesLoad,
    UsageFlush,
}

impl StoreQuery {
    const ALL: [Self; 4] = [
        Self::KeyLookup,
        Self::EntitlementLookup,
        Self::KeyHashesLoad,
        Self::UsageFlush,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::KeyLookup => "key_lookup",
            Self::EntitlementLookup => "entitlement_lookup",
            Self::KeyHashesLoad => "key_hashes_load",
            Self::UsageFlush => "usage_flush",
        }
    }
}

/// Which verifier cache, for the hit, miss and eviction counters.
#[derive(Debug, Clone, Copy)]
pub enum CacheName {
    Keys,
    Entitlements,
}

pub struct Metrics {
    registry: Registry,
    verifications: [HotCounter; VerifyCode::ALL.len()],
    pub verify_seconds: Histogram,
    cache_hits: [HotCounter; 2],
    cache_misses: [HotCounter; 2],
    cache_evictions: [HotCounter; 2],
    cache_entries: [Gauge; 2],
    /// Well-formed keys refused by the membership filter with no query.
    pub unknown_keys_filtered: Counter,
    pub filter_keys: Gauge,
    store_queries: [Counter; StoreQuery::ALL.len()],
    pub feed_lag_seconds: Histogram,
    pub feed_reconnects: Counter,
    pub feed_received: Counter,
    pub usage_queue_depth: Gauge,
    /// Keys whose usage sums wait for the store.
    pub usage_pending_keys: Gauge,
    pub usage_flush_seconds: Histogram,
    pub http_requests: HttpRequests,
}

/// `atk_http_requests_total`. The family's own lookup hashes the labels
/// with SipHash on every request; each label set's counter is looked up
/// here instead, in a map keyed by the same labels with a fast hash (they
/// are route templates, methods and statuses: nothing a client can flood).
pub struct HttpRequests {
    family: Family<HttpLabels, HotCounter>,
    resolved: std::sync::RwLock<
        std::collections::HashMap<HttpLabels, HotCounter, foldhash::fast::FixedState>,
    >,
}

impl HttpRequests {
    fn new(family: Family<HttpLabels, HotCounter>) -> Self {
        Self {
            family,
            resolved: Default::default(),
        }
    }

    /// Counts one answered request.
    pub fn count(&self, labels: HttpLabels) {
        let resolved = self
            .resolved
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(counter) = resolved.get(&labels) {
            counter.inc();
            return;
        }
        drop(resolved);
        let counter = self.family.get_or_create(&labels).clone();
        counter.inc();
        self.resolved
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(labels, counter);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// 10 µs to about 330 ms, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("atk");
        let verifications_family = Family::<CodeLabel, HotCounter>::default();
        let verifications = VerifyCode::ALL.map(|code| {
            verifications_family
                .get_or_create(&CodeLabel {
                    code: code.as_str(),
                })
                .clone()
        });
        registry.register(
            "verifications",
            "Verifications answered, by result code",
            verifications_family,
        );
        let verify_seconds = latency_buckets();
        registry.register(
            "verify_duration_seconds",
            "Time to decide one verification, in the verifier (without HTTP); one in 16 is timed",
            verify_seconds.clone(),
        );
        let caches = [CacheName::Keys, CacheName::Entitlements].map(|cache| match cache {
            CacheName::Keys => "keys",
            CacheName::Entitlements => "entitlements",
        });
        let mut per_cache = |name: &str, help: &str| {
            let family = Family::<CacheLabel, HotCounter>::default();
            let counters = caches.map(|cache| family.get_or_create(&CacheLabel { cache }).clone());
            registry.register(name, help, family);
            counters
        };
        let cache_hits = per_cache("verifier_cache_hits", "Verifier cache hits");
        let cache_misses = per_cache(
            "verifier_cache_misses",
            "Verifier cache misses (a store query followed)",
        );
        let cache_evictions = per_cache(
            "verifier_cache_evictions",
            "Entries evicted for size or age (not for announced changes)",
        );
        let entries_family = Family::<CacheLabel, Gauge>::default();
        let cache_entries =
            caches.map(|cache| entries_family.get_or_create(&CacheLabel { cache }).clone());
        registry.register(
            "verifier_cache_entries",
            "Entries the verifier cache holds",
            entries_family,
        );
        let unknown_keys_filtered = Counter::default();
        registry.register(
            "unknown_keys_filtered",
            "Well-formed keys that were never issued, refused by the membership filter without a store query",
            unknown_keys_filtered.clone(),
        );
        let filter_keys = Gauge::default();
        registry.register(
            "membership_filter_keys",
            "Key hashes in the membership filter",
            filter_keys.clone(),
        );
        let store_family = Family::<KindLabel, Counter>::default();
        let store_queries = StoreQuery::ALL.map(|query| {
            store_family
                .get_or_create(&KindLabel {
                    kind: query.as_str(),
                })
                .clone()
        });
        registry.register(
            "store_queries",
            "Store queries made by the verification path and usage counting, by kind",
            store_family,
        );
        let feed_lag_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 14));
        registry.register(
            "change_feed_lag_seconds",
            "From a change's commit on any node to its announcement reaching this node",
            feed_lag_seconds.clone(),
        );
        let feed_reconnects = Counter::default();
        registry.register(
            "change_feed_reconnects",
            "Times this node's change-feed listener reconnected (each drops the caches)",
            feed_reconnects.clone(),
        );
        let feed_received = Counter::default();
        registry.register(
            "change_feed_received",
            "Change announcements received",
            feed_received.clone(),
        );
        let usage_queue_depth = Gauge::default();
        registry.register(
            "usage_queue_depth",
            "Verifications waiting to be summed into usage counters",
            usage_queue_depth.clone(),
        );
        let usage_pending_keys = Gauge::default();
        registry.register(
            "usage_pending_keys",
            "Keys' usage sums waiting to be written to the store (a key both in the batch being written and in newer sums counts twice)",
            usage_pending_keys.clone(),
        );
        let usage_flush_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "usage_flush_duration_seconds",
            "Time to write one batch of usage counters",
            usage_flush_seconds.clone(),
        );
        let http_requests = Family::<HttpLabels, HotCounter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        Self {
            registry,
            verifications,
            verify_seconds,
            cache_hits,
            cache_misses,
            cache_evictions,
            cache_entries,
            unknown_keys_filtered,
            filter_keys,
            store_queries,
            feed_lag_seconds,
            feed_reconnects,
            feed_received,
            usage_queue_depth,
            usage_pending_keys,
            usage_flush_seconds,
            http_requests: HttpRequests::new(http_requests),
        }
    }

    /// Counts one verification; `took` is its time when it was sampled.
    pub fn verified(&self, code: VerifyCode, took: Option<Duration>) {
        self.verifications[code as usize].inc();
        if let Some(took) = took {
            self.verify_seconds.observe(took.as_secs_f64());
        }
    }

    pub fn cache_hit(&self, cache: CacheName) {
        self.cache_hits[cache as usize].inc();
    }

    pub fn cache_miss(&self, cache: CacheName) {
        self.cache_misses[cache as usize].inc();
    }

    pub fn cache_evicted(&self, cache: CacheName) {
        self.cache_evictions[cache as usize].inc();
    }

    pub fn set_cache_entries(&self, cache: CacheName, entries: u64) {
        self.cache_entries[cache as usize].set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    pub fn store_query(&self, query: StoreQuery) {
        self.store_queries[query as usize].inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Moves `counter` up to `total`, a count kept elsewhere (the store's
/// change feed counts its own events). One scrape at a time, so two
/// concurrent scrapes cannot both add the same difference.
pub fn catch_up(counter: &Counter, total: u64) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

/// One verification in this many is timed for `atk_verify_duration_seconds`.
pub const LATENCY_SAMPLE: u32 = 16;

/// Whether this verification is one to time: every [`LATENCY_SAMPLE`]th on
/// each thread, with no shared counter to contend on.
pub fn sample_latency() -> bool {
    thread_local! {
        static TICK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    TICK.with(|tick| {
        let next = tick.get().wrapping_add(1);
        tick.set(next);
        next % LATENCY_SAMPLE == 0
    })
}
