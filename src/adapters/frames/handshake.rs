//! The server's side of the opening handshake (RFC 6455 §4.2), one set of rules for
//! both adapters: what makes a request a WebSocket upgrade, and the headers of the
//! `101 Switching Protocols` that answers it.

use http::header::{
    CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, StatusCode};

use crate::driver::{Refusal, UpgradeRequest};

/// Checks that `request` is a WebSocket upgrade (RFC 6455 §4.2.1) and returns its
/// `Sec-WebSocket-Key`: `GET`, over HTTP/1.1 or later (`http11`), a `Connection`
/// header naming `upgrade`, an `Upgrade` header that is `websocket`, version 13, and a
/// key that is what §4.2.1 says it is, the base64 of 16 bytes (24 characters, the
/// last two `==`). Else the answer: 405 (another method), 426 (another version), or
/// 400 with what was missing.
pub(crate) fn check_upgrade(
    request: &UpgradeRequest,
    http11: bool,
) -> Result<HeaderValue, Refusal> {
    let first =
        |name| (request.headers.get(name)).and_then(|value: &HeaderValue| value.to_str().ok());
    if request.method != Method::GET {
        let status = StatusCode::METHOD_NOT_ALLOWED;
        return Err(Refusal::with_status(status, "a WebSocket upgrade is a GET"));
    }
    let bad = |why: &str| Err(Refusal::with_status(StatusCode::BAD_REQUEST, why));
    if !http11 {
        return bad("a WebSocket upgrade needs HTTP/1.1");
    }
    let connection = first(CONNECTION).unwrap_or_default();
    if !connection
        .split([' ', ','])
        .any(|token| token.eq_ignore_ascii_case("upgrade"))
    {
        return bad("not a WebSocket upgrade: no `Connection: upgrade`");
    }
    if !first(UPGRADE).is_some_and(|value| value.eq_ignore_ascii_case("websocket")) {
        return bad("not a WebSocket upgrade: no `Upgrade: websocket`");
    }
    if first(SEC_WEBSOCKET_VERSION) != Some("13") {
        let status = StatusCode::UPGRADE_REQUIRED;
        return Err(Refusal::with_status(
            status,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let Some(key) = request.headers.get(SEC_WEBSOCKET_KEY) else {
        return bad("not a WebSocket upgrade: no `Sec-WebSocket-Key`");
    };
    if !is_websocket_key(key.as_bytes()) {
        return bad("`Sec-WebSocket-Key` is not the base64 of 16 bytes");
    }
    Ok(key.clone())
}

/// Whether `key` is the base64 of 16 bytes (RFC 6455 §4.2.1): 22 characters of the
/// base64 alphabet, the last of them carrying no bits beyond the 128 (`A`, `Q`, `g`
/// or `w`), then `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    let is_base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24
        && key[..22].iter().all(is_base64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

/// The headers of the `101 Switching Protocols` answering the key `key`, with the
/// selected subprotocol if any (one that is not a valid header value is left out,
/// with a warning).
pub(crate) fn switching_headers(key: &HeaderValue, protocol: Option<&str>) -> HeaderMap {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if let Some(protocol) = protocol {
        match HeaderValue::from_str(protocol) {
            Ok(value) => {
                headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
            }
            Err(_) => tracing::warn!(protocol, "selected subprotocol is not a header value"),
        }
    }
    headers
}

/// The `101 Switching Protocols` response head, as bytes for the wire.
#[cfg(feature = "tungstenite")]
pub(crate) fn switching_head(key: &HeaderValue, protocol: Option<&str>) -> Vec<u8> {
    let mut head = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    for (name, value) in &switching_headers(key, protocol) {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}
