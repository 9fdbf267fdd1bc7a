//! A bare minimal verify: parse the JSON body, SHA-256 the key, look the
//! digest up in a HashMap, answer JSON. What a team's own key check on
//! axum would do at the least; no checksum, scopes, limits, usage or logs.
//! The one key it knows is read from the first argument.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::{Json, Router, routing::post};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct VerifyRequest {
    key: String,
    #[allow(dead_code)]
    action: Option<String>,
}

#[derive(Serialize)]
struct VerifyResponse {
    valid: bool,
    code: &'static str,
    key_id: Option<&'static str>,
}

type Keys = Arc<HashMap<[u8; 32], &'static str>>;

async fn verify(State(keys): State<Keys>, Json(request): Json<VerifyRequest>) -> Json<VerifyResponse> {
    let digest: [u8; 32] = Sha256::digest(request.key.as_bytes()).into();
    let found = keys.get(&digest).copied();
    Json(VerifyResponse {
        valid: found.is_some(),
        code: if found.is_some() { "OK" } else { "NOT_FOUND" },
        key_id: found,
    })
}

#[tokio::main]
async fn main() {
    let key = std::env::args().nth(1).expect("the key to accept");
    let mut keys = HashMap::new();
    keys.insert(Sha256::digest(key.as_bytes()).into(), "key_bench");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/keys/verify", post(verify))
        .with_state(Arc::new(keys));
    axum::serve(listener, app).await.unwrap();
}
