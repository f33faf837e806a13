//! [`CrateClose`]: the one table of the closes the crate raises itself — each with its
//! cause, code and reason. Every Close frame the crate builds on its own comes from
//! here (a peer's Close is echoed with its own code; an application's close carries
//! the application's frame).

use super::{CloseCause, CloseCode, CloseFrame};

/// A close the crate raises itself. [`CrateClose::ALL`] is the whole table:
///
/// | close | cause | code | reason | queued messages first |
/// |---|---|---|---|---|
/// | `ReadinessDeadline` | `readiness_deadline` | 1008 | not ready before the deadline | no |
/// | `AuthFailed` | `auth_failed` | 1008 | authentication failed | no |
/// | `CredentialExpired` | `credential_expired` | 1008 | credential expired | no |
/// | `InboundOverflow` | `inbound_overflow` | 1008 | too many messages before ready | no |
/// | `PreAuthTooBig` | `pre_auth_limit` | 1008 | message too big before authentication | no |
/// | `SlowConsumer` | `slow_consumer` | 1013 | slow consumer | yes |
/// | `IdleTimeout` | `idle_timeout` | 1001 | idle timeout | yes |
/// | `HandlerPanic` | `handler_panic` | 1011 | internal error | yes |
/// | `Shutdown` | `shutdown` | 1001 | server shutting down | yes |
/// | `NotOpen` | `not_admitted` | 1013 | server starting | no |
/// | `HoldFull` | `not_admitted` | 1013 | server starting | no |
/// | `HoldExpired` | `not_admitted` | 1013 | server still starting | no |
/// | `ReadyBeforeOpen` | `not_admitted` | 1013 | made ready before the server opened | no |
/// | `AtCapacity` | `not_admitted` | 1013 | server at capacity | no |
/// | `UserLimit` | `not_admitted` | 1008 | too many connections | no |
/// | `ProtocolError` | `protocol_error` | 1002 | protocol error | no |
/// | `InvalidPayload` | `invalid_payload` | 1007 | invalid UTF-8 | no |
/// | `MessageTooBig` | `message_too_big` | 1009 | message too big | no |
///
/// "Queued messages first": whether what was queued before the close is still
/// written before our Close ([`CloseCause::flushes_queue`]); otherwise it comes back
/// from `take_unsent`. (`tests/wire.rs` checks this table against
/// [`CrateClose::ALL`].) A slow-consumer
/// close under [`OverflowPolicy::Close`](crate::core::OverflowPolicy::Close) carries
/// the frame the policy names; [`OverflowPolicy::slow_consumer`](crate::core::OverflowPolicy::slow_consumer)
/// names the one above.
///
/// ```
/// use ws_lifecycle::core::{CloseCause, CloseCode, CrateClose};
///
/// let close = CrateClose::IdleTimeout;
/// assert_eq!(close.code(), CloseCode::GOING_AWAY);
/// assert_eq!(close.cause(), CloseCause::IdleTimeout);
/// assert_eq!(close.frame().reason(), "idle timeout");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CrateClose {
    /// Not `Ready` by the readiness deadline (**G5**).
    ReadinessDeadline,
    /// Authentication failed, or a re-authentication did.
    AuthFailed,
    /// The credential expired on a live connection (**G5**).
    CredentialExpired,
    /// More application messages before `Ready` than the inbound hold takes (**G2**).
    InboundOverflow,
    /// The driver: a message before authentication over its size limit.
    PreAuthTooBig,
    /// The driver: more messages before authentication than it allows.

    /// The outbox overflowed under the slow-consumer policy.
    SlowConsumer,
    /// The driver: nothing heard from the peer within its idle timeout.
    IdleTimeout,
    /// The driver: the application's authenticator or handler panicked.
    HandlerPanic,
    /// A registry drain (**G8**).
    Shutdown,
    /// The registry is not open and refuses connections until it is (**G8**).
    NotOpen,
    /// The registry is not open and its startup hold is full (**G8**).
    HoldFull,
    /// A held connection's startup hold timed out (**G8**).
    HoldExpired,
    /// A held connection was made ready before the registry opened (**G8**).
    ReadyBeforeOpen,
    /// The registry is at its connection cap.
    AtCapacity,
    /// The user holds as many connections as the registry allows.
    UserLimit,
    /// The driver: the peer broke the WebSocket protocol (RFC 6455 §7.4.1: an
    /// unmasked frame, reserved bits, an unknown opcode, a fragmented or oversized
    /// control frame, a continuation without a start, a 1-byte Close payload).
    ProtocolError,
    /// The driver: invalid UTF-8 in a text message or a Close reason.
    InvalidPayload,
    /// The driver: a message or frame over the socket's size limit.
    MessageTooBig,
}

