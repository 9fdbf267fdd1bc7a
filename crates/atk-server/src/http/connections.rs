//! Accepting and serving connections, with the limits slow clients need:
//! a deadline for each request's headers (which also closes a keep-alive
//! connection that sits idle), a deadline for its body (see
//! [`super::router`]), and a cap on open connections.
//!
//! The header deadline is kept by one sweeper for all connections, not by
//! hyper's per-request timer: that timer put an entry in the runtime's
//! timer wheel and took it out again for every request, under the wheel's
//! lock, which both worker threads share. Here a request and each write
//! cost a relaxed store of a coarse clock. A connection with no request in
//! flight that has neither started one nor written anything for the
//! deadline (since its opening, or the last bytes of its previous answer)
//! is closed at most half the deadline after it passed (at most two
//! seconds later). So an idle keep-alive connection and a stalled header
//! are closed as before; an answer still being written keeps its
//! connection as long as the client reads it, and one whose client has
//! stopped reading for the deadline is closed.
//!
//! At the cap, a new connection takes the place of the oldest one that is
//! not serving a request (a stalled or idle one). A slowloris that holds
//! every slot with half-sent headers therefore cannot keep `/healthz` or a
//! verify out: each newcomer pushes out the longest-stalled connection.
//! Only when every open connection is serving a request is the newcomer
//! closed at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Framed;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// The caller's address as the API sees it (audit, per-address limits,
/// a Service Role Key's allowlist): see [`client_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);

/// The peer's address; or, when the peer is a trusted proxy
/// (`--trusted-proxy`), the last `X-Forwarded-For` address that is not
/// itself a trusted proxy. Forwarded addresses are believed only from a
/// trusted proxy, and only as far as trusted proxies wrote them: the header
/// is read from the right and stops at the first address they did not add,
/// so whatever the client put left of it (an address or garbage) is never
/// read. Something unreadable in the trusted part is not believed: the
/// peer is the caller then.
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &atk_core::limits::IpAllowlist,
) -> std::net::IpAddr {
    if trusted.is_empty() || !trusted.admits(peer) {
        return peer;
    }
    let values: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    // Every forwarded address a trusted proxy: the first one is the client.
    let mut leftmost = None;
    for value in values.into_iter().rev() {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for entry in text.rsplit(',') {
            let Ok(address) = entry.trim().parse::<std::net::IpAddr>() else {
                return peer;
            };
            if !trusted.admits(address) {
                return address;
            }
            leftmost = Some(address);
        }
    }
    leftmost.unwrap_or(peer)
}

/// The slow-client limits (flags `--max-connections`, `--header-timeout`,
/// `--body-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, counted from the connection's
    /// start or from the previous response (so it is the idle timeout too).
    pub header_timeout: Duration,
    /// Time for a request's whole body to arrive.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept back from connections for the store, logs and
/// the listener itself.
const RESERVED_FILES: u64 = 64;

impl ConnectionLimits {
    /// These limits with `max_connections` lowered, when needed, to what
    /// the process's open-file limit allows beside [`RESERVED_FILES`]: a
    /// cap above that would only turn into failed accepts.
    pub fn within_open_file_limit(self, open_files: Option<u64>) -> Self {
        let Some(open_files) = open_files else {
            return self;
        };
        let room =
            usize::try_from(open_files.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX);
        if room < self.max_connections {
            tracing::warn!(
                configured = self.max_connections,
                open_file_limit = open_files,
                max_connections = room,
                "max connections lowered to fit the open-file limit (raise it with ulimit -n)"
            );
        }
        Self {
            max_connections: self.max_connections.min(room),
            ..self
        }
    }
}

