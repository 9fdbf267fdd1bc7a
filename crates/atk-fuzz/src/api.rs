//! The HTTP API's request decoders, driven in process through the same
//! router and layers that `atk serve` runs, on a SQLite store in a
//! temporary directory.

use std::sync::OnceLock;

use atk_core::secret::{ParsedSecret, SECRET_LEN};
use atk_server::{Application, Config};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, Uri, header};
use serde_json::Value;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789abcdefghijklmn";
const DEMO: &str = "project_identity_demo";

/// What one input is sent as: the first byte picks one of these, the rest
/// is the body, the query string, a path segment or the credential.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A JSON body to this path (`{rotate}` and `{revoke}` are seeded keys).
    Body(&'static str, &'static str),
    /// The rest as the query string of this path.
    Query(&'static str),
    /// The rest, percent-encoded, as the path segment after this prefix.
    PathSegment(&'static str, &'static str),
    /// The rest as the `Authorization` header of a key listing.
    Credential,
}

const SHAPES: [Shape; 17] = [
    Shape::Body("POST", "/v1/projects/project_identity_demo/keys"),
    Shape::Body("POST", "/v1/keys/verify"),
    Shape::Body(
        "POST",
        "/v1/projects/project_identity_demo/keys/{rotate}/rotate",
    ),
    Shape::Body(
        "POST",
        "/v1/projects/project_identity_demo/keys/{revoke}/revoke",
    ),
    Shape::Body(
        "POST",
        "/v1/projects/project_identity_demo/keys/{revoke}/expire",
    ),
    Shape::Body("POST", "/v1/projects"),
    Shape::Body(
        "PUT",
        "/v1/projects/project_identity_demo/entitlements/commerce",
    ),
    Shape::Body("POST", "/v1/help/ask"),
    Shape::Body("POST", "/v1/help/global/ask"),
    Shape::Body("POST", "/v1/secret-scanning/report"),
    Shape::Query("/v1/projects/project_identity_demo/keys"),
    Shape::Query("/v1/projects/project_identity_demo/audit"),
    Shape::Query("/v1/projects/project_identity_demo/keys/{rotate}/usage"),
    Shape::Query("/v1/help/routes"),
    Shape::PathSegment("/v1/projects/", "/keys"),
    Shape::PathSegment("/v1/projects/project_identity_demo/keys/", "/rotate"),
    Shape::Credential,
];

struct Api {
    runtime: tokio::runtime::Runtime,
    router: atk_server::http::Framed,
    rotate_key: String,
    revoke_key: String,
    _data: tempfile::TempDir,
}

/// One request built from the input, through the whole HTTP stack.
///
/// Whatever the input: never a 5xx; every answer is JSON; every refusal is
/// the SPEC error shape (`error.code`, `error.message`); no answer but a
/// create or rotate (201) holds anything that parses as a secret, and none
/// holds the admin token.
pub fn api_request(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let api = api();
    let shape = SHAPES[usize::from(selector) % SHAPES.len()];
    let Some(request) = api.request(shape, rest) else {
        return;
    };
    let described = format!("{} {}", request.method(), request.uri());
    let (status, body) = api.runtime.block_on(async {
        let response = api
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("an in-memory body reads");
        (status, body)
    });
    assert!(
        !status.is_server_error(),
        "{described} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let json: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{described} answered {status} with a body that is not JSON"));
    if status.is_client_error() {
        assert!(
            json["error"]["code"].is_string() && json["error"]["message"].is_string(),
            "{described} answered {status} outside the error shape: {json}"
        );
    }
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(ADMIN_TOKEN),
        "{described} echoed the admin token"
    );
    if status != StatusCode::CREATED {
        for start in 0..text.len() {
            if let Some(window) = text.get(start..start + SECRET_LEN) {
                assert!(
                    ParsedSecret::parse(window).is_err(),
                    "{described} answered {status} with a secret in it"
                );
            }
        }
    }
}

impl Api {
    fn request(&self, shape: Shape, rest: &[u8]) -> Option<Request<Body>> {
        let seeded = |path: &str| {
            path.replace("{rotate}", &self.rotate_key)
                .replace("{revoke}", &self.revoke_key)
        };
        let (method, uri, body, credential) = match shape {
            Shape::Body(method, path) => (
                Method::from_bytes(method.as_bytes()).ok()?,
                seeded(path),
                rest.to_vec(),
                ADMIN_TOKEN.into(),
            ),
            Shape::Query(path) => {
                let query = std::str::from_utf8(rest).ok()?;
                (
                    Method::GET,
                    format!("{}?{query}", seeded(path)),
                    Vec::new(),
                    ADMIN_TOKEN.into(),
                )
            }
            Shape::PathSegment(before, after) => {
                let segment = percent_encoded(rest);
                (
                    Method::GET,
                    format!("{before}{segment}{after}"),
                    Vec::new(),
                    ADMIN_TOKEN.into(),
                )
            }
            Shape::Credential => {
                let credential = std::str::from_utf8(rest).ok()?.to_owned();
                (
                    Method::GET,
                    format!("/v1/projects/{DEMO}/keys"),
                    Vec::new(),
                    credential,
                )
            }
        };
        // A target the HTTP parser would refuse never reaches the router.
        let uri = Uri::try_from(uri).ok()?;
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {credential}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .ok()
    }
}

fn percent_encoded(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime starts");
        let data = tempfile::tempdir().expect("a temporary directory");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("an address"),
            data_dir: data.path().to_owned(),
            admin_token: Some(ADMIN_TOKEN.into()),
            ..Config::default()
        };
        let router = runtime.block_on(async {
            Application::build(&config)
                .await
                .expect("the service starts on a fresh SQLite store")
                .router()
        });
        let mut api = Api {
            runtime,
            router,
            rotate_key: String::new(),
            revoke_key: String::new(),
            _data: data,
        };
        api.rotate_key = api.seed_key();
        api.revoke_key = api.seed_key();
        api
    })
}

impl Api {
    /// A project key in the demo project, created through the API.
    fn seed_key(&self) -> String {
        let body = serde_json::json!({
            "name": "Fuzzed key",
            "confirmations": ["backend_only", "secret_shown_once", "entitlements_may_block"],
        });
        let request = Request::post(format!("/v1/projects/{DEMO}/keys"))
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("a valid request");
        self.runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("infallible");
            assert_eq!(
                response.status(),
                StatusCode::CREATED,
                "a seed key is created"
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("a body");
            let json: Value = serde_json::from_slice(&body).expect("JSON");
            json["key"]["id"].as_str().expect("a key id").to_owned()
        })
    }
}
