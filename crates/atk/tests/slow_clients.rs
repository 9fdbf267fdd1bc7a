//! Slow clients cannot take the server down: stalled headers, idle
//! keep-alive connections and stalled bodies are closed after their
//! deadlines, and with the open-file limit lowered, a slowloris of 300
//! stalled connections does not keep `/healthz` from answering.

mod support;

use std::time::Duration;

use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any step may take before the test fails (a guard against a hung
/// test, far above the deadlines the server is given).
const GUARD: Duration = Duration::from_secs(30);

/// Reads until the server closes the connection; what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(GUARD, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the server closed the connection");
    String::from_utf8_lossy(&received).into_owned()
}

async fn healthz(address: &str) -> reqwest::StatusCode {
    reqwest::Client::builder()
        .timeout(GUARD)
        .build()
        .unwrap()
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .expect("healthz answers")
        .status()
}

#[tokio::test]
async fn a_connection_that_stalls_in_its_headers_is_closed_after_the_header_timeout() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("ATK_HEADER_TIMEOUT", "1")]);
    let mut stalled = TcpStream::connect(&server.address).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stalled).await;
    assert!(
        !answer.contains("200 OK"),
        "a request whose headers never ended was not served: {answer:?}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_that_sits_idle_is_closed_after_the_header_timeout() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("ATK_HEADER_TIMEOUT", "1")]);
    let mut idle = TcpStream::connect(&server.address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The answer arrives, then nothing more is asked: the server closes
    // the connection by itself.
    let everything = read_until_closed(&mut idle).await;
    assert!(everything.starts_with("HTTP/1.1 200 OK"), "{everything:?}");
}

#[tokio::test]
async fn a_request_body_that_stalls_gets_408_and_the_connection_is_closed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("ATK_BODY_TIMEOUT", "1")]);
    let mut stalled = TcpStream::connect(&server.address).await.unwrap();
    stalled
        .write_all(
            b"POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"key\": \"atk_",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stalled).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer:?}"
    );
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer:?}");
    assert!(answer.contains("connection: close"), "{answer:?}");
}

#[tokio::test]
async fn a_slowloris_of_300_stalled_connections_does_not_keep_healthz_from_answering() {
    let data = tempfile::tempdir().unwrap();
    // 256 open files leave room for 192 connections; the header timeout is
    // long, so only the connection cap can make room.
    let server =
        Server::start_with_open_file_limit(data.path(), &[("ATK_HEADER_TIMEOUT", "600")], 256);
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut connection = TcpStream::connect(&server.address).await.unwrap();
        connection
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        stalled.push(connection);
    }
    assert_eq!(healthz(&server.address).await, reqwest::StatusCode::OK);
    assert_eq!(healthz(&server.address).await, reqwest::StatusCode::OK);
    // The longest-stalled connection gave its place up.
    let oldest = read_until_closed(&mut stalled[0]).await;
    assert!(!oldest.contains("200 OK"), "{oldest:?}");
    // And the server is still whole: it stops cleanly.
    drop(stalled);
    assert!(server.stop().success());
}
