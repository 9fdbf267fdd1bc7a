//! Every kind of bad input gets a 4xx in the SPEC error shape, never a 500,
//! and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, DEMO, Reply, TestApp};
use crate::on_both_stores;

on_both_stores!(every_bad_input_gets_a_clear_4xx_and_changes_nothing);

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
    /// Text the message must contain, to show it names the problem.
    mentions: &'static str,
}

fn json_body(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

fn create(name: &'static str, body: serde_json::Value, mentions: &'static str) -> Case {
    Case {
        name,
        method: Method::POST,
        path: format!("/v1/projects/{DEMO}/keys"),
        content_type: Some("application/json"),
        body: json_body(body),
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        mentions,
    }
}

fn with_confirmations(mut body: serde_json::Value) -> serde_json::Value {
    body["confirmations"] = json!([
        "backend_only",
        "secret_shown_once",
        "entitlements_may_block"
    ]);
    body
}

fn cases() -> Vec<Case> {
    let keys = format!("/v1/projects/{DEMO}/keys");
    let bad_request =
        |name, method: Method, path: &str, content_type, body: Vec<u8>, mentions| Case {
            name,
            method,
            path: path.to_owned(),
            content_type,
            body,
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            mentions,
        };
    let mut large_name = String::from(r#"{"name": ""#);
    large_name.push_str(&"x".repeat(70 * 1024));
    large_name.push_str(r#"", "confirmations": []}"#);
    let mut ten_megabyte_key = String::from(r#"{"key": ""#);
    ten_megabyte_key.push_str(&"a".repeat(10 * 1024 * 1024));
    ten_megabyte_key.push_str(r#""}"#);
    vec![
        bad_request(
            "malformed JSON",
            Method::POST,
            &keys,
            Some("application/json"),
            br#"{"name":"#.to_vec(),
            "JSON",
        ),
        bad_request(
            "JSON with a trailing comma",
            Method::POST,
            &keys,
            Some("application/json"),
            br#"{"name":"a",}"#.to_vec(),
            "JSON",
        ),
        bad_request(
            "an empty body",
            Method::POST,
            &keys,
            Some("application/json"),
            Vec::new(),
            "not valid JSON",
        ),
        bad_request(
            "a JSON array instead of an object",
            Method::POST,
            &keys,
            Some("application/json"),
            b"[]".to_vec(),
            "deserialize the JSON body",
        ),
        bad_request(
            "wrong content type",
            Method::POST,
            &keys,
            Some("text/plain"),
            json_body(with_confirmations(json!({"name": "a"}))),
            "application/json",
        ),
        bad_request(
            "no content type",
            Method::POST,
            &keys,
            None,
            json_body(with_confirmations(json!({"name": "a"}))),
            "application/json",
        ),
        create(
            "a typo: scope instead of scopes",
            with_confirmations(json!({"name": "a", "scope": ["qr.scan.read"]})),
            "scope",
        ),
        create(
            "an empty name",
            with_confirmations(json!({"name": ""})),
            "name",
        ),
        create(
            "a blank name",
            with_confirmations(json!({"name": "   "})),
            "name",
        ),
        create(
            "a 101-character name",
            with_confirmations(json!({"name": "n".repeat(101)})),
            "name",
        ),
        create(
            "a name with a control character",
            with_confirmations(json!({"name": "bad\u{7}name"})),
            "control",
        ),
        create(
            "a name that holds a secret",
            with_confirmations(json!({"name": "atk_live_0123456789abcdefghijABCDEFGHIJ012345"})),
            "secret",
        ),
        create(
            "a null name",
            with_confirmations(json!({"name": null})),
            "name: invalid type: null",
        ),
        create("no name", with_confirmations(json!({})), "name"),
        create(
            "an unknown kind",
            with_confirmations(json!({"name": "a", "kind": "superuser"})),
            "kind",
        ),
        create(
            "an unknown environment",
            with_confirmations(json!({"name": "a", "environment": "prod"})),
            "environment",
        ),
        create(
            "an unknown expiration",
            with_confirmations(json!({"name": "a", "expiration": "1_day"})),
            "expiration",
        ),
        create(
            "an unknown scope",
            with_confirmations(json!({"name": "a", "scopes": ["identity.delete"]})),
            "identity.delete",
        ),
        create(
            "scopes that are not strings",
            with_confirmations(json!({"name": "a", "scopes": [1]})),
            "scopes",
        ),
        create(
            "an unknown confirmation id",
            json!({"name": "a", "confirmations": ["i_promise"]}),
            "i_promise",
        ),
        Case {
            name: "a body over 64 KiB",
            method: Method::POST,
            path: keys.clone(),
            content_type: Some("application/json"),
            body: large_name.into_bytes(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            mentions: "limited to 65536 bytes",
        },
        bad_request(
            "a project id that breaks the pattern (path)",
            Method::POST,
            "/v1/projects/Bad-Project/keys",
            Some("application/json"),
            json_body(with_confirmations(json!({"name": "a"}))),
            "project_id",
        ),
        bad_request(
            "a project id that breaks the pattern (body)",
            Method::POST,
            "/v1/projects",
            Some("application/json"),
            json_body(json!({"project_id": "9lives", "name": "x"})),
            "project_id",
        ),
        bad_request(
            "a project id that is too short",
            Method::POST,
            "/v1/projects",
            Some("application/json"),
            json_body(json!({"project_id": "ab", "name": "x"})),
            "project_id",
        ),
        bad_request(
            "a project with a blank name",
            Method::POST,
            "/v1/projects",
            Some("application/json"),
            json_body(json!({"project_id": "fine_id", "name": " "})),
            "name",
        ),
        bad_request(
            "a percent-encoded non-UTF-8 project id",
            Method::GET,
            "/v1/projects/%FF%FE/keys",
            None,
            Vec::new(),
            "Invalid UTF-8 in `project_id`",
        ),
        bad_request(
            "an unknown status filter",
            Method::GET,
            &format!("{keys}?status=sleeping"),
            None,
            Vec::new(),
            "status",
        ),
        bad_request(
            "a zero limit",
            Method::GET,
            &format!("{keys}?limit=0"),
            None,
            Vec::new(),
            "limit",
        ),
        bad_request(
            "a limit that is not a number",
            Method::GET,
            &format!("{keys}?limit=ten"),
            None,
            Vec::new(),
            "limit",
        ),
        bad_request(
            "a cursor this API never issued",
            Method::GET,
            &format!("{keys}?cursor=abc"),
            None,
            Vec::new(),
            "cursor",
        ),
        bad_request(
            "a key-list cursor with a sign",
            Method::GET,
            &format!("{keys}?cursor=%2B1790000000000.key_0000000000000000000000"),
            None,
            Vec::new(),
            "cursor",
        ),
        bad_request(
            "an audit cursor with a sign",
            Method::GET,
            &format!("/v1/projects/{DEMO}/audit?cursor=%2B5"),
            None,
            Vec::new(),
            "cursor",
        ),
        bad_request(
            "an audit cursor with leading zeros",
            Method::GET,
            &format!("/v1/projects/{DEMO}/audit?cursor=007"),
            None,
            Vec::new(),
            "cursor",
        ),
        bad_request(
            "a negative audit cursor",
            Method::GET,
            &format!("/v1/projects/{DEMO}/audit?cursor=-1"),
            None,
            Vec::new(),
            "cursor",
        ),
        bad_request(
            "an unknown query parameter",
            Method::GET,
            &format!("{keys}?stauts=active"),
            None,
            Vec::new(),
            "stauts",
        ),
        bad_request(
            "an unknown entitlement status",
            Method::PUT,
            &format!("/v1/projects/{DEMO}/entitlements/qr"),
            Some("application/json"),
            json_body(json!({"status": "free"})),
            "status",
        ),
        bad_request(
            "a trial end that is not a time",
            Method::PUT,
            &format!("/v1/projects/{DEMO}/entitlements/verification"),
            Some("application/json"),
            json_body(json!({"status": "trial", "trial_ends_at": "tomorrow"})),
            "trial_ends_at",
        ),
        Case {
            name: "a 10 MB key string",
            method: Method::POST,
            path: "/v1/keys/verify".into(),
            content_type: Some("application/json"),
            body: ten_megabyte_key.into_bytes(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            mentions: "limited to 65536 bytes",
        },
        bad_request(
            "non-UTF-8 bytes in the body",
            Method::POST,
            "/v1/keys/verify",
            Some("application/json"),
            b"{\"key\": \"atk_\xff\xfe\"}".to_vec(),
            "invalid unicode code point",
        ),
        bad_request(
            "a key that is not a string",
            Method::POST,
            "/v1/keys/verify",
            Some("application/json"),
            json_body(json!({"key": 42})),
            "key",
        ),
        bad_request(
            "a verify request written as an array of its fields",
            Method::POST,
            "/v1/keys/verify",
            Some("application/json"),
            json_body(json!(["atk_live_x", "qr.scan.read"])),
            "JSON object",
        ),
        bad_request(
            "a help question written as an array",
            Method::POST,
            "/v1/help/global/ask",
            Some("application/json"),
            json_body(json!(["\u{90}"])),
            "JSON object",
        ),
        bad_request(
            "an array sent with a JSON media type of another spelling",
            Method::POST,
            "/v1/keys/verify",
            Some("application/vnd.atk+json"),
            json_body(json!(["atk_live_x"])),
            "JSON object",
        ),
        bad_request(
            "an unknown verify field",
            Method::POST,
            "/v1/keys/verify",
            Some("application/json"),
            json_body(json!({"key": "x", "scope": "qr.scan.read"})),
            "scope",
        ),
        bad_request(
            "a client_ip that is not an address",
            Method::POST,
            "/v1/keys/verify",
            Some("application/json"),
            json_body(json!({"key": "x", "client_ip": "999.1.1.1"})),
            "client_ip",
        ),
        Case {
            name: "an unknown route",
            method: Method::GET,
            path: "/v1/nothing-here".into(),
            content_type: None,
            body: Vec::new(),
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            mentions: "no such route",
        },
        Case {
            name: "a method the route does not take",
            method: Method::DELETE,
            path: "/v1/catalog".into(),
            content_type: None,
            body: Vec::new(),
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "invalid_request",
            mentions: "does not accept that method",
        },
    ]
}

async fn send(app: &TestApp, case: &Case) -> Reply {
    let mut request = app
        .client
        .request(case.method.clone(), app.url(&case.path))
        .bearer_auth(ADMIN_TOKEN)
        .body(case.body.clone());
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    Reply::from(request.send().await.expect("the server answers")).await
}

async fn every_bad_input_gets_a_clear_4xx_and_changes_nothing(app: TestApp) {
    let entitlements_before = app
        .admin_get(&format!("/v1/projects/{DEMO}/entitlements"))
        .await
        .body;
    for case in cases() {
        let reply = send(&app, &case).await;
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.text);
        assert_eq!(
            reply.error_code(),
            case.code,
            "{}: {}",
            case.name,
            reply.text
        );
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            !case.mentions.is_empty(),
            "{}: every case expects words",
            case.name
        );
        assert!(
            message.contains(case.mentions),
            "{}: message {message:?} should mention {:?}",
            case.name,
            case.mentions
        );
    }
    let keys = app.admin_get(&format!("/v1/projects/{DEMO}/keys")).await;
    assert_eq!(keys.body["items"], json!([]), "no key was written");
    let entitlements_after = app
        .admin_get(&format!("/v1/projects/{DEMO}/entitlements"))
        .await
        .body;
    assert_eq!(
        entitlements_before, entitlements_after,
        "no entitlement changed"
    );
    let project = app.admin_get("/v1/projects/fine_id").await;
    assert_eq!(
        project.status,
        StatusCode::NOT_FOUND,
        "no project was written"
    );
}