/// This process's soft limit on open files, where the platform says.
pub fn open_file_limit() -> Option<u64> {
    // /proc is read rather than calling getrlimit, which would need unsafe
    // code and a libc binding for one number.
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One open connection: how many requests it is serving now, since when
/// it has been waiting for the next one, and how to close it.
struct Slot {
    in_flight: AtomicUsize,
    /// The clock's reading when the connection opened, last finished a
    /// request or last wrote to its socket.
    idle_since: AtomicU64,
    /// The server's coarse clock ([`OpenConnections::clock`]), held here so
    /// that a request touches only its own connection's reference count.
    clock: Arc<AtomicU64>,
    /// Tells the connection to check whether it should close: it has been
    /// quiet too long, or (with `making_room` set) the server is full.
    evict: Notify,
    making_room: std::sync::atomic::AtomicBool,
}

impl Slot {
    fn touch(&self) {
        let now = self.clock.load(Ordering::Relaxed);
        self.idle_since.store(now, Ordering::Relaxed);
    }

    /// `written`, having marked the connection when bytes went out.
    fn after_write(
        &self,
        written: std::task::Poll<std::io::Result<usize>>,
    ) -> std::task::Poll<std::io::Result<usize>> {
        if matches!(written, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        written
    }

    /// Whether the connection is serving nothing and has been quiet for
    /// longer than `deadline` as of `now`.
    fn waited_past(&self, now: u64, deadline: u64) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && now.saturating_sub(self.idle_since.load(Ordering::Relaxed)) > deadline
    }
}

struct OpenConnections {
    /// By age: ids only grow, so the first idle entry is the oldest.
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    /// Milliseconds since the server started, as of the sweeper's last
    /// tick: a coarse clock that a request reads without a system call.
    clock: Arc<AtomicU64>,
}

impl OpenConnections {
    fn new() -> Self {
        Self {
            slots: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            clock: Arc::new(AtomicU64::new(0)),
        }
    }

    fn register(&self) -> (u64, Arc<Slot>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.clock.load(Ordering::Relaxed)),
            clock: self.clock.clone(),
            evict: Notify::new(),
            making_room: std::sync::atomic::AtomicBool::new(false),
        });
        self.lock().insert(id, slot.clone());
        (id, slot)
    }

    /// Advances the clock to `now` and tells every connection that has
    /// been quiet longer than `deadline` (milliseconds) to close. Each one
    /// checks again before it does (see [`serve`]): a request may have
    /// started since.
    fn close_idle(&self, now: u64, deadline: u64) {
        self.clock.store(now, Ordering::Relaxed);
        for slot in self.lock().values() {
            if slot.waited_past(now, deadline) {
                slot.evict.notify_one();
            }
        }
    }

    /// Puts back a connection that was told to close but had started a
    /// request meanwhile.
    fn keep(&self, id: u64, slot: &Arc<Slot>) {
        self.lock().insert(id, slot.clone());
    }

    /// Tells the oldest connection that is not serving a request to close;
    /// `false` when every open connection is serving one.
    fn evict_oldest_idle(&self) -> bool {
        let mut slots = self.lock();
        let Some(oldest_idle) = slots
            .iter()
            .find(|(_, slot)| slot.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(slot) = slots.remove(&oldest_idle) {
            slot.making_room.store(true, Ordering::Release);
            slot.evict.notify_one();
        }
        true
    }

    fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a request as in flight until its response is ready; then the
/// connection is quiet from that moment (or from its last write).
struct InFlight(Arc<Slot>);

impl InFlight {
    fn start(slot: &Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(slot.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A connection's socket that marks its slot at every write, so an
    /// answer still being written to a client that reads it is not taken
    /// for a quiet connection. Reads mark nothing: a header that trickles
    /// in must still arrive within the deadline.
    struct Marked<T> {
        #[pin]
        io: T,
        slot: Arc<Slot>,
    }
}

impl<T: hyper::rt::Read> hyper::rt::Read for Marked<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write> hyper::rt::Write for Marked<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        this.slot.after_write(this.io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        this.slot.after_write(this.io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// Aborts the task when dropped: the sweeper stops with `serve`, also when
/// `serve` itself is dropped after the shutdown grace period.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the sweeper looks for connections past their header
/// deadline: a quarter of it, and at least once a second.
fn sweep_interval(header_timeout: Duration) -> Duration {
    (header_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Whether an accept error is about one connection (the next accept may
/// work at once) rather than the process (out of files: back off).
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// the connections' requests in flight to finish (idle connections close
/// at once).
pub async fn serve(
    listener: TcpListener,
    router: Framed,
    limits: ConnectionLimits,
    trusted_proxies: Arc<atk_core::limits::IpAllowlist>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let open = Arc::new(OpenConnections::new());
    // One permit per open connection, released when its socket is closed:
    // the count of open sockets, not of registered slots, is what the
    // open-file limit bounds.
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The sweeper below keeps the header deadline instead (see the module's
    // comment); hyper has no timer, so it keeps none of its own.
    builder.header_read_timeout(None);
    let interval = sweep_interval(limits.header_timeout);
    // The coarse clock lags real time by up to one interval, so a
    // connection counts as past its deadline one interval later: never
    // before the deadline, at most two intervals after it.
    let deadline =
        u64::try_from((limits.header_timeout + interval).as_millis()).unwrap_or(u64::MAX);
    let _sweeper = AbortOnDrop(tokio::spawn({
        let open = open.clone();
        async move {
            let started = tokio::time::Instant::now();
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // The time now, not the tick's: a late tick must not leave
                // the clock behind.
                let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                open.close_idle(now, deadline);
            }
        }
    }));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept connections; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) if open.evict_oldest_idle() => {
                // The evicted connection closes at once and hands its
                // permit over.
                match permits.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => break,
                }
            }
            Err(_) => {
                tracing::debug!(%peer, "every connection is serving a request; closing a new one");
                continue;
            }
        };
        let (id, slot) = open.register();
        // Small JSON answers go out at once rather than waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let serving_slot = slot.clone();
        let trusted = trusted_proxies.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let client = client_address(peer.ip(), request.headers(), &trusted);
            request.extensions_mut().insert(ClientAddress(client));
            let serving = InFlight::start(&serving_slot);
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await;
                drop(serving);
                response
            }
        });
        let io = Marked {
            io: TokioIo::new(stream),
            slot: slot.clone(),
        };
        let connection = graceful.watch(builder.serve_connection(io, service));
        let open = open.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            loop {
                tokio::select! {
                    // Errors here are the client's doing (a reset, a body
                    // deadline passed): nothing to report.
                    _ = &mut connection => break,
                    () = slot.evict.notified() => {
                        // Checked again here, where requests start and end
                        // (both happen inside this task's polls of the
                        // connection): one may have started since the
                        // sweeper or the accept loop looked.
                        if slot.making_room.swap(false, Ordering::AcqRel) {
                            if slot.in_flight.load(Ordering::Acquire) == 0 {
                                break;
                            }
                            open.keep(id, &slot);
                        } else if slot.waited_past(slot.clock.load(Ordering::Relaxed), deadline) {
                            break;
                        }
                    }
                }
            }
            open.close(id);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_connection_not_serving_a_request_is_the_one_evicted() {
        let open = Arc::new(OpenConnections::new());
        let (first, first_slot) = open.register();
        let (_, second_slot) = open.register();
        let (third, _) = open.register();
        let _busy = InFlight::start(&first_slot);
        assert!(open.evict_oldest_idle());
        assert_eq!(
            open.lock().keys().copied().collect::<Vec<_>>(),
            vec![first, third]
        );
        assert!(
            ready_now(second_slot.evict.notified()),
            "the second connection was told to close"
        );
    }

    #[test]
    fn when_every_connection_is_serving_a_request_none_is_evicted() {
        let open = Arc::new(OpenConnections::new());
        let (_, slot) = open.register();
        let _busy = InFlight::start(&slot);
        assert!(!open.evict_oldest_idle());
        assert_eq!(open.lock().len(), 1);
    }

    #[test]
    fn a_connection_is_told_to_close_once_it_has_been_quiet_past_the_header_deadline() {
        let open = Arc::new(OpenConnections::new());
        let (_, waiting) = open.register();
        let (_, busy) = open.register();
        let (_, answered) = open.register();
        let (_, writing) = open.register();
        let _busy = InFlight::start(&busy);
        // The third connection finished a request at 900 ms, and the fourth
        // was still writing its answer at 1,500 ms: each is quiet from then.
        open.clock.store(900, Ordering::Relaxed);
        drop(InFlight::start(&answered));
        open.clock.store(1_500, Ordering::Relaxed);
        writing.touch();

        open.close_idle(1_000, 1_000);
        assert!(
            !ready_now(waiting.evict.notified()),
            "not past 1,000 ms yet"
        );

        open.close_idle(1_001, 1_000);
        assert!(
            ready_now(waiting.evict.notified()),
            "opened at 0, never asked"
        );
        assert!(!ready_now(answered.evict.notified()));
        assert!(!ready_now(writing.evict.notified()));

        open.close_idle(1_901, 1_000);
        assert!(ready_now(answered.evict.notified()));
        assert!(!ready_now(writing.evict.notified()), "it wrote at 1,500 ms");
        assert!(
            !ready_now(busy.evict.notified()),
            "a request in flight keeps its connection however long it takes"
        );
        assert!(!busy.waited_past(1_000_000, 1_000));
        assert!(waiting.waited_past(1_901, 1_000));
    }

    #[test]
    fn the_sweep_comes_at_least_four_times_per_deadline_and_once_a_second() {
        assert_eq!(
            sweep_interval(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_cap_is_lowered_to_fit_the_open_file_limit() {
        let limits = ConnectionLimits::default();
        assert_eq!(
            limits.within_open_file_limit(Some(256)).max_connections,
            192
        );
        assert_eq!(
            limits
                .within_open_file_limit(Some(1_048_576))
                .max_connections,
            1024
        );
        assert_eq!(limits.within_open_file_limit(None), limits);
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_a_trusted_proxy() {
        use atk_core::limits::IpAllowlist;
        let trusted = IpAllowlist::parse(&["10.0.0.0/8"]).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.7, 203.0.113.9, 10.0.0.5".parse().unwrap(),
        );
        let proxy = "10.0.0.1".parse().unwrap();
        let stranger = "192.0.2.1".parse().unwrap();
        let client: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_address(proxy, &headers, &trusted), client);
        assert_eq!(client_address(stranger, &headers, &trusted), stranger);
        assert_eq!(
            client_address(proxy, &headers, &IpAllowlist::default()),
            proxy
        );
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(client_address(proxy, &headers, &trusted), proxy);
        // What the client wrote left of the proxies' part is never read:
        // garbage there cannot make the proxy the caller.
        headers.insert(
            "x-forwarded-for",
            "garbage, 203.0.113.9, 10.0.0.5".parse().unwrap(),
        );
        assert_eq!(client_address(proxy, &headers, &trusted), client);
        // Only trusted proxies forwarded: the first of them.
        headers.insert("x-forwarded-for", "10.0.0.7, 10.0.0.5".parse().unwrap());
        assert_eq!(
            client_address(proxy, &headers, &trusted),
            "10.0.0.7".parse::<std::net::IpAddr>().unwrap()
        );
    }

    /// Whether a future is ready on its first poll.
    fn ready_now(future: impl Future<Output = ()>) -> bool {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::pin!(future)
            .as_mut()
            .poll(&mut context)
            .is_ready()
    }
}
