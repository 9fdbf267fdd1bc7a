//! `atk-client` against the real `atk serve`: the operations the CLI and
//! the guard do not already drive, and how each kind of failure reads.

mod support;

use std::time::Duration;

use atk_client::api::error::ErrorCode;
use atk_client::api::help::{AskRequest, GlobalAskRequest};
use atk_client::api::{EntitlementStatus, Project};
use atk_client::{Client, Error, Retry};

const ADMIN_TOKEN: &str = "client-test-admin-token-0123456789abcdefghij";
const DEMO: &str = "project_identity_demo";

#[tokio::test(flavor = "multi_thread")]
async fn the_client_reads_projects_entitlements_the_catalog_health_and_help() {
    let data = tempfile::tempdir().unwrap();
    let (server, client) = support::start_with_admin(data.path(), ADMIN_TOKEN);

    client.health().await.unwrap();
    assert!(client.ready().await.unwrap());
    let Project { project_id, .. } = client.get_project(DEMO).await.unwrap();
    assert_eq!(project_id.as_str(), DEMO);
    let entitlements = client.list_entitlements(DEMO).await.unwrap();
    let marketing = entitlements
        .items
        .iter()
        .find(|entitlement| entitlement.product == "marketing")
        .expect("the demo project has a marketing entitlement");
    assert_eq!(marketing.status, EntitlementStatus::UpgradeRequired);
    let catalog = client.catalog().await.unwrap();
    assert_eq!(catalog.products.len(), 7);

    let routes = client.help_routes().await.unwrap();
    assert!(
        routes
            .items
            .iter()
            .any(|route| route.route == "/project-settings/key-create")
    );
    let answer = client
        .ask_help(&AskRequest {
            route: "/project-settings/key-create".into(),
            question: "What does expiration mean?".into(),
            project_id: Some(DEMO.into()),
        })
        .await
        .unwrap();
    assert!(answer.in_scope, "{answer:?}");
    assert!(
        answer.answer.to_lowercase().contains("expiration"),
        "{answer:?}"
    );
    let hub = client
        .ask_knowledge_hub(&GlobalAskRequest {
            question: "What is the capital of France?".into(),
        })
        .await
        .unwrap();
    assert!(!hub.in_scope);
    assert_eq!(hub.answer, "I don't see that in the Knowledge Hub yet.");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_carry_their_code_and_the_token_never_shows() {
    let data = tempfile::tempdir().unwrap();
    let (server, admin) = support::start_with_admin(data.path(), ADMIN_TOKEN);
    let missing = admin
        .get_key(DEMO, "key_0000000000000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &missing,
            Error::Api { status: 404, code: ErrorCode::NotFound, message, .. }
                if message == "key not found"
        ),
        "{missing:?}"
    );
    assert!(format!("{admin:?}").contains("Token(..)"));
    assert!(!format!("{admin:?}").contains(ADMIN_TOKEN));

    let stranger = Client::builder(server.url(""))
        .token("not-the-admin-token-at-all-0123456789")
        .build()
        .unwrap();
    // A credential in the base URL is refused and never echoed.
    let in_url = Client::builder("http://admin:hunter2@127.0.0.1:8080")
        .build()
        .unwrap_err();
    assert!(matches!(in_url, Error::InvalidUrl(_)), "{in_url:?}");
    assert!(!in_url.to_string().contains("hunter2"), "{in_url}");
    let builder = Client::builder("http://admin:hunter2@127.0.0.1:8080");
    assert!(!format!("{builder:?}").contains("hunter2"));

    let refused = stranger.get_project(DEMO).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused:?}");
    assert!(!refused.to_string().contains("not-the-admin"), "{refused}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_that_never_answers_is_a_timeout_and_a_closed_port_a_transport_error() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_address = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            open.push(connection);
        }
    });
    let client = Client::builder(format!("http://{silent_address}"))
        .timeout(Duration::from_millis(200))
        .retry(Retry::none())
        .build()
        .unwrap();
    assert!(matches!(client.health().await, Err(Error::Timeout)));
    held.abort();

    // A port nobody listens on: refused at connect, retried, then reported.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_address = closed.local_addr().unwrap();
    drop(closed);
    let client = Client::builder(format!("http://{closed_address}"))
        .retry(Retry::with(2, Duration::from_millis(1)))
        .build()
        .unwrap();
    let error = client.catalog().await.unwrap_err();
    assert!(
        matches!(error, Error::Transport { unsent: true, .. }),
        "{error:?}"
    );
}
