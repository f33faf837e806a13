//! The tokio-tungstenite adapter over a real socket (127.0.0.1, OS-assigned port):
//! `ws_lifecycle::tungstenite::accept` runs a connection in one call, and the
//! authenticator sees the upgrade request's query and headers with the first
//! message.
#![cfg(feature = "tungstenite")]

#[path = "support/tungstenite_server.rs"]
mod tungstenite_server;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as TMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ws_lifecycle::driver::AuthRequest;
use ws_lifecycle::{
    CloseFrame, DriverConfig, Handler, Identity, Message, Registry, RegistryConfig, Sender,
    Service, Session,
};

const WAIT: Duration = Duration::from_secs(10);

struct Echo;

impl Handler for Echo {
    async fn on_message(
        &self,
        _: &Session,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        let _ = sender.send(message);
        Ok(())
    }
}

/// Admits `?user=<name>` when the `x-api-key` header is right and the first message
/// says "hello".
async fn from_request(request: AuthRequest) -> Result<Identity, String> {
    let key = request
        .request
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok());
    let user = request
        .request
        .query()
        .and_then(|q| q.strip_prefix("user="))
        .ok_or("no user in the query")?;
    match (key, request.first_message.as_text()) {
        (Some("k3y"), Some("hello")) => Ok(Identity::user(user)),
        _ => Err("refused".to_owned()),
    }
}

async fn start() -> (std::net::SocketAddr, Registry) {
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    let mut config = DriverConfig::default();
    config.answer_pings = false;
    let service = Arc::new(Service::new(
        registry.clone(),
        config,
        |r: AuthRequest| from_request(r),
        Echo,
    ));
    let addr = tungstenite_server::serve(service).await;
    (addr, registry)
}

async fn next(
    ws: &mut (impl StreamExt<Item = Result<TMessage, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> TMessage {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("answered in time")
        .expect("open")
        .expect("no error")
}

#[tokio::test]
async fn headers_and_query_reach_the_authenticator_and_messages_echo() {
    let (addr, registry) = start().await;
    let mut request = format!("ws://{addr}/chat?user=ada")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-api-key", "k3y".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(TMessage::text("hello")).await.unwrap();
    ws.send(TMessage::text("echo me")).await.unwrap();
    assert_eq!(next(&mut ws).await, TMessage::text("echo me"));
    assert_eq!(
        registry.connections_of("ada").len(),
        1,
        "listed under the query's user"
    );
    ws.close(None).await.unwrap();
    // Our answer to the client's Close, then the end.
    assert!(matches!(next(&mut ws).await, TMessage::Close(_)));
    for _ in 0..100 {
        if registry.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(registry.is_empty(), "G7: unlisted once closed");
}

#[tokio::test]
async fn a_missing_header_is_refused_with_1008() {
    let (addr, _registry) = start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat?user=ada"))
        .await
        .unwrap();
    ws.send(TMessage::text("hello")).await.unwrap();
    match next(&mut ws).await {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected Close 1008, got {other:?}"),
    }
}
