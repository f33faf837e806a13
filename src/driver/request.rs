//! [`UpgradeRequest`]: the HTTP request that asked for the WebSocket, as the
//! authenticator and the handler see it.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::{HeaderMap, Method, Uri};

/// The upgrade request: method, URI (with the query), headers and the peer's address.
/// The adapters build it from their library's request; the authenticator sees it
/// before the `101` ([`Authenticator::at_upgrade`](super::Authenticator::at_upgrade)),
/// and the handler finds it in [`Session::request`](super::Session::request).
///
/// ```
/// use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
/// use ws_lifecycle::driver::UpgradeRequest;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
/// let request = UpgradeRequest::new("/ws?room=42".parse()?, headers)
///     .with_peer("192.0.2.7:50312".parse()?);
/// let header = request.headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
/// assert_eq!(header.and_then(|value| value.strip_prefix("Bearer ")), Some("s3cret"));
/// assert_eq!((request.uri.path(), request.query_param("room").as_deref()), ("/ws", Some("42")));
/// assert_eq!(request.peer.map(|peer| peer.port()), Some(50312));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Its `Debug` form leaves credentials out — the query's values and the headers'
/// values are not printed, only the header names — so that logging a request or a
/// [`Session`](super::Session) does not log a token.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The request's method (`GET` for a WebSocket upgrade).
    pub method: Method,
    /// The request's URI.
    pub uri: Uri,
    /// The request's headers.
    pub headers: HeaderMap,
    /// The peer's address, when the adapter knows it (axum: served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`; tungstenite: passed to
    /// `accept`).
    pub peer: Option<SocketAddr>,
    /// What an adapter carries from the HTTP request to the upgrade it completes
    /// (axum: hyper's `OnUpgrade` and the HTTP version). Taken out before the
    /// request reaches the authenticator.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) extensions: http::Extensions,
}

impl fmt::Debug for UpgradeRequest {
    /// Method, path, the names of the query's parameters and of the headers, peer:
    /// never a value that may carry a credential.
    ///
    /// ```
    /// use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
    /// use ws_lifecycle::driver::UpgradeRequest;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
    /// let request = UpgradeRequest::new("/ws?token=s3cret&room=1".parse()?, headers);
    /// let printed = format!("{request:?}");
    /// assert!(!printed.contains("s3cret"));
    /// assert!(printed.contains("/ws") && printed.contains("token") && printed.contains("authorization"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query: Vec<&str> = (self.query().unwrap_or_default().split('&'))
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
            .collect();
        let headers: Vec<&str> = self.headers.keys().map(|name| name.as_str()).collect();
        f.debug_struct("UpgradeRequest")
            .field("method", &self.method)
            .field("path", &self.uri.path())
            .field("query_names", &query)
            .field("header_names", &headers)
            .field("peer", &self.peer)
            .finish()
    }
}

impl UpgradeRequest {
    /// A `GET` request with this URI and these headers, from no known peer.
    ///
    /// ```
    /// use ws_lifecycle::driver::UpgradeRequest;
    ///
    /// let request = UpgradeRequest::new("/ws?token=ada".parse()?, Default::default());
    /// assert_eq!(request.query(), Some("token=ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(uri: Uri, headers: HeaderMap) -> UpgradeRequest {
        UpgradeRequest {
            method: Method::GET,
            uri,
            headers,
            peer: None,
            extensions: http::Extensions::new(),
        }
    }

    /// The same request, from `peer`.
    pub fn with_peer(self, peer: SocketAddr) -> UpgradeRequest {
        UpgradeRequest {
            peer: Some(peer),
            ..self
        }
    }

    /// The query string, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The value of the first `name=value` pair in the query, decoded as a browser's
    /// form encoding is (`%XX` escapes, `+` for a space; invalid UTF-8 is replaced);
    /// `Some("")` for a bare `name`. Names are compared as written.
    ///
    /// ```
    /// use ws_lifecycle::driver::UpgradeRequest;
    ///
    /// let request = UpgradeRequest::new("/ws?token=ada%3As3cret&room=rust+lang&debug".parse()?, Default::default());
    /// assert_eq!(request.query_param("token").as_deref(), Some("ada:s3cret")); // encodeURIComponent's
    /// assert_eq!(request.query_param("room").as_deref(), Some("rust lang"));
    /// assert_eq!(request.query_param("debug").as_deref(), Some(""));
    /// assert_eq!(request.query_param("user"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| decode(value))
        })
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    ///
    /// ```
    /// use http::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
    /// use ws_lifecycle::driver::UpgradeRequest;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("chat.v2, jwt.eyJhbGciOi"));
    /// let request = UpgradeRequest::new("/ws".parse()?, headers);
    /// assert_eq!(request.protocols().collect::<Vec<_>>(), ["chat.v2", "jwt.eyJhbGciOi"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn protocols(&self) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|protocol| !protocol.is_empty())
    }
}

/// Form-decodes a query value: `+` is a space, `%XX` a byte; a `%` not followed by
/// two hex digits stays as written.
fn decode(value: &str) -> Cow<'_, str> {
    if !value.contains(['%', '+']) {
        return Cow::Borrowed(value);
    }
    let hex = |at: usize| {
        value
            .as_bytes()
            .get(at)
            .and_then(|&b| (b as char).to_digit(16))
    };
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&byte) = value.as_bytes().get(i) {
        match (byte, hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8); // two hex digits: at most 255
                i += 3;
                continue;
            }
            (b'+', ..) => out.push(b' '),
            _ => out.push(byte),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
