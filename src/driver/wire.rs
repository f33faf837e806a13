//! [`WireFrame`] and [`UpgradeRequest`]: what the driver exchanges with a WebSocket
//! library, independent of which one.

use http::{HeaderMap, Uri};

use crate::core::{CloseFrame, Message};

/// One WebSocket frame (or reassembled message) as the driver reads and writes it.
/// The adapters convert their library's message type to and from this.
///
/// ```
/// use ws_lifecycle::driver::WireFrame;
/// use ws_lifecycle::{CloseFrame, Message};
///
/// let read = [
///     WireFrame::Message(Message::text("hi")),
///     WireFrame::Ping(b"are you there".to_vec()),
///     WireFrame::Close(Some(CloseFrame::normal())),
/// ];
/// let kinds = read.map(|frame| match frame {
///     WireFrame::Message(_) => "data",
///     WireFrame::Ping(_) | WireFrame::Pong(_) => "control",
///     WireFrame::Close(_) => "close",
///     _ => "other", // `#[non_exhaustive]`: more frame kinds may come
/// });
/// assert_eq!(kinds, ["data", "control", "close"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireFrame {
    /// A text or binary message.
    Message(Message),
    /// A Ping with its payload.
    Ping(Vec<u8>),
    /// A Pong with its payload.
    Pong(Vec<u8>),
    /// A Close, with its status and reason if it had any.
    Close(Option<CloseFrame>),
}

/// What the upgrade request carried, for the authenticator: its URI (with the query)
/// and headers.
///
/// ```
/// use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
/// use ws_lifecycle::driver::UpgradeRequest;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
/// let request = UpgradeRequest::new("/ws?room=42".parse()?, headers);
/// let header = request.headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
/// assert_eq!(header.and_then(|value| value.strip_prefix("Bearer ")), Some("s3cret"));
/// assert_eq!((request.uri.path(), request.query()), ("/ws", Some("room=42")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The request's URI.
    pub uri: Uri,
    /// The request's headers.
    pub headers: HeaderMap,
}

impl UpgradeRequest {
    /// A request with this URI and these headers.
    ///
    /// ```
    /// use ws_lifecycle::driver::UpgradeRequest;
    ///
    /// let request = UpgradeRequest::new("/ws?token=ada".parse()?, Default::default());
    /// assert_eq!(request.query(), Some("token=ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(uri: Uri, headers: HeaderMap) -> UpgradeRequest {
        UpgradeRequest { uri, headers }
    }

    /// The query string, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }
}
