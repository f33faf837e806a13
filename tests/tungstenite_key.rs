//! The tokio-tungstenite adapter refuses an upgrade whose `Sec-WebSocket-Key` is not
//! the base64 of 16 bytes (RFC 6455 §4.2.1) with 400, before anything else runs;
//! a well-formed key, and a real client's, upgrade (127.0.0.1, OS-assigned port,
//! every wait bounded).
#![cfg(feature = "tungstenite")]

#[path = "support/tungstenite_server.rs"]
mod tungstenite_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_lifecycle::{
    CloseFrame, DriverConfig, Handler, Message, Registry, Sender, Service, Session,
};

const WAIT: Duration = Duration::from_secs(10);

struct Quiet;

impl Handler for Quiet {
    async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
        Ok(())
    }
}

/// A server that upgrades anyone (no authentication).
async fn start() -> SocketAddr {
    let service = Arc::new(Service::public(
        Registry::open_now(),
        DriverConfig::default(),
        Quiet,
    ));
    tungstenite_server::serve(service).await
}

/// The status line and body the server answers an upgrade request with `key`.
async fn answer_to(addr: SocketAddr, key: &str) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        let mut chunk = [0_u8; 1024];
        // Until the end of the stream (a refusal) or of the head (a 101).
        while !bytes.windows(4).any(|w| w == b"\r\n\r\n") || !bytes.starts_with(b"HTTP/1.1 101") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("answered in time")
}

#[tokio::test]
async fn an_invalid_sec_websocket_key_is_answered_400() {
    let addr = start().await;
    // RFC 6455's own example key, and one with every alphabet class.
    for key in [
        "dGhlIHNhbXBsZSBub25jZQ==",
        "AQIDBAUGBwgJCgsMDQ4PEA==",
        "+/+/+/+/+/+/+/+/+/+/+w==",
    ] {
        let answer = answer_to(addr, key).await;
        assert!(answer.starts_with("HTTP/1.1 101"), "{key}: {answer}");
    }
    for key in [
        "",
        "x",
        "dGhlIHNhbXBsZSBub25jZQ",       // no padding
        "dGhlIHNhbXBsZSBub25jZQ=",      // 23 characters
        "dGhlIHNhbXBsZSBub25jZQ===",    // 25
        "dGhlIHNhbXBsZSBub25jZR==",     // bits beyond the 16 bytes
        "dGhlIHNhbXBsZSBub25j*Q==",     // not base64
        "dGhlIHNhbXBsZSBub25jZSE=",     // 17 bytes
        "dGhlIHNhbXBsZSBub25jZSEhIQ==", // 19 bytes
        "the sample nonce",             // the 16 bytes, not encoded
    ] {
        let answer = answer_to(addr, key).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{key:?}: {answer}");
        assert!(answer.contains("Sec-WebSocket-Key"), "{key:?}: {answer}");
    }
    // A real client's key.
    let connected = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("in time");
    assert!(connected.is_ok(), "{:?}", connected.err());
}
