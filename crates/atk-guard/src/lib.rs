//! Guards a product backend's routes with AuthToolkit Keys.
//!
//! [`KeyGuard::require`] gives a tower [`Layer`] for one route and the
//! action that route performs. For each request it:
//!
//! 1. reads the key from `Authorization: Bearer …` (or a header you name);
//! 2. refuses a missing key, or one without the secret's shape and
//!    checksum, with 401 at once: no call to the key service;
//! 3. calls verify with the action, the caller's address (the TCP peer, or
//!    `X-Forwarded-For` only behind a proxy you declared trusted) and the
//!    browser `Origin`, if any;
//! 4. answers a refusal in the SPEC error shape: 401 for `NOT_FOUND`,
//!    `REVOKED`, `EXPIRED` and `MALFORMED`; 403 for a missing scope, an
//!    entitlement, the IP allowlist and a browser origin; 429 for rate
//!    limits; 503 when the key service cannot be reached in time (it fails
//!    closed);
//! 5. on success, puts the [`Verified`] key (id, project, kind, scopes) in
//!    the request's extensions, where the [`Verified`] extractor reads it.
//!
//! An optional local cache of allowed decisions ([`KeyGuardBuilder::cache_allowed_for`])
//! is off by default: with it on, a revoked key keeps working on this
//! backend for up to the age you choose.
//!
//! ```no_run
//! use atk_guard::{KeyGuard, Verified};
//! use axum::{Router, routing::post};
//!
//! async fn send(key: Verified) -> String {
//!     format!("sent for {}", key.project_id)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = atk_client::Client::builder("http://127.0.0.1:8080").build()?;
//! let guard = KeyGuard::builder(client).build();
//! let app: Router = Router::new().route(
//!     "/send",
//!     post(send).route_layer(guard.require("notification.send")),
//! );
//! # Ok(())
//! # }
//! ```

mod address;
mod refusal;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use atk_api::verify::{VerifiedKeyOwned, VerifyRequest};
use atk_core::limits::IpAllowlist;
use atk_core::secret::ParsedSecret;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

pub use refusal::Refusal;

/// The verified key of a guarded request: what verify reported about it.
/// Also an axum extractor; a handler behind [`KeyGuard::require`] takes it
/// as an argument.
///
/// ```
/// async fn send(key: atk_guard::Verified) -> String {
///     format!("{} sends for {} with {:?}", key.id, key.project_id, key.scopes)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified(pub Arc<VerifiedKeyOwned>);

impl std::ops::Deref for Verified {
    type Target = VerifiedKeyOwned;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Verified {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Verified>()
            .cloned()
            .ok_or_else(|| Refusal::NotGuarded.into_response())
    }
}

/// What the guard has done since it was built.
///
/// ```
/// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
/// let guard = atk_guard::KeyGuard::builder(client).build();
/// let stats = guard.stats();
/// println!("{} refused without a call, {} verify calls", stats.rejected_locally, stats.verify_calls);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Requests answered 401 without a call: no key, or not the secret's
    /// shape or checksum.
    pub rejected_locally: u64,
    /// Calls made to verify.
    pub verify_calls: u64,
    /// Requests let through from the local cache of allowed decisions.
    pub cache_hits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    rejected_locally: AtomicU64,
    verify_calls: AtomicU64,
    cache_hits: AtomicU64,
}

/// Where the guard reads the key.
#[derive(Debug, Clone)]
enum KeySource {
    Bearer,
    Header(HeaderName),
}

/// Sets up a [`KeyGuard`].
#[derive(Debug)]
pub struct KeyGuardBuilder {
    client: atk_client::Client,
    source: KeySource,
    trusted_proxies: Option<IpAllowlist>,
    timeout: Duration,
    cache_max_age: Option<Duration>,
}

impl KeyGuardBuilder {
    /// Reads the key from this header (its whole value) instead of
    /// `Authorization: Bearer`.
    ///
    /// ```
    /// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// let guard = atk_guard::KeyGuard::builder(client)
    ///     .key_header(axum::http::HeaderName::from_static("x-api-key"))
    ///     .build();
    /// ```
    pub fn key_header(mut self, name: HeaderName) -> Self {
        self.source = KeySource::Header(name);
        self
    }

