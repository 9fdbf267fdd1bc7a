use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};

use crate::helpers::{Backend, TestApp};

/// Every route of SPEC section 3 that this build serves.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/v1/catalog"),
    ("post", "/v1/projects"),
    ("get", "/v1/projects/{project_id}"),
    ("get", "/v1/projects/{project_id}/entitlements"),
    ("put", "/v1/projects/{project_id}/entitlements/{product}"),
    ("post", "/v1/projects/{project_id}/keys"),
    ("get", "/v1/projects/{project_id}/keys"),
    ("get", "/v1/projects/{project_id}/keys/{key_id}"),
    ("post", "/v1/projects/{project_id}/keys/{key_id}/rotate"),
    ("post", "/v1/projects/{project_id}/keys/{key_id}/revoke"),
    ("post", "/v1/projects/{project_id}/keys/{key_id}/expire"),
    ("get", "/v1/projects/{project_id}/keys/{key_id}/usage"),
    ("get", "/v1/projects/{project_id}/audit"),
    ("post", "/v1/keys/verify"),
    ("post", "/v1/secret-scanning/report"),
    ("get", "/v1/help/routes"),
    ("post", "/v1/help/ask"),
    ("post", "/v1/help/global/ask"),
];

fn documented(document: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.clone(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_documents_exactly_the_served_routes() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let reply = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = reply.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let actual = documented(&document);
    let missing: Vec<_> = expected.difference(&actual).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let unexpected: Vec<_> = actual.difference(&expected).collect();
    assert!(
        unexpected.is_empty(),
        "documented but not in this test's route list: {unexpected:?}"
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    // A documented route that the router does not serve would answer the
    // fallback's "no such route".
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let document = serde_json::to_value(atk_server::http::openapi::document()).unwrap();
    for (method, path) in documented(&document) {
        let concrete = path
            .replace("{project_id}", crate::helpers::DEMO)
            .replace("{product}", "qr")
            .replace("{key_id}", "key_0000000000000000000000");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let reply = app.call(method.clone(), &concrete, None, None).await;
        let fallback = reply.status == StatusCode::NOT_FOUND
            && reply.body["error"]["message"] == "no such route";
        assert!(
            !fallback && reply.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not served"
        );
    }
}

#[tokio::test]
async fn every_operation_documents_its_error_responses() {
    let document = serde_json::to_value(atk_server::http::openapi::document()).unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|code| code.starts_with('2')),
                "{method} {path}"
            );
            let takes_input = path.contains('{') || method != "get";
            if takes_input && path.starts_with("/v1/") {
                assert!(
                    responses.keys().any(|code| code.starts_with('4')),
                    "{method} {path} documents no 4xx"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_error_answer_is_the_one_shared_error_body_and_every_operation_is_described() {
    let document = serde_json::to_value(atk_server::http::openapi::document()).unwrap();
    let shared = &document["components"]["responses"];
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let description = operation["description"].as_str().unwrap_or_default();
            assert!(
                !description.is_empty(),
                "{method} {path} has no description"
            );
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !(status.starts_with('4') || status.starts_with('5')) || path == "/readyz" {
                    continue;
                }
                let reference = response["$ref"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path} {status} is not a shared error response")
                });
                let name = reference.rsplit('/').next().unwrap();
                assert_eq!(
                    shared[name]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
            for status in ["405", "429", "503"] {
                assert!(
                    operation["responses"].get(status).is_some() || path == "/readyz",
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_document_states_the_servers_own_rules() {
    let document = serde_json::to_value(atk_server::http::openapi::document()).unwrap();
    let catalog = atk_core::Catalog::get();
    // One create-key variant per kind, requiring exactly that kind's
    // confirmations.
    let variants = document["components"]["schemas"]["CreateKey"]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(variants.len(), atk_core::key::KeyKind::ALL.len());
    for (variant, kind) in variants.iter().zip(atk_core::key::KeyKind::ALL) {
        let required: Vec<String> = variant["properties"]["confirmations"]["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| rule["contains"]["const"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = catalog
            .required_confirmations(kind)
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(required, expected, "{kind:?}");
    }
    let keys = &document["paths"]["/v1/projects/{project_id}/keys"];
    let project_id = keys["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "project_id")
        .unwrap();
    assert_eq!(project_id["schema"]["pattern"], "^[a-z][a-z0-9_]{2,62}$");
    let limit = keys["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 200);
    // Links from a created key to what takes its id (the stateful phase).
    let links = &keys["post"]["responses"]["201"]["links"];
    assert_eq!(links["RevokeKey"]["operationId"], "revoke_key");
    assert_eq!(
        links["RevokeKey"]["parameters"]["key_id"],
        "$response.body#/key/id"
    );
    // Revoking takes no body at all as well.
    assert_eq!(
        document["paths"]["/v1/projects/{project_id}/keys/{key_id}/revoke"]["post"]["requestBody"]
            ["required"],
        false
    );
}
