//! A bare axum `GET /hello`: no middleware, no state. Prints its address.
use axum::{Router, routing::get};

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    axum::serve(listener, app).await.unwrap();
}
