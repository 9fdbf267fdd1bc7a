//! A typed async client for the AuthToolkit Keys API.
//!
//! Every operation of the API is one method, taking and returning the
//! wire types of [`atk_api`] (re-exported as [`api`]). Refusals come back
//! as [`Error::Api`] with the SPEC error code; a call that could not reach
//! the service is [`Error::Transport`] or [`Error::Timeout`].
//!
//! Calls that are safe to repeat are retried with backoff: any call whose
//! connection could not be opened (nothing was sent), and reads and `PUT`s
//! also after a timeout or a 502/503/504. A create, rotate, revoke, expire
//! or verify that may have reached the server is never sent twice: it
//! could make a second key or count a verification twice.
//!
//! The bearer credential is never printed: [`Token`]'s `Debug` hides it,
//! and so do the `Debug` of the client and of every secret-bearing answer.
//!
//! ```no_run
//! use atk_client::{Client, api::verify::VerifyRequest};
//!
//! # async fn run() -> Result<(), atk_client::Error> {
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .token("atk_admin_…")
//!     .build()?;
//! let outcome = client
//!     .verify(&VerifyRequest {
//!         key: "atk_live_…".into(),
//!         action: Some("notification.send".into()),
//!         client_ip: None,
//!         origin: None,
//!     })
//!     .await?;
//! println!("{}", outcome.code.as_str());
//! # Ok(())
//! # }
//! ```

mod error;
mod retry;

use std::time::Duration;

pub use atk_api as api;
use atk_api::audit::{AuditList, AuditListQuery};
use atk_api::help::{AskRequest, GlobalAskRequest, HelpAnswer, HelpRoutes};
use atk_api::keys::{
    CreateKey, CreatedKeyBody, KeyList, KeyUsage, ListKeysQuery, RevokeKey, RotateKey,
    RotatedKeyBody, UsageQuery,
};
use atk_api::projects::{CreateProject, EntitlementList, PutEntitlement};
use atk_api::verify::{VerifyOutcome, VerifyRequest};
use atk_api::{Entitlement, PreviewRow, Project};
use atk_core::Catalog;
pub use error::Error;
use reqwest::{Method, Url};
pub use retry::Retry;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A bearer credential: the platform admin token or a Service Role key.
/// `Debug` never shows it.
///
/// ```
/// let token = atk_client::Token::new("atk_admin_secret");
/// assert!(!format!("{token:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a credential.
    ///
    /// ```
    /// let token = atk_client::Token::new("atk_admin_secret");
    /// assert_eq!(format!("{token:?}"), "Token(..)");
    /// ```
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Sets up a [`Client`]: the base address, the credential, the timeouts
/// and the retry policy.
///
/// ```
/// use std::time::Duration;
///
/// let client = atk_client::Client::builder("https://keys.example.com")
///     .token("atk_admin_…")
///     .timeout(Duration::from_secs(3))
///     .retry(atk_client::Retry::with(3, Duration::from_millis(50)))
///     .build()
///     .unwrap();
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<Token>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: Retry,
}

impl ClientBuilder {
    /// The credential sent as `Authorization: Bearer` on every call.
    /// Verify needs none; management calls do.
    ///
    /// ```
    /// let builder = atk_client::Client::builder("http://127.0.0.1:8080").token("atk_admin_…");
    /// assert!(!format!("{builder:?}").contains("atk_admin_"));
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Token::new(token));
        self
    }

    /// How long one attempt may take in all; default 10 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = atk_client::Client::builder("http://127.0.0.1:8080")
    ///     .timeout(Duration::from_millis(500));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long opening a connection may take; default 2 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = atk_client::Client::builder("http://127.0.0.1:8080")
    ///     .connect_timeout(Duration::from_millis(200));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The retry policy; default [`Retry::default`] (2 retries from 100 ms).
    ///
    /// ```
    /// let builder = atk_client::Client::builder("http://127.0.0.1:8080")
    ///     .retry(atk_client::Retry::none());
    /// ```
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the client; fails on a base address that is not an absolute
    /// `http://` or `https://` URL.
    ///
    /// ```
    /// assert!(atk_client::Client::builder("http://127.0.0.1:8080").build().is_ok());
    /// assert!(atk_client::Client::builder("not a url").build().is_err());
    /// ```
    pub fn build(self) -> Result<Client, Error> {
        let shown = shown_url(&self.base_url);
        let mut base = Url::parse(&self.base_url)
            .map_err(|error| Error::InvalidUrl(format!("{shown}: {error}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::InvalidUrl(format!(
                "{shown}: expected http:// or https://"
            )));
        }
        // A credential in the URL would travel in every error message and
        // log line that names the URL.
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::InvalidUrl(format!(
                "{shown}: put the credential in .token(...), not in the URL"
            )));
        }
        // Paths are added segment by segment after the base's own.
        if base.path().ends_with('/') {
            let trimmed = base.path().trim_end_matches('/').to_owned();
            base.set_path(&trimmed);
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("atk-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::transport)?;
        Ok(Client {
            http,
            base,
            token: self.token,
            retry: self.retry,
        })
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &shown_url(&self.base_url))
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A base address as it may be shown: without any user name or password.
fn shown_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            // Only fails for URLs that cannot carry credentials anyway.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) if raw.contains('@') => "(an address with '@', not shown)".to_owned(),
        Err(_) => raw.to_owned(),
    }
}