    /// Trusts `X-Forwarded-For` from these proxies (CIDR or addresses): the
    /// caller's address is then the last one in it that is not a trusted
    /// proxy. Without this, the TCP peer is the caller (axum's
    /// `into_make_service_with_connect_info` provides it).
    ///
    /// ```
    /// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// let guard = atk_guard::KeyGuard::builder(client)
    ///     .trust_forwarded_for(&["10.0.0.0/8"])
    ///     .unwrap()
    ///     .build();
    /// ```
    pub fn trust_forwarded_for<S: AsRef<str>>(
        mut self,
        proxies: &[S],
    ) -> Result<Self, atk_core::limits::LimitError> {
        self.trusted_proxies = Some(IpAllowlist::parse(proxies)?);
        Ok(self)
    }

    /// How long a verify call may take before the request is answered 503;
    /// default 2 s.
    ///
    /// ```
    /// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// let guard = atk_guard::KeyGuard::builder(client)
    ///     .timeout(std::time::Duration::from_millis(300))
    ///     .build();
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keeps allowed decisions for `max_age` and lets the same key, action,
    /// address and origin through without a call meanwhile. A revocation,
    /// expiry or entitlement change then takes up to `max_age` to reach
    /// this backend, and requests served from the cache are neither
    /// counted in the key's usage nor held to its rate limit. Off by
    /// default.
    ///
    /// ```
    /// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// let guard = atk_guard::KeyGuard::builder(client)
    ///     .cache_allowed_for(std::time::Duration::from_secs(5))
    ///     .build();
    /// ```
    pub fn cache_allowed_for(mut self, max_age: Duration) -> Self {
        self.cache_max_age = Some(max_age);
        self
    }

    /// Builds the guard.
    ///
    /// ```
    /// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// let guard = atk_guard::KeyGuard::builder(client).build();
    /// ```
    pub fn build(self) -> KeyGuard {
        let cache = self.cache_max_age.map(|max_age| {
            moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(max_age)
                .build()
        });
        KeyGuard {
            shared: Arc::new(Shared {
                client: self.client,
                source: self.source,
                trusted_proxies: self.trusted_proxies,
                timeout: self.timeout,
                cache,
                counters: Counters::default(),
            }),
        }
    }
}

/// The guard: one per backend, shared by every guarded route.
///
/// ```
/// use axum::{Router, routing::{get, post}};
///
/// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
/// let guard = atk_guard::KeyGuard::builder(client).build();
/// let app: Router = Router::new()
///     .route("/send", post(|| async { "sent" }).route_layer(guard.require("notification.send")))
///     .route("/report", get(|| async { "report" }).route_layer(guard.require("analytics.report.read")));
/// ```
#[derive(Debug, Clone)]
pub struct KeyGuard {
    shared: Arc<Shared>,
}

