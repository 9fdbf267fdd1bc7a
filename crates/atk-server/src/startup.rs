//! Building the service: the one path `atk serve`, the CLI and every test
//! take, so what the tests exercise is what runs in production.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use atk_core::secret::{SecretHash, random_base62};
use atk_core::{Clock, SystemClock};
use atk_store::{SqlStore, Store, StoreError};
use thiserror::Error;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::http::auth::AdminCredential;
use crate::http::{self, AppState};
use crate::service::{Accounts, AdminTokenText, ConsoleToken, HelpGaps, Service, ServiceError};
use crate::usage::UsageRecorder;
use crate::verifier::Verifier;

/// How long requests in flight may take to finish after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the admin token's keyed hash is kept.
const ADMIN_TOKEN_SETTING: &str = "admin_token_hash";

#[derive(Debug, Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("first-start setup failed: {0}")]
    Bootstrap(#[from] ServiceError),
    #[error("--trusted-proxy: {0}")]
    TrustedProxies(atk_core::limits::LimitError),
    #[error(transparent)]
    ScanningKeys(#[from] crate::service::leaks::ScanningKeysError),
    #[error("the stored admin token hash is corrupt")]
    CorruptAdminHash,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The store and the services over it, opened from configuration. The CLI
/// uses this directly; [`Application`] adds HTTP on top.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<SqlStore>,
    pub service: Arc<Service>,
    pub accounts: Arc<Accounts>,
    pub verifier: Arc<Verifier>,
    pub help_gaps: Arc<HelpGaps>,
}

impl Services {
    /// Prepares the data directory, loads (or creates) the pepper, connects
    /// and applies migrations.
    pub async fn open(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        config.prepare_data_dir()?;
        let pepper = config.load_pepper()?;
        let store = Arc::new(SqlStore::connect_and_migrate(&config.database_url()).await?);
        let dyn_store: Arc<dyn Store> = store.clone();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let usage = UsageRecorder::start(dyn_store.clone(), metrics.clone());
        let verifier = Arc::new(Verifier::new(
            dyn_store.clone(),
            pepper.clone(),
            clock.clone(),
            usage,
            metrics,
        ));
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            dyn_store.clone(),
            pepper.clone(),
            clock.clone(),
        ));
        let help_gaps = Arc::new(HelpGaps::new(store.clone(), clock.clone()));
        Ok(Self {
            service: Arc::new(
                Service::new(dyn_store, pepper, clock, verifier.clone())
                    .refusing(AdminTokenText::new(config.admin_token.as_deref())),
            ),
            help_gaps,
            accounts,
            verifier,
            store,
        })
    }
}

impl Services {
    /// Saves every usage count still in memory and closes the store. The
    /// last thing a process does before it exits; `false` when some usage
    /// counts could not be saved (the process should exit non-zero).
    pub async fn shutdown(&self) -> bool {
        let saved = self.verifier.usage().stop().await;
        self.store.close().await;
        saved
    }
}

/// What first start created and must be shown to the operator once.
#[derive(Default)]
pub struct Bootstrap {
    /// A newly generated admin token: print it once, it is never shown again.
    pub new_admin_token: Option<String>,
    pub demo_project_created: bool,
    /// While no console account exists: the one-time link that creates the
    /// first owner (valid 24 hours). Print it; it is never shown again.
    pub setup_link: Option<String>,
}

