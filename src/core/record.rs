//! How a connection closes: the first cause ([`CloseCause`], G4), how it ended
//! ([`CloseEnd`]), and the whole [`CloseRecord`].

use serde::{Deserialize, Serialize};

use super::{CloseCode, CloseFrame, TransportLoss};

crate::core::names::named! {
    /// Why a connection is closing: the first close of any kind, kept for good (**G4**).
    ///
    /// Serde form: the snake-case name, e.g. `"readiness_deadline"`, or
    /// `{"transport_lost":"eof"}` (**G9**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::{CloseCause, TransportLoss};
    /// use ws_lifecycle::{CloseCode, CloseFrame, Config, Connection, ConnectionId};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// conn.transport().handle_peer_close(Some(CloseFrame::normal()), now)?; // the peer leaves first
    /// let restart = CloseFrame::new(CloseCode::GOING_AWAY, "restart")?;
    /// let closing = conn.close(restart, now); // too late: the first cause stands (G4)
    /// assert_eq!(closing.close_record().unwrap().cause, CloseCause::Peer);
    /// assert_eq!(CloseCause::Peer.as_str(), "peer");
    /// let lost = CloseCause::TransportLost(TransportLoss::Eof);
    /// assert_eq!(serde_json::to_string(&lost)?, r#"{"transport_lost":"eof"}"#); // G9
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[non_exhaustive]
    pub enum CloseCause {
        /// The application closed it.
        Local => "local",
        /// The outbox overflowed under [`OverflowPolicy::Close`](crate::core::OverflowPolicy::Close):
        /// the peer read too slowly. Queued messages are still written before the Close.
        SlowConsumer => "slow_consumer",
        /// The peer sent more application messages before `Ready` than the inbound hold
        /// takes ([`Config::inbound_capacity`](crate::core::Config::inbound_capacity)); 1008.
        InboundOverflow => "inbound_overflow",
        /// The peer sent Close first.
        Peer => "peer",
        /// Authentication failed (1008).
        AuthFailed => "auth_failed",
        /// It was not `Ready` by its readiness deadline (1008, **G5**).
        ReadinessDeadline => "readiness_deadline",
        /// Its credential expired while it was open (1008, **G5**).
        CredentialExpired => "credential_expired",
        /// The transport ended without a close handshake.
        TransportLost(TransportLoss) => "transport_lost",
        /// The application refused it before accepting the handshake (no Close frame).
        Refused => "refused",
        /// A [`Registry`](crate::registry::Registry) did not admit it: the registry was not open
        /// (1013), was at capacity (1013), or the user held too many connections (1008)
        /// (**G8**). See [`RegistryError`](crate::registry::RegistryError).
        NotAdmitted => "not_admitted",
        /// A [`Registry`](crate::registry::Registry) drain closed it (1001, **G8**). Queued messages
        /// are still written before the Close.
        Shutdown => "shutdown",
        /// The driver heard nothing from the peer within its idle timeout (1001).
        IdleTimeout => "idle_timeout",
        /// The peer broke the driver's limits before authenticating: a message too big,
        /// or too many messages (1008).
        PreAuthLimit => "pre_auth_limit",
        /// The application's authenticator or handler panicked (1011).
        HandlerPanic => "handler_panic",
        /// The peer broke the WebSocket protocol (1002, RFC 6455 §7.4.1): the driver
        /// sends its Close and stops reading.
        ProtocolError => "protocol_error",
        /// The peer sent invalid UTF-8 in a text message or a Close reason (1007).
        InvalidPayload => "invalid_payload",
        /// The peer sent a message or frame over the socket's size limit (1009).
        MessageTooBig => "message_too_big",
    }
}

impl CloseCause {
    /// True when messages queued before our Close are still written before it
    /// (**G3**): the closes our side asks for — the application's (`Local`), a drain
    /// (`Shutdown`), the slow-consumer policy, the driver's idle timeout and a
    /// handler's panic (its last sends go out before the 1011). False when the peer
    /// closed first or the connection failed a check (authentication, a deadline, a
    /// limit): our Close goes next, and what is queued comes back from
    /// `take_unsent`.
    ///
    /// ```
    /// use ws_lifecycle::core::CloseCause;
    ///
    /// assert!(CloseCause::Local.flushes_queue());
    /// assert!(CloseCause::HandlerPanic.flushes_queue());
    /// assert!(!CloseCause::Peer.flushes_queue());
    /// assert!(!CloseCause::ReadinessDeadline.flushes_queue());
    /// ```
    pub const fn flushes_queue(self) -> bool {
        matches!(
            self,
            CloseCause::Local
                | CloseCause::SlowConsumer
                | CloseCause::Shutdown
                | CloseCause::IdleTimeout
                | CloseCause::HandlerPanic
        )
    }
}

