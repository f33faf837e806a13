//! [`DriverConfig`]: what the async driver adds to a connection's [`Config`], and
//! [`SocketConfig`], what it asks of the WebSocket library's socket.

use std::time::Duration;

use crate::core::Config;

/// How the driver runs each connection. Start from [`DriverConfig::default`].
///
/// ```
/// use std::time::Duration;
/// let mut config = ws_lifecycle::DriverConfig::default();
/// config.connection.readiness_timeout = Duration::from_secs(3); // the auth timeout
/// config.idle_timeout = Some(Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The lifecycle's own limits and timeouts. Its `readiness_timeout` bounds
    /// authentication: a client that has not authenticated (and been made ready) by
    /// then is closed with 1008 (**G5**). Default: [`Config::default`].
    pub connection: Config,
    /// A connection the peer has sent nothing on (no message, ping or pong) for this
    /// long is closed with 1001 "idle timeout". The driver pings it after half this
    /// time, so a live client's automatic pong keeps it open. `None`: no idle
    /// timeout, no keep-alive pings. Default: 60 s.
    pub idle_timeout: Option<Duration>,
    /// A connection whose socket has accepted nothing for this long while frames
    /// wait to be written — no write or flush made progress — is a slow consumer,
    /// whatever it reads or sends (a client that pings but never reads is one): it is
    /// closed with 1013 "slow consumer" (`CloseCause::SlowConsumer`), and the close
    /// handshake's timeout then ends it if the Close cannot be written either. This
    /// bounds how long a stalled client holds its outbox, on top of the outbox's own
    /// bounds ([`Config::outbox_bytes`], [`Config::outbox_capacity`]). `None`: no
    /// stall timeout. Default: 10 s (a reading client over a slow link makes some
    /// progress every few hundred milliseconds; one that accepts nothing for ten
    /// seconds is not reading).
    pub stall_timeout: Option<Duration>,
    /// Before authentication succeeds, a message larger than this many bytes closes
    /// the connection with 1008 (`pre_auth_limit`). The adapters' framing checks it
    /// at each frame's header, before the payload is read, so an unauthenticated
    /// client can make the server hold at most this much of a message; a socket of
    /// your own ([`Service::run`](super::Service::run)) is checked once a message is
    /// complete, so bound its own message size too. How many may wait is the inbound hold's bound
    /// ([`Config::inbound_capacity`]): the auth message goes to the authenticator,
    /// what a client pipelines behind it is held, in order, for the handler.
    /// Default: 4096.
    pub max_pre_auth_message_bytes: usize,
    /// Answer each Ping with a Pong, for a socket of your own passed to
    /// [`Service::run`](super::Service::run); set it to `false` for a socket whose
    /// library answers pings itself (a tokio-tungstenite `WebSocketStream` in
    /// `tungstenite::TungsteniteSocket` or axum's
    /// `WebSocket` in `axum::AxumSocket` do). The `axum` and
    /// `tungstenite` adapters run the crate's own framing, which leaves pings to the
    /// driver: there it always answers (the latest Ping, RFC 6455 §5.5.3), whatever
    /// this says. Default: `true`.
    pub answer_pings: bool,
    /// The subprotocols this server speaks, in order of preference: the upgrade is
    /// answered with the first of them the client offered
    /// ([`UpgradeRequest::protocols`](super::UpgradeRequest::protocols)), unless the
    /// authenticator chose one ([`Identity::selecting_protocol`](super::Identity::selecting_protocol)).
    /// Empty (the default): none is selected unless the authenticator chooses.
    pub protocols: Vec<String>,
    /// How long a pending handler call (`on_authenticated`, `on_message`) may go on
    /// once its connection is closing, and how long `on_close` may take, before the
    /// driver drops it (a future that never completes cannot keep a closed
    /// connection's task alive). One deadline per connection, from the moment it is
    /// first seen closing. Default: 2 s.
    ///
    /// The driver learns that a connection is closing by reading: while the handler
    /// takes no message and the inbound hold is full, it stops reading (back-pressure
    /// on the client), so a client that leaves then is noticed by the
    /// [`idle_timeout`](Self::idle_timeout) — with `idle_timeout: None`, a handler
    /// that never returns while its client floods it can keep the connection.
    pub handler_grace: Duration,
    /// In the first-message mode, hand the first message (the credential) to
    /// [`Handler::on_message`](super::Handler::on_message) too, before every other
    /// message, once the connection is `Ready`. Default: `false` (the authenticator
    /// consumes it).
    pub hand_on_first_message: bool,
    /// The WebSocket library's buffers and limits, applied by both adapters.
    pub socket: SocketConfig,
}

