//! A [`Service`] served by the tungstenite adapter on 127.0.0.1 with an OS-assigned
//! port: the accept loop each tungstenite test would otherwise write again.

use std::net::SocketAddr;
use std::sync::Arc;

use ws_lifecycle::{Authenticator, Handler, Service};

/// Serves `service` on a fresh loopback listener, one task per connection (each
/// connection's result dropped); where it listens.
pub async fn serve<A, H>(service: Arc<Service<A, H>>) -> SocketAddr
where
    A: Authenticator + 'static,
    H: Handler<A::State>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await;
            });
        }
    });
    addr
}