impl CrateClose {
    /// The whole table, in the order above.
    pub const ALL: [CrateClose; 18] = [
        CrateClose::ReadinessDeadline,
        CrateClose::AuthFailed,
        CrateClose::CredentialExpired,
        CrateClose::InboundOverflow,
        CrateClose::PreAuthTooBig,
        CrateClose::SlowConsumer,
        CrateClose::IdleTimeout,
        CrateClose::HandlerPanic,
        CrateClose::Shutdown,
        CrateClose::NotOpen,
        CrateClose::HoldFull,
        CrateClose::HoldExpired,
        CrateClose::ReadyBeforeOpen,
        CrateClose::AtCapacity,
        CrateClose::UserLimit,
        CrateClose::ProtocolError,
        CrateClose::InvalidPayload,
        CrateClose::MessageTooBig,
    ];

    /// The row: cause, code, reason.
    const fn row(self) -> (CloseCause, CloseCode, &'static str) {
        use CloseCode as C;
        match self {
            CrateClose::ReadinessDeadline => (
                CloseCause::ReadinessDeadline,
                C::POLICY_VIOLATION,
                "not ready before the deadline",
            ),
            CrateClose::AuthFailed => (
                CloseCause::AuthFailed,
                C::POLICY_VIOLATION,
                "authentication failed",
            ),
            CrateClose::CredentialExpired => (
                CloseCause::CredentialExpired,
                C::POLICY_VIOLATION,
                "credential expired",
            ),
            CrateClose::InboundOverflow => (
                CloseCause::InboundOverflow,
                C::POLICY_VIOLATION,
                "too many messages before ready",
            ),
            CrateClose::PreAuthTooBig => (
                CloseCause::PreAuthLimit,
                C::POLICY_VIOLATION,
                "message too big before authentication",
            ),
            CrateClose::SlowConsumer => (
                CloseCause::SlowConsumer,
                C::TRY_AGAIN_LATER,
                "slow consumer",
            ),
            CrateClose::IdleTimeout => (CloseCause::IdleTimeout, C::GOING_AWAY, "idle timeout"),
            CrateClose::HandlerPanic => (
                CloseCause::HandlerPanic,
                C::INTERNAL_ERROR,
                "internal error",
            ),
            CrateClose::ProtocolError => (
                CloseCause::ProtocolError,
                C::PROTOCOL_ERROR,
                "protocol error",
            ),
            CrateClose::InvalidPayload => (
                CloseCause::InvalidPayload,
                C::INVALID_PAYLOAD,
                "invalid UTF-8",
            ),
            CrateClose::MessageTooBig => (
                CloseCause::MessageTooBig,
                C::MESSAGE_TOO_BIG,
                "message too big",
            ),
            CrateClose::Shutdown => (CloseCause::Shutdown, C::GOING_AWAY, "server shutting down"),
            CrateClose::NotOpen | CrateClose::HoldFull => (
                CloseCause::NotAdmitted,
                C::TRY_AGAIN_LATER,
                "server starting",
            ),
            CrateClose::HoldExpired => (
                CloseCause::NotAdmitted,
                C::TRY_AGAIN_LATER,
                "server still starting",
            ),
            CrateClose::ReadyBeforeOpen => (
                CloseCause::NotAdmitted,
                C::TRY_AGAIN_LATER,
                "made ready before the server opened",
            ),
            CrateClose::AtCapacity => (
                CloseCause::NotAdmitted,
                C::TRY_AGAIN_LATER,
                "server at capacity",
            ),
            CrateClose::UserLimit => (
                CloseCause::NotAdmitted,
                C::POLICY_VIOLATION,
                "too many connections",
            ),
        }
    }

    /// The cause the close is recorded with.
    pub const fn cause(self) -> CloseCause {
        self.row().0
    }

    /// The code of its Close frame.
    pub const fn code(self) -> CloseCode {
        self.row().1
    }

    /// The reason in its Close frame.
    pub const fn reason(self) -> &'static str {
        self.row().2
    }

    /// Its Close frame.
    pub fn frame(self) -> CloseFrame {
        CloseFrame::internal(self.code(), self.reason())
    }
}