/// The socket's frame and message size limits and buffer sizes, applied by both
/// adapters' framing (and, for a socket of tungstenite's own, by
/// `tungstenite::websocket_config` and
/// `axum::configure`). A frame or message over its limit is
/// refused at the header of the frame that takes it over, before that frame's
/// payload is read, and the connection closed with 1009; before authentication
/// the tighter [`DriverConfig::max_pre_auth_message_bytes`] applies (1008). So a
/// client can make the server hold at most the limit in force of an unfinished
/// message. The defaults are leaner than tungstenite's own (1 MiB messages and
/// frames, not 64 and 16 MiB).
///
/// The adapters' framing keeps no per-connection buffer while a connection is idle:
/// it reads 4 KiB at a time into a buffer on the stack (a large frame's payload
/// straight into its message), and queues frames to write as a header and the
/// message's own shared payload — a broadcast is never copied per connection.
///
/// No write-buffer bound drops a frame: a library that refuses a frame for want of
/// room drops it, which would break **G3**; the outbox
/// ([`Config::outbox_bytes`](crate::core::Config::outbox_bytes) and
/// [`Config::outbox_capacity`](crate::core::Config::outbox_capacity)) is the bound
/// on what waits to be written, and [`DriverConfig::stall_timeout`] the bound on how
/// long a socket may accept nothing.
///
/// ```
/// let mut config = ws_lifecycle::DriverConfig::default();
/// config.socket.max_message_size = Some(8 << 20); // allow messages up to 8 MiB
/// assert_eq!(config.socket.max_frame_size, Some(1 << 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketConfig {
    /// tungstenite's read buffer, for a socket of tungstenite's own: allocated per
    /// connection up front, so it is most of an idle connection's memory there
    /// (10 000 idle clients of the example chat cost ≈ 18 kB each with 4 KiB,
    /// ≈ 137 kB each with tungstenite's 128 KiB; `scripts/memory.sh`). The adapters'
    /// framing holds no read buffer (≈ 13 kB each). Default: 4 KiB.
    pub read_buffer_size: usize,
    /// How many bytes of frames the socket takes before it waits for some to be
    /// written (the adapters' framing: a header and a shared payload each, no copy;
    /// tungstenite: copied into its write buffer). Default: 128 KiB.
    pub write_buffer_size: usize,
    /// The largest message a client may send once authenticated; `None`: no limit.
    /// Default: 1 MiB.
    pub max_message_size: Option<usize>,
    /// The largest frame a client may send; `None`: no limit. Default: 1 MiB.
    pub max_frame_size: Option<usize>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            read_buffer_size: 4 * 1024,
            write_buffer_size: 128 * 1024,
            max_message_size: Some(1 << 20),
            max_frame_size: Some(1 << 20),
        }
    }
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            connection: Config::default(),
            idle_timeout: Some(Duration::from_secs(60)),
            stall_timeout: Some(Duration::from_secs(10)),
            max_pre_auth_message_bytes: 4096,
            answer_pings: true,
            protocols: Vec::new(),
            handler_grace: Duration::from_secs(2),
            hand_on_first_message: false,
            socket: SocketConfig::default(),
        }
    }
}
