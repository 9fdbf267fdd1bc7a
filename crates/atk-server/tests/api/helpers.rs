//! One way to start the service for a test: the same `Application` the
//! binary runs, on port 0, with a fresh database and a clock the test moves.

use std::sync::Arc;

use atk_core::ManualClock;
use atk_server::{Application, Config};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghijkl";
pub const DEMO: &str = "project_identity_demo";
pub const EVERY_KIND_CONFIRMATIONS: [&str; 3] = [
    "backend_only",
    "secret_shown_once",
    "entitlements_may_block",
];

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn(TestApp)` once on SQLite and once on
/// PostgreSQL, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite)
                        .await
                        .expect("SQLite is always available");
                    super::$name(app).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await else {
                        return;
                    };
                    super::$name(app).await;
                }
            )+
        }
    };
}

/// The identifier the test secret-scanning partner signs with.
pub const SCANNING_KEY_ID: &str = "test-partner-key-1";

/// The test secret-scanning partner's private key (fixed: tests only).
pub fn scanning_signing_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap()
}

/// GitHub's public keys document, holding the test partner's key.
fn scanning_keys_document() -> String {
    use p256::pkcs8::EncodePublicKey;
    let pem = scanning_signing_key()
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    serde_json::json!({
        "public_keys": [{"key_identifier": SCANNING_KEY_ID, "key": pem, "is_current": true}]
    })
    .to_string()
}

pub struct TestApp {
    pub base: String,
    /// The console setup link printed at first start (the console and
    /// browser tests use it).
    #[allow(dead_code)]
    pub setup_link: Option<String>,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub config: Config,
    dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-07T22:30:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

impl TestApp {
    /// `None` only for PostgreSQL outside CI when no server is reachable.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(atk_store::testing::fresh_postgres_url().await?),
        };
        let scanning_keys = dir.path().join("secret-scanning-keys.json");
        std::fs::write(&scanning_keys, scanning_keys_document()).unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            database_url,
            admin_token: Some(ADMIN_TOKEN.into()),
            pepper_file: None,
            secret_scanning_keys: Some(scanning_keys),
            ..Config::default()
        };
        Some(Self::spawn_with(config, dir).await)
    }

    pub async fn spawn_with(config: Config, dir: TempDir) -> Self {
        let clock = ManualClock::starting_at(start_time());
        let app = Application::build_with_clock(&config, Arc::new(clock.clone()))
            .await
            .expect("the application starts");
        let base = format!("http://{}", app.local_addr());
        let setup_link = app.bootstrap.setup_link.clone();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(async move {
            app.run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
        });
        Self {
            base,
            setup_link,
            client: reqwest::Client::new(),
            clock,
            config,
            dir,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server the way SIGTERM does, waits until it has, and hands
    /// back what a restart on the same data needs.
    pub async fn stop(mut self) -> (Config, TempDir) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        (self.config, self.dir)
    }

    /// Another node of the same deployment: its own process state (caches,
    /// change-feed listener), the same database and pepper.
    pub async fn second_node(&self) -> TestApp {
        self.second_node_with(|_| {}).await
    }

    /// [`Self::second_node`] with its configuration changed by `edit`.
    pub async fn second_node_with(&self, edit: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..self.config.clone()
        };
        edit(&mut config);
        Self::spawn_with(config, tempfile::tempdir().unwrap()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("the server answers")).await
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(ADMIN_TOKEN), None).await
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(ADMIN_TOKEN), Some(body))
            .await
    }

    /// Creates a key in `project` as the admin; `extra` fields are merged
    /// into a request that has every kind's confirmations.
    pub async fn create_key_in(&self, project: &str, extra: Value) -> Reply {
        let mut body =
            json!({"name": "Backend Project API Key", "confirmations": EVERY_KIND_CONFIRMATIONS});
        for (field, value) in extra.as_object().expect("an object").iter() {
            body[field] = value.clone();
        }
        self.admin_post(&format!("/v1/projects/{project}/keys"), body)
            .await
    }

    /// Creates a key in the demo project and returns its secret.
    pub async fn secret(&self, extra: Value) -> String {
        let reply = self.create_key_in(DEMO, extra).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["secret"].as_str().unwrap().to_owned()
    }

    pub async fn verify(&self, key: &str, action: Option<&str>) -> Value {
        let mut body = json!({"key": key});
        if let Some(action) = action {
            body["action"] = json!(action);
        }
        let reply = self
            .call(Method::POST, "/v1/keys/verify", None, Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Verifies with a full request body (`client_ip`, `origin`, …).
    pub async fn verify_with(&self, body: Value) -> Value {
        let reply = self
            .call(Method::POST, "/v1/keys/verify", None, Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    pub async fn create_project(&self, id: &str) {
        let reply = self
            .admin_post("/v1/projects", json!({"project_id": id, "name": "Other"}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            body,
        }
    }

    /// The SPEC error code, asserting the error shape on the way.
    pub fn error_code(&self) -> &str {
        let error = &self.body["error"];
        assert!(
            error["message"].is_string(),
            "not the SPEC error shape: {}",
            self.text
        );
        assert!(
            error["details"].is_object(),
            "not the SPEC error shape: {}",
            self.text
        );
        error["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not the SPEC error shape: {}", self.text))
    }
}

/// The value of one series (`name{labels}` exactly as exposed) in a
/// `/metrics` text.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} is not in the metrics"))
        .trim()
        .parse()
        .unwrap()
}