struct Shared {
    client: atk_client::Client,
    source: KeySource,
    trusted_proxies: Option<IpAllowlist>,
    timeout: Duration,
    /// Allowed decisions by a digest of key, action, address and origin:
    /// never the key itself.
    cache: Option<moka::sync::Cache<[u8; 32], Verified>>,
    counters: Counters,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client", &self.client)
            .field("source", &self.source)
            .field("timeout", &self.timeout)
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl KeyGuard {
    /// Starts a [`KeyGuardBuilder`] that verifies through `client`.
    ///
    /// ```
    /// let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// let guard = atk_guard::KeyGuard::builder(client).build();
    /// ```
    pub fn builder(client: atk_client::Client) -> KeyGuardBuilder {
        KeyGuardBuilder {
            client,
            source: KeySource::Bearer,
            trusted_proxies: None,
            timeout: Duration::from_secs(2),
            cache_max_age: None,
        }
    }

    /// The layer for a route that performs `action` (a catalog action, for
    /// example `notification.send`).
    ///
    /// ```
    /// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// # let guard = atk_guard::KeyGuard::builder(client).build();
    /// let layer = guard.require("notification.send");
    /// ```
    pub fn require(&self, action: &str) -> RequireKeyLayer {
        RequireKeyLayer {
            shared: self.shared.clone(),
            action: Arc::from(action),
        }
    }

    /// Counts of local refusals, verify calls and cache hits so far.
    ///
    /// ```
    /// # let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// # let guard = atk_guard::KeyGuard::builder(client).build();
    /// assert_eq!(guard.stats().verify_calls, 0);
    /// ```
    pub fn stats(&self) -> GuardStats {
        let counters = &self.shared.counters;
        GuardStats {
            rejected_locally: counters.rejected_locally.load(Ordering::Relaxed),
            verify_calls: counters.verify_calls.load(Ordering::Relaxed),
            cache_hits: counters.cache_hits.load(Ordering::Relaxed),
        }
    }

    /// Checks one request's head for `action`: the verified key, or the
    /// response that refuses it. The layer calls this; call it yourself to
    /// guard something that is not a tower service.
    ///
    /// ```no_run
    /// # async fn run(guard: atk_guard::KeyGuard, parts: axum::http::request::Parts) {
    /// match guard.check(&parts, "notification.send").await {
    ///     Ok(key) => println!("{} may send", key.id),
    ///     Err(refusal) => println!("refused: {}", refusal.status()),
    /// }
    /// # }
    /// ```
    pub async fn check(&self, parts: &Parts, action: &str) -> Result<Verified, Refusal> {
        self.shared.check(parts, action).await
    }
}

impl Shared {
    async fn check(&self, parts: &Parts, action: &str) -> Result<Verified, Refusal> {
        let Some(key) = self.key(parts) else {
            self.counters
                .rejected_locally
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::MissingKey);
        };
        // The checksum makes a mistyped or made-up key detectable here,
        // sparing the key service a call.
        if ParsedSecret::parse(key).is_err() {
            self.counters
                .rejected_locally
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Malformed);
        }
        let client_ip = self.client_ip(parts);
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let digest = self
            .cache
            .as_ref()
            .map(|_| decision_digest(key, action, client_ip, origin.as_deref()));
        if let (Some(cache), Some(digest)) = (&self.cache, &digest)
            && let Some(verified) = cache.get(digest)
        {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(verified);
        }
        self.counters.verify_calls.fetch_add(1, Ordering::Relaxed);
        let request = VerifyRequest {
            key: key.to_owned(),
            action: Some(action.to_owned()),
            client_ip,
            origin,
        };
        let outcome = match tokio::time::timeout(self.timeout, self.client.verify(&request)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => return Err(Refusal::from_client_error(error)),
            Err(_) => return Err(Refusal::Unreachable("timed out".into())),
        };
        if !outcome.allowed {
            return Err(Refusal::Denied {
                code: outcome.code,
                missing_scopes: outcome.missing_scopes.into_owned(),
            });
        }
        let Some(key) = outcome.key else {
            return Err(Refusal::Unreachable(
                "verify allowed a key without reporting it".into(),
            ));
        };
        let verified = Verified(Arc::new(key));
        if let (Some(cache), Some(digest)) = (&self.cache, digest) {
            cache.insert(digest, verified.clone());
        }
        Ok(verified)
    }

    fn key<'a>(&self, parts: &'a Parts) -> Option<&'a str> {
        match &self.source {
            KeySource::Bearer => {
                let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
                let (scheme, token) = value.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim())
                    .filter(|token| !token.is_empty())
            }
            KeySource::Header(name) => parts
                .headers
                .get(name)?
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|token| !token.is_empty()),
        }
    }

    fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        address::client_ip(peer, &parts.headers, self.trusted_proxies.as_ref())
    }
}

/// One digest for a decision's inputs, so the cache holds no secret.
fn decision_digest(
    key: &str,
    action: &str,
    client_ip: Option<IpAddr>,
    origin: Option<&str>,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [
        key,
        action,
        &client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        origin.unwrap_or(""),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// The layer [`KeyGuard::require`] returns.
#[derive(Debug, Clone)]
pub struct RequireKeyLayer {
    shared: Arc<Shared>,
    action: Arc<str>,
}

impl<S> Layer<S> for RequireKeyLayer {
    type Service = RequireKey<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireKey {
            inner,
            shared: self.shared.clone(),
            action: self.action.clone(),
        }
    }
}

/// The service [`RequireKeyLayer`] wraps around a route.
#[derive(Debug, Clone)]
pub struct RequireKey<S> {
    inner: S,
    shared: Arc<Shared>,
    action: Arc<str>,
}

impl<S> Service<Request> for RequireKey<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone is not the service that was polled ready; the one that
        // was goes into the future (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let action = self.action.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match shared.check(&parts, &action).await {
                Ok(verified) => {
                    parts.extensions.insert(verified);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}
