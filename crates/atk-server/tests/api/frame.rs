//! What every answer carries, whatever the route and whatever went wrong:
//! a request id (the client's own, or a new one per request) and
//! `Cache-Control: no-store`; and each request is counted once, under the
//! template of the route it reached.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{DEMO, TestApp, metric_value};
use crate::on_both_stores;

on_both_stores!(every_answer_carries_a_request_id_and_no_store_and_is_counted_once);

async fn every_answer_carries_a_request_id_and_no_store_and_is_counted_once(app: TestApp) {
    let answers = [
        app.call(Method::GET, "/healthz", None, None).await,
        app.call(
            Method::POST,
            "/v1/keys/verify",
            None,
            Some(json!({"key": "atk_live_nope"})),
        )
        .await,
        app.call(Method::GET, "/v1/no/such/route", None, None).await,
        app.call(
            Method::GET,
            &format!("/v1/projects/{DEMO}/keys"),
            None,
            None,
        )
        .await,
    ];
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::UNAUTHORIZED
        ]
    );
    let mut ids = Vec::new();
    for answer in &answers {
        assert_eq!(answer.headers["cache-control"], "no-store", "{answer:?}");
        let id = answer.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.len() > 8, "{id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), answers.len(), "each request gets its own id");

    let mine = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "trace-7f3a");

    // The frame answers GET /healthz itself; HEAD is left to the router,
    // which answers it as it answers GET, without the body.
    let head = app.call(Method::HEAD, "/healthz", None, None).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["cache-control"], "no-store");
    assert_eq!(head.headers["content-type"], "application/json");
    assert!(head.headers.contains_key("x-request-id"));
    assert_eq!(head.text, "");

    // Console pages are named by their templates too, ids left out.
    app.call(Method::GET, "/console/sign-in", None, None).await;
    app.call(
        Method::GET,
        &format!("/console/projects/{DEMO}/keys/key_0000000000000000000000"),
        None,
        None,
    )
    .await;

    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    for template in [
        "route=\"/console/sign-in\",method=\"GET\"",
        "route=\"/console/projects/{project_id}/keys/{key_id}\",method=\"GET\"",
    ] {
        assert!(metrics.contains(template), "{template} in {metrics}");
    }
    assert!(!metrics.contains(DEMO), "no concrete path is a label");
    assert_eq!(
        metric_value(
            &metrics,
            "atk_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "atk_http_requests_total{route=\"/healthz\",method=\"HEAD\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "atk_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );
}
