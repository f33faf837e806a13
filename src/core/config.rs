//! [`Config`]: per-connection limits and timeouts, with documented defaults.

use std::time::Duration;

use crate::core::{CloseFrame, CrateClose};

/// Per-connection configuration. Start from [`Config::default`] and change fields.
///
/// Capacities (the byte budget included) are normalized when a connection is made:
/// each is at least 1 and at most `u32::MAX`, and `pending_capacity` is at most `outbox_capacity` (the buffered
/// events are flushed into the outbox at `Ready`, and must fit; the flush is not held
/// to `outbox_bytes`, which then refuses sends until the outbox drains below it). A timeout of
/// 2⁶⁴ − 1 ns (about 584 years) or more means "no deadline".
///
/// ```
/// use std::time::Duration;
/// let mut config = ws_lifecycle::Config::default();
/// config.readiness_timeout = Duration::from_secs(5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How long after accept the connection may take to become `Ready` (authenticate
    /// and get its services ready) before it is closed with 1008 (**G5**).
    /// Default: 10 s.
    pub readiness_timeout: Duration,
    /// How long the close handshake may take before the transport is dropped (**G5**).
    /// Default: 5 s.
    pub close_timeout: Duration,
    /// How many messages the outbox holds before `send` returns them as
    /// [`SendErrorKind::Full`](crate::core::SendErrorKind::Full). Default: 16 384.
    ///
    /// The byte budget ([`outbox_bytes`](Self::outbox_bytes)) is the bound an ordinary
    /// burst meets: 16 384 messages fill 1 MiB at 64 bytes apiece, so only a backlog
    /// of messages shorter than a short chat line reaches the count first — and it
    /// still bounds the per-message overhead of a flood of empty messages (about
    /// 40 bytes each, 640 KiB). A room of 200 where everyone speaks at once queues a
    /// few thousand small messages to each client within milliseconds; with the old
    /// count of 1024 such a burst cut a client that was reading all along.
    pub outbox_capacity: usize,
    /// How many bytes (the sum of [`Message::len`](crate::Message::len)) the outbox
    /// holds: a send that would take the queued bytes past it is
    /// [`SendErrorKind::Full`](crate::core::SendErrorKind::Full), exactly as a count
    /// overflow is, and [`overflow`](Self::overflow) applies. An empty outbox takes
    /// any one message, however large (the framing layer's message limit bounds it).
    /// Default: 1 MiB, Centrifugo's per-client queue: a client that holds that much
    /// unread is a slow consumer, whatever the count.
    pub outbox_bytes: usize,
    /// What a full outbox does to a [`Sender::send`](crate::handle::Sender::send) (the
    /// slow-consumer policy). Default: [`OverflowPolicy::Reject`].
    pub overflow: OverflowPolicy,
    /// How many events an [`Emitter`](crate::handle::Emitter) may buffer before `Ready`; one
    /// more is handed back as [`SendErrorKind::Full`](crate::core::SendErrorKind::Full).
    /// Default: 256.
    pub pending_capacity: usize,
    /// How many application messages from the peer are held for the application.
    /// Before `Ready`, one more closes the connection with 1008 (nobody reads yet);
    /// once `Ready`, the driver is told to wait for room. Default: 256.
    pub inbound_capacity: usize,
}

/// What happens when a message meets a full outbox: the peer reads more slowly than
/// the application writes.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{OverflowPolicy, SendErrorKind};
/// use ws_lifecycle::{CloseCode, Config, Connection, ConnectionId, Frame, Message};
///
/// let now = Instant::now();
/// let mut config = Config::default();
/// assert_eq!(config.overflow, OverflowPolicy::Reject); // the default: hand it back as Full
/// config.outbox_capacity = 1;
/// config.overflow = OverflowPolicy::slow_consumer(); // close with 1013 instead
/// let conn = Connection::new(ConnectionId::new(1), config).accept(now)?;
/// let mut conn = conn.authenticate(None, now)?.ready(now)?;
/// conn.send(Message::text("1"))?;
/// let err = conn.send(Message::text("2")).unwrap_err(); // the peer is too slow
/// assert_eq!(err.kind, SendErrorKind::Closed); // handed back; the gate is shut (G3)
/// assert_eq!(conn.poll_transmit(now), Some(Frame::Message(Message::text("1")))); // queued: written
/// let close = conn.poll_transmit(now);
/// assert!(matches!(close, Some(Frame::Close(Some(f))) if f.code() == CloseCode::TRY_AGAIN_LATER));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Hand the message back as [`SendErrorKind::Full`](crate::core::SendErrorKind::Full);
    /// the caller retries, waits ([`Sender::send_async`](crate::handle::Sender::send_async)),
    /// or drops it.
    Reject,
    /// Close the connection with this frame — the "slow consumer" disconnect — and
    /// hand the message back as [`SendErrorKind::Closed`](crate::core::SendErrorKind::Closed).
    /// From that send on, every send is refused; the close itself takes effect at the
    /// driver's next call that carries the time (which the send wakes), so its
    /// handshake timeout starts from a real clock reading. Messages already queued are
    /// written before the Close. [`OverflowPolicy::slow_consumer`] gives the
    /// documented default frame.
    Close(CloseFrame),
}

impl OverflowPolicy {
    /// `Close` with 1013 "slow consumer": a retryable code, since the client may do
    /// better on reconnect.
    pub fn slow_consumer() -> OverflowPolicy {
        OverflowPolicy::Close(CrateClose::SlowConsumer.frame())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            readiness_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            outbox_capacity: 16 * 1024,
            outbox_bytes: 1024 * 1024,
            overflow: OverflowPolicy::Reject,
            pending_capacity: 256,
            inbound_capacity: 256,
        }
    }
}