/// The admin token and the setup link are secrets: `Debug` says only
/// whether they are there.
impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field(
                "new_admin_token",
                &self.new_admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("demo_project_created", &self.demo_project_created)
            .field(
                "setup_link",
                &self.setup_link.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub struct Application {
    listener: TcpListener,
    services: Services,
    state: AppState,
    connections: crate::http::connections::ConnectionLimits,
    trusted_proxies: Arc<atk_core::limits::IpAllowlist>,
    pub bootstrap: Bootstrap,
}

impl Application {
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Opens the store, runs first-start setup and binds the listener
    /// (port 0 picks a free port, as the tests do).
    pub async fn build_with_clock(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let services = Services::open(config, clock).await?;
        let demo_project_created = services.service.ensure_demo_project().await?;
        let (admin, new_admin_token) = admin_credential(config, &services).await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
        let public_url = config.public_url(bound);
        services.accounts.prune().await?;
        let setup_link =
            services
                .accounts
                .setup_link_if_no_account()
                .await?
                .map(|token: ConsoleToken| {
                    format!(
                        "{public_url}{}",
                        crate::http::console::paths::setup(token.expose())
                    )
                });
        let state = AppState::new(crate::http::Shared {
            service: services.service.clone(),
            accounts: services.accounts.clone(),
            verifier: services.verifier.clone(),
            help_gaps: services.help_gaps.clone(),
            address_limits: Arc::new(crate::limiter::AddressLimits {
                failed_verifications: crate::limiter::AddressLimiter::new(
                    config.failed_verify_limit,
                ),
                bad_credentials: crate::limiter::AddressLimiter::new(config.bad_credential_limit),
            }),
            admin,
            console: crate::http::console::ConsoleSettings {
                secure_cookies: config.secure_cookies,
                public_url: public_url.as_str().into(),
            },
            help: Arc::new(crate::help::Help::load_with(config.knowledge_documents()?)),
            scanning_keys: Arc::new(match &config.secret_scanning_keys {
                Some(path) => crate::service::leaks::ScanningKeys::load(path)?,
                None => crate::service::leaks::ScanningKeys::default(),
            }),
        });
        Ok(Self {
            listener,
            services,
            state,
            connections: config
                .connections
                .within_open_file_limit(crate::http::connections::open_file_limit()),
            trusted_proxies: Arc::new(
                atk_core::limits::IpAllowlist::parse(&config.trusted_proxies)
                    .map_err(StartupError::TrustedProxies)?,
            ),
            bootstrap: Bootstrap {
                new_admin_token,
                demo_project_created,
                setup_link,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The HTTP routes with every layer the listener serves them with, for
    /// driving the service in process (the fuzz harness). Requests that
    /// reach it directly carry no client address.
    pub fn router(&self) -> http::Framed {
        http::router(self.state.clone(), self.connections.body_timeout)
    }

    /// Serves until `shutdown` resolves, then finishes the requests in
    /// flight, saves the usage counts and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = http::router(self.state, self.connections.body_timeout);
        tracing::info!(
            addr = %self.listener.local_addr()?,
            store = self.services.store.backend_name(),
            "listening"
        );
        let trimmer = crate::memory::spawn_trimmer();
        let (stopping, mut stop_requested) = tokio::sync::watch::channel(false);
        // Connect info gives the audit log each change's source address.
        let server = crate::http::connections::serve(
            self.listener,
            router,
            self.connections,
            self.trusted_proxies.clone(),
            async move {
                shutdown.await;
                let _ = stopping.send(true);
            },
        );
        // Requests in flight get SHUTDOWN_GRACE to finish; a client that
        // holds on longer must not keep the usage counts from being saved.
        let deadline = async move {
            let _ = stop_requested.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            () = server => {}
            () = deadline => {
                // Counts those requests record from here on are lost (and
                // logged as such): the price of not waiting forever.
                tracing::warn!(
                    grace_s = SHUTDOWN_GRACE.as_secs(),
                    "requests still in flight after the shutdown grace; stopping anyway"
                );
            }
        }
        trimmer.abort();
        let saved = self.services.shutdown().await;
        if !saved {
            return Err(std::io::Error::other("usage counts could not be saved"));
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// The configured admin token wins; otherwise the stored hash; otherwise a
/// new token is generated and its hash stored (first writer wins when
/// several nodes start at once, and only that node prints the token).
async fn admin_credential(
    config: &Config,
    services: &Services,
) -> Result<(AdminCredential, Option<String>), StartupError> {
    let pepper = services.service.pepper();
    if let Some(token) = config.checked_admin_token()? {
        return Ok((AdminCredential::from_hash(pepper.hash_token(token)), None));
    }
    let store = &services.store;
    let mut new_token = None;
    if store.get_setting(ADMIN_TOKEN_SETTING).await?.is_none() {
        let token = format!("atk_admin_{}", random_base62(43));
        let hash = hex::encode(pepper.hash_token(&token).0);
        if store
            .insert_setting_if_absent(ADMIN_TOKEN_SETTING, &hash)
            .await?
        {
            new_token = Some(token);
        }
    }
    let stored = store
        .get_setting(ADMIN_TOKEN_SETTING)
        .await?
        .ok_or(StartupError::CorruptAdminHash)?;
    let bytes: [u8; 32] = hex::decode(stored)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(StartupError::CorruptAdminHash)?;
    Ok((AdminCredential::from_hash(SecretHash(bytes)), new_token))
}

pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, stopping"),
        () = terminate => tracing::info!("SIGTERM received, stopping"),
    }
}