/// The AuthToolkit Keys API. Cheap to clone: clones share one connection
/// pool.
///
/// ```no_run
/// # async fn run() -> Result<(), atk_client::Error> {
/// let client = atk_client::Client::builder("http://127.0.0.1:8080")
///     .token("atk_admin_…")
///     .build()?;
/// let project = client.get_project("project_identity_demo").await?;
/// println!("{}", project.name);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<Token>,
    retry: Retry,
}

/// Whether repeating a call after it may have reached the server is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Safe,
    OnlyIfUnsent,
}

impl Client {
    /// Starts a [`ClientBuilder`] for the service at `base_url`, for
    /// example `https://keys.example.com`.
    ///
    /// ```
    /// let client = atk_client::Client::builder("http://127.0.0.1:8080").build().unwrap();
    /// ```
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            retry: Retry::default(),
        }
    }

    /// The address of `segments` under the base; each segment is escaped.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in build: the base can have paths")
            .extend(segments);
        url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&(dyn ErasedQuery + Sync)>,
        body: Option<&(dyn ErasedBody + Sync)>,
    ) -> Result<T, Error> {
        let repeat = if method == Method::GET || method == Method::PUT {
            Repeat::Safe
        } else {
            Repeat::OnlyIfUnsent
        };
        let url = self.url(segments);
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(token) = &self.token {
                request = request.bearer_auth(&token.0);
            }
            if let Some(query) = query {
                request = query.apply(request);
            }
            if let Some(body) = body {
                request = body.apply(request);
            }
            let outcome = match request.send().await {
                Ok(response) => error::read(response).await,
                Err(error) => Err(Error::transport(error)),
            };
            match outcome {
                Err(error) if attempt < self.retry.retries && error.may_retry(repeat) => {
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `GET /healthz`: whether the process answers.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// client.health().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn health(&self) -> Result<(), Error> {
        self.call::<serde_json::Value>(Method::GET, &["healthz"], None, None)
            .await
            .map(drop)
    }

    /// `GET /v1/catalog`: products, actions, key kinds, expirations and
    /// confirmations.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let catalog = client.catalog().await?;
    /// println!("{} products", catalog.products.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn catalog(&self) -> Result<Catalog, Error> {
        self.call(Method::GET, &["v1", "catalog"], None, None).await
    }

    /// `POST /v1/keys/verify`: whether a key may perform an action now.
    /// The answer's `code` says why not; only a malformed request or an
    /// action outside the catalog is an error.
    ///
    /// ```no_run
    /// # use atk_client::api::verify::VerifyRequest;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let outcome = client
    ///     .verify(&VerifyRequest {
    ///         key: "atk_live_…".into(),
    ///         action: Some("notification.send".into()),
    ///         client_ip: None,
    ///         origin: None,
    ///     })
    ///     .await?;
    /// assert_eq!(outcome.allowed, outcome.code == atk_client::api::VerifyCode::Ok);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn verify(&self, request: &VerifyRequest) -> Result<VerifyOutcome, Error> {
        self.call(
            Method::POST,
            &["v1", "keys", "verify"],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `POST /v1/projects` (platform admin only).
    ///
    /// ```no_run
    /// # use atk_client::api::projects::CreateProject;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let project = client
    ///     .create_project(&CreateProject {
    ///         project_id: "project_shop".into(),
    ///         name: "Shop".into(),
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_project(&self, request: &CreateProject) -> Result<Project, Error> {
        self.call(
            Method::POST,
            &["v1", "projects"],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `GET /v1/projects/{project_id}`.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let project = client.get_project("project_shop").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_project(&self, project_id: &str) -> Result<Project, Error> {
        self.call(Method::GET, &["v1", "projects", project_id], None, None)
            .await
    }

    /// `GET /v1/projects/{project_id}/entitlements`.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// for entitlement in client.list_entitlements("project_shop").await?.items {
    ///     println!("{}: {:?}", entitlement.product, entitlement.status);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_entitlements(&self, project_id: &str) -> Result<EntitlementList, Error> {
        self.call(
            Method::GET,
            &["v1", "projects", project_id, "entitlements"],
            None,
            None,
        )
        .await
    }

    /// `PUT /v1/projects/{project_id}/entitlements/{product}` (platform
    /// admin only).
    ///
    /// ```no_run
    /// # use atk_client::api::{EntitlementStatus, projects::PutEntitlement};
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// client
    ///     .put_entitlement(
    ///         "project_shop",
    ///         "marketing",
    ///         &PutEntitlement { status: EntitlementStatus::Enabled, trial_ends_at: None },
    ///     )
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_entitlement(
        &self,
        project_id: &str,
        product: &str,
        request: &PutEntitlement,
    ) -> Result<Entitlement, Error> {
        self.call(
            Method::PUT,
            &["v1", "projects", project_id, "entitlements", product],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `POST /v1/projects/{project_id}/keys`: the answer holds the secret,
    /// this once.
    ///
    /// ```no_run
    /// # use atk_client::api::{Confirmation, keys::CreateKey};
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let created = client
    ///     .create_key(
    ///         "project_shop",
    ///         &CreateKey {
    ///             name: "Shop backend".into(),
    ///             confirmations: vec![
    ///                 Confirmation::BackendOnly,
    ///                 Confirmation::SecretShownOnce,
    ///                 Confirmation::EntitlementsMayBlock,
    ///             ],
    ///             ..CreateKey::default()
    ///         },
    ///     )
    ///     .await?;
    /// store_in_your_secret_manager(&created.secret);
    /// # Ok(())
    /// # }
    /// # fn store_in_your_secret_manager(_: &str) {}
    /// ```
    pub async fn create_key(
        &self,
        project_id: &str,
        request: &CreateKey,
    ) -> Result<CreatedKeyBody, Error> {
        self.call(
            Method::POST,
            &["v1", "projects", project_id, "keys"],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `GET /v1/projects/{project_id}/keys`: one page of preview rows,
    /// newest first.
    ///
    /// ```no_run
    /// # use atk_client::api::keys::ListKeysQuery;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let mut query = ListKeysQuery::default();
    /// loop {
    ///     let page = client.list_keys("project_shop", &query).await?;
    ///     for key in &page.items {
    ///         println!("{} {}", key.id, key.name);
    ///     }
    ///     match page.next_cursor {
    ///         Some(cursor) => query.cursor = Some(cursor),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_keys(
        &self,
        project_id: &str,
        query: &ListKeysQuery,
    ) -> Result<KeyList, Error> {
        self.call(
            Method::GET,
            &["v1", "projects", project_id, "keys"],
            Some(&Query(query)),
            None,
        )
        .await
    }

    /// `GET /v1/projects/{project_id}/keys/{key_id}`.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let key = client.get_key("project_shop", "key_…").await?;
    /// println!("{:?}", key.status);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_key(&self, project_id: &str, key_id: &str) -> Result<PreviewRow, Error> {
        self.call(
            Method::GET,
            &["v1", "projects", project_id, "keys", key_id],
            None,
            None,
        )
        .await
    }

    /// `POST /v1/projects/{project_id}/keys/{key_id}/rotate`: a new key
    /// and its secret, this once; the old key ends after the grace.
    ///
    /// ```no_run
    /// # use atk_client::api::{Confirmation, Grace, keys::RotateKey};
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let rotated = client
    ///     .rotate_key(
    ///         "project_shop",
    ///         "key_…",
    ///         &RotateKey { grace: Grace::Hours24, confirmations: vec![Confirmation::SecretShownOnce] },
    ///     )
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rotate_key(
        &self,
        project_id: &str,
        key_id: &str,
        request: &RotateKey,
    ) -> Result<RotatedKeyBody, Error> {
        self.call(
            Method::POST,
            &["v1", "projects", project_id, "keys", key_id, "rotate"],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `POST /v1/projects/{project_id}/keys/{key_id}/revoke`: refused by
    /// every node from then on.
    ///
    /// ```no_run
    /// # use atk_client::api::keys::RevokeKey;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// client
    ///     .revoke_key(
    ///         "project_shop",
    ///         "key_…",
    ///         &RevokeKey { reason: Some("leaked in a log".into()), cascade: false },
    ///     )
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke_key(
        &self,
        project_id: &str,
        key_id: &str,
        request: &RevokeKey,
    ) -> Result<PreviewRow, Error> {
        self.call(
            Method::POST,
            &["v1", "projects", project_id, "keys", key_id, "revoke"],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `POST /v1/projects/{project_id}/keys/{key_id}/expire`: ends the key
    /// now, as its expiry would.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// client.expire_key("project_shop", "key_…").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn expire_key(&self, project_id: &str, key_id: &str) -> Result<PreviewRow, Error> {
        self.call(
            Method::POST,
            &["v1", "projects", project_id, "keys", key_id, "expire"],
            None,
            None,
        )
        .await
    }

    /// `GET /v1/projects/{project_id}/keys/{key_id}/usage`.
    ///
    /// ```no_run
    /// # use atk_client::api::keys::UsageQuery;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let usage = client.key_usage("project_shop", "key_…", &UsageQuery::default()).await?;
    /// println!("{} verifications", usage.report.total);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn key_usage(
        &self,
        project_id: &str,
        key_id: &str,
        query: &UsageQuery,
    ) -> Result<KeyUsage, Error> {
        self.call(
            Method::GET,
            &["v1", "projects", project_id, "keys", key_id, "usage"],
            Some(&Query(query)),
            None,
        )
        .await
    }

    /// `GET /v1/projects/{project_id}/audit`: one page of events, newest
    /// first.
    ///
    /// ```no_run
    /// # use atk_client::api::audit::AuditListQuery;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let page = client.list_audit("project_shop", &AuditListQuery::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_audit(
        &self,
        project_id: &str,
        query: &AuditListQuery,
    ) -> Result<AuditList, Error> {
        self.call(
            Method::GET,
            &["v1", "projects", project_id, "audit"],
            Some(&Query(query)),
            None,
        )
        .await
    }
}

impl Client {
    /// `GET /v1/help/routes`: the console pages Page Help answers for.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// for route in client.help_routes().await?.items {
    ///     println!("{}: {:?}", route.route, route.suggested_questions);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn help_routes(&self) -> Result<HelpRoutes, Error> {
        self.call(Method::GET, &["v1", "help", "routes"], None, None)
            .await
    }

    /// `POST /v1/help/ask`: an answer about one console page, quoted from
    /// its approved sources, or the exact fallback. With a credential, the
    /// project's own data may be quoted too.
    ///
    /// ```no_run
    /// # use atk_client::api::help::AskRequest;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let answer = client
    ///     .ask_help(&AskRequest {
    ///         route: "/project-settings/key-create".into(),
    ///         question: "What does expiration mean?".into(),
    ///         project_id: None,
    ///     })
    ///     .await?;
    /// println!("{}", answer.answer);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ask_help(&self, request: &AskRequest) -> Result<HelpAnswer, Error> {
        self.call(
            Method::POST,
            &["v1", "help", "ask"],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `POST /v1/help/global/ask`: an answer from the Knowledge Hub, naming
    /// the document and section, or the exact fallback.
    ///
    /// ```no_run
    /// # use atk_client::api::help::GlobalAskRequest;
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// let answer = client
    ///     .ask_knowledge_hub(&GlobalAskRequest {
    ///         question: "How do I rotate a key without downtime?".into(),
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ask_knowledge_hub(&self, request: &GlobalAskRequest) -> Result<HelpAnswer, Error> {
        self.call(
            Method::POST,
            &["v1", "help", "global", "ask"],
            None,
            Some(&Json(request)),
        )
        .await
    }

    /// `GET /readyz`: whether the service can reach its database.
    ///
    /// ```no_run
    /// # async fn run(client: atk_client::Client) -> Result<(), atk_client::Error> {
    /// if !client.ready().await? {
    ///     eprintln!("the key service cannot reach its database");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self) -> Result<bool, Error> {
        match self
            .call::<serde_json::Value>(Method::GET, &["readyz"], None, None)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Api { status: 503, .. } | Error::Unexpected { status: 503, .. }) => {
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }
}

/// A JSON body, behind a trait object so `call` is compiled once.
trait ErasedBody {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder;
}

struct Json<'a, T>(&'a T);

impl<T: Serialize> ErasedBody for Json<'_, T> {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.json(self.0)
    }
}

/// A query string, as [`ErasedBody`] is for bodies.
trait ErasedQuery {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder;
}

struct Query<'a, T>(&'a T);

impl<T: Serialize> ErasedQuery for Query<'_, T> {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.query(self.0)
    }
}