/// How a closed connection ended.
///
/// Serde form: `"clean"`, `"timed_out"`, `{"transport_lost":"error"}`,
/// `"never_opened"` (**G9**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::CloseEnd;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId};
///
/// let now = Instant::now();
/// let early = Connection::new(ConnectionId::new(1), Config::default());
/// let refused = early.close(CloseFrame::normal(), now); // the upgrade is refused
/// assert_eq!(refused.close_record().unwrap().end, Some(CloseEnd::NeverOpened)); // no Close frame
/// let conn = Connection::new(ConnectionId::new(2), Config::default()).accept(now)?;
/// let mut closing = conn.close(CloseFrame::normal(), now);
/// closing.poll_transmit(now); // our Close is out; the peer never answers
/// closing.handle_timeout(closing.poll_timeout().unwrap()); // the close timeout (G5)
/// assert_eq!(closing.close_record().unwrap().end, Some(CloseEnd::TimedOut));
/// assert!(closing.is_closed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseEnd {
    /// Both Close frames were exchanged.
    Clean,
    /// The close handshake timed out; the transport was dropped (**G5**).
    TimedOut,
    /// The transport ended first.
    TransportLost(TransportLoss),
    /// The handshake was never accepted, so there was nothing to close.
    NeverOpened,
}

/// The record of a connection's close: why, which frames, how it ended.
///
/// Serde form: an object with the fields below (**G9**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::CloseCause;
/// use ws_lifecycle::{CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let mut closing = conn.close(CloseFrame::new(CloseCode::GOING_AWAY, "restart")?, now);
/// assert!(matches!(closing.poll_transmit(now), Some(Frame::Close(_))));
/// closing.handle_peer_close(Some(CloseFrame::normal()), now)?; // the peer's acknowledgement
/// let record = closing.close_record().unwrap();
/// assert_eq!(record.cause, CloseCause::Local);
/// assert_eq!(record.frame.as_ref().map(CloseFrame::code), Some(CloseCode::GOING_AWAY)); // ours
/// assert_eq!(record.code(), CloseCode::NORMAL); // the connection's: the peer's (RFC 6455 §7.1.5)
/// assert!(record.close_sent && record.peer_closed && record.is_clean());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CloseRecord {
    /// The first cause (**G4**).
    pub cause: CloseCause,
    /// What our Close frame carries (`None`: an empty Close, or no Close at all).
    pub frame: Option<CloseFrame>,
    /// Our Close frame was handed to the transport.
    pub close_sent: bool,
    /// The peer's Close frame arrived.
    pub peer_closed: bool,
    /// What the peer's Close carried, if it arrived with a code.
    pub peer_frame: Option<CloseFrame>,
    /// How it ended; `None` while still closing.
    pub end: Option<CloseEnd>,
}

impl CloseRecord {
    pub(crate) fn new(cause: CloseCause, frame: Option<CloseFrame>) -> CloseRecord {
        CloseRecord {
            cause,
            frame,
            close_sent: false,
            peer_closed: false,
            peer_frame: None,
            end: None,
        }
    }

    /// The connection's close code as RFC 6455 §7.1.5 defines it: the code in the
    /// peer's Close frame; 1005 if its Close carried none; 1006 if no Close from the
    /// peer arrived (a timeout, a lost transport, a refused upgrade). Our own frame is
    /// [`CloseRecord::frame`].
    pub fn code(&self) -> CloseCode {
        match (&self.peer_frame, self.peer_closed) {
            (Some(theirs), _) => theirs.code(),
            (None, true) => CloseCode::NO_STATUS,
            (None, false) => CloseCode::ABNORMAL,
        }
    }

    /// True when the close handshake completed.
    pub fn is_clean(&self) -> bool {
        self.end == Some(CloseEnd::Clean)
    }
}
