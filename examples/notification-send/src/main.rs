//! Serves the example: `ATK_URL` is the key service (default
//! http://127.0.0.1:8080), `LISTEN` this backend's address (default
//! 127.0.0.1:3000).

use std::net::SocketAddr;

use atk_guard::KeyGuard;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_service = std::env::var("ATK_URL").unwrap_or("http://127.0.0.1:8080".into());
    let listen = std::env::var("LISTEN").unwrap_or("127.0.0.1:3000".into());
    let client = atk_client::Client::builder(key_service).build()?;
    let guard = KeyGuard::builder(client).build();
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "notification-send listening on http://{}",
        listener.local_addr()?
    );
    // The peer's address is what the guard sends verify as `client_ip`.
    let app = notification_send::app(&guard);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
