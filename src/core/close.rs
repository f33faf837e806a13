//! Close codes and Close frames: RFC 6455 §7.4 values, the application range, wire
//! validation and a retry classification.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// The named constants are the registered codes. [`CloseCode::from_wire`] validates a
/// code received from a peer; [`CloseCode::application`] builds one in the 4000–4999
/// private range. 1005, 1006 and 1015 are never put on the wire: they exist for
/// reporting only ([`CloseCode::is_sendable`] is false for them), and a [`CloseFrame`]
/// cannot carry them.
///
/// Serde form: the bare number, e.g. `1008` (**G9**).
///
/// ```
/// use ws_lifecycle::CloseCode;
/// use ws_lifecycle::core::CloseClass;
///
/// assert_eq!(CloseCode::from_wire(1008), Ok(CloseCode::POLICY_VIOLATION));
/// assert!(CloseCode::from_wire(1006).is_err()); // reserved: never on the wire
/// assert_eq!(CloseCode::TRY_AGAIN_LATER.class(), CloseClass::Retryable);
/// assert_eq!(CloseCode::application(4001).unwrap().class(), CloseClass::Application);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept (e.g. binary where only text is).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reporting only — the peer's Close carried no status code.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reporting only — the connection ended without a Close frame.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data was inconsistent with its type (e.g. invalid UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: the message or behaviour violates policy (authentication failure, missed
    /// readiness deadline, expired credential).
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (overload, or startup not finished — **G8**).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway or proxy got an invalid response upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reporting only — the TLS handshake failed.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// The application's private range (RFC 6455 §7.4.2), inclusive.
    pub const APPLICATION_RANGE: std::ops::RangeInclusive<u16> = 4000..=4999;

    /// Validates a code received in a peer's Close frame: 1000–1003, 1007–1014 and
    /// 3000–4999 are legal on the wire; everything else is a protocol error, to be
    /// answered with [`CloseCode::PROTOCOL_ERROR`].
    pub const fn from_wire(code: u16) -> Result<CloseCode, InvalidCloseFrame> {
        match code {
            1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(CloseCode(code)),
            1004..=1006 | 1015 => Err(InvalidCloseFrame::ReservedCode(code)),
            _ => Err(InvalidCloseFrame::CodeOutOfRange(code)),
        }
    }

    /// A code in the application's private range, 4000–4999.
    pub const fn application(code: u16) -> Result<CloseCode, InvalidCloseFrame> {
        match code {
            4000..=4999 => Ok(CloseCode(code)),
            _ => Err(InvalidCloseFrame::NotApplicationCode(code)),
        }
    }

    /// The numeric value.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// True when this code may appear in a Close frame on the wire (false for the
    /// reporting-only 1005, 1006 and 1015).
    pub const fn is_sendable(self) -> bool {
        CloseCode::from_wire(self.0).is_ok()
    }

    /// What a client can do after a close with this code.
    pub const fn class(self) -> CloseClass {
        match self.0 {
            1000 => CloseClass::Normal,
            1001 | 1006 | 1011..=1014 => CloseClass::Retryable,
            3000..=4999 => CloseClass::Application,
            _ => CloseClass::Terminal,
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// What a client should do after a close, by its code ([`CloseCode::class`]).
///
/// Serde form: the snake-case name, e.g. `"retryable"` (**G9**).
///
/// A client's reconnect policy, by the code it was closed with:
///
/// ```
/// use ws_lifecycle::CloseCode;
/// use ws_lifecycle::core::CloseClass;
///
/// let reconnect = |code: CloseCode| code.class() == CloseClass::Retryable;
/// assert!(reconnect(CloseCode::GOING_AWAY)); // 1001: the server restarts
/// assert!(reconnect(CloseCode::TRY_AGAIN_LATER)); // 1013: startup not finished (G8)
/// assert!(!reconnect(CloseCode::POLICY_VIOLATION)); // 1008: fix the credential first
/// assert_eq!(CloseCode::NORMAL.class(), CloseClass::Normal);
/// assert_eq!(serde_json::to_string(&CloseClass::Retryable)?, r#""retryable""#); // G9
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseClass {
    /// 1000: the session ended as intended; do not reconnect automatically.
    Normal,
    /// 1001, 1006, 1011–1014: a transient condition; reconnect with backoff.
    Retryable,
    /// 1002, 1003, 1007–1010, 1015 and unknown codes: reconnecting unchanged will fail
    /// the same way; fix the request or the credential first.
    Terminal,
    /// 3000–4999: registered or application-defined; the application decides.
    Application,
}

/// A Close frame's payload: a status code and a short UTF-8 reason.
///
/// Built only through [`CloseFrame::new`] (or serde, which runs the same checks), so a
/// value always fits on the wire: a sendable code and a reason of at most
/// [`CloseFrame::MAX_REASON_BYTES`] bytes.
///
/// Serde form: `{"code":1000,"reason":"bye"}` (**G9**).
///
/// ```
/// use ws_lifecycle::{CloseCode, CloseFrame};
///
/// let kicked = CloseFrame::new(CloseCode::application(4001)?, "kicked")?;
/// assert_eq!((kicked.code().as_u16(), kicked.reason()), (4001, "kicked"));
/// assert_eq!(kicked.to_string(), r#"4001 "kicked""#);
/// assert!(CloseFrame::new(CloseCode::ABNORMAL, "").is_err()); // 1006 never goes on the wire
/// assert_eq!(serde_json::to_string(&CloseFrame::normal())?, r#"{"code":1000,"reason":""}"#);
/// // Deserializing runs the same checks: a peer's frame cannot smuggle in a reserved code.
/// assert!(serde_json::from_str::<CloseFrame>(r#"{"code":1006}"#).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawCloseFrame")]
pub struct CloseFrame {
    code: CloseCode,
    reason: Cow<'static, str>,
}

#[derive(Deserialize)]
struct RawCloseFrame {
    code: u16,
    #[serde(default)]
    reason: Cow<'static, str>,
}

impl TryFrom<RawCloseFrame> for CloseFrame {
    type Error = InvalidCloseFrame;

    fn try_from(raw: RawCloseFrame) -> Result<Self, Self::Error> {
        CloseFrame::new(CloseCode::from_wire(raw.code)?, raw.reason)
    }
}

impl CloseFrame {
    /// The largest reason that fits in a control frame (125 bytes less the 2-byte code).
    pub const MAX_REASON_BYTES: usize = 123;

    /// A Close frame with `code` and `reason`. Fails for a reporting-only code
    /// (1005/1006/1015) or a reason longer than [`CloseFrame::MAX_REASON_BYTES`].
    pub fn new(
        code: CloseCode,
        reason: impl Into<Cow<'static, str>>,
    ) -> Result<CloseFrame, InvalidCloseFrame> {
        let reason = reason.into();
        CloseCode::from_wire(code.as_u16())?; // reserved or out of range: not on the wire
        if reason.len() > Self::MAX_REASON_BYTES {
            return Err(InvalidCloseFrame::ReasonTooLong { len: reason.len() });
        }
        Ok(CloseFrame { code, reason })
    }

    /// A Close frame with a code and reason the crate itself uses; both are known to
    /// be valid.
    pub(crate) fn internal(code: CloseCode, reason: &'static str) -> CloseFrame {
        debug_assert!(code.is_sendable() && reason.len() <= Self::MAX_REASON_BYTES);
        CloseFrame {
            code,
            reason: Cow::Borrowed(reason),
        }
    }

    /// `1000 Normal` with an empty reason.
    pub fn normal() -> CloseFrame {
        CloseFrame::internal(CloseCode::NORMAL, "")
    }

    /// The status code.
    pub fn code(&self) -> CloseCode {
        self.code
    }

    /// The reason text (possibly empty).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {:?}", self.code, self.reason)
        }
    }
}

/// Why a close code or Close frame was refused.
///
/// ```
/// use ws_lifecycle::{CloseCode, CloseFrame};
/// use ws_lifecycle::core::InvalidCloseFrame;
///
/// // From a peer, either code error is a protocol error: answer with 1002.
/// assert_eq!(CloseCode::from_wire(1005), Err(InvalidCloseFrame::ReservedCode(1005)));
/// assert_eq!(CloseCode::from_wire(999), Err(InvalidCloseFrame::CodeOutOfRange(999)));
/// assert_eq!(CloseCode::application(1000), Err(InvalidCloseFrame::NotApplicationCode(1000)));
/// let long = "x".repeat(CloseFrame::MAX_REASON_BYTES + 1);
/// let err = CloseFrame::new(CloseCode::NORMAL, long).unwrap_err();
/// assert_eq!(err, InvalidCloseFrame::ReasonTooLong { len: 124 });
/// assert_eq!(err.to_string(), "close reason is 124 bytes; at most 123 fit in a Close frame");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCloseFrame {
    /// 1004, 1005, 1006 and 1015 never appear on the wire. A peer that sends one broke
    /// the protocol (answer with 1002); locally, use a sendable code such as 1000 or 1011.
    #[error(
        "close code {0} is reserved and never sent on the wire; use a sendable code (1000-1003, 1007-1014, 3000-4999)"
    )]
    ReservedCode(u16),
    /// Outside every defined range. From a peer: answer with 1002.
    #[error(
        "close code {0} is outside the ranges RFC 6455 allows (1000-1003, 1007-1014, 3000-4999)"
    )]
    CodeOutOfRange(u16),
    /// [`CloseCode::application`] was given a code outside 4000–4999.
    #[error("close code {0} is not in the application range 4000-4999")]
    NotApplicationCode(u16),
    /// The reason does not fit in a control frame; shorten it.
    #[error("close reason is {len} bytes; at most 123 fit in a Close frame")]
    ReasonTooLong {
        /// The reason's length in bytes.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_u16_is_classified_without_panicking_and_wire_validity_matches_rfc() {
        for code in 0..=u16::MAX {
            let legal = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode::from_wire(code).is_ok(), legal, "code {code}");
            let _ = CloseCode(code).class();
        }
    }

    #[test]
    fn every_registered_code_has_its_documented_class() {
        use CloseClass::*;
        let expected = [
            (1000, Normal),
            (1001, Retryable),
            (1002, Terminal),
            (1003, Terminal),
            (1005, Terminal),
            (1006, Retryable),
            (1007, Terminal),
            (1008, Terminal),
            (1009, Terminal),
            (1010, Terminal),
            (1011, Retryable),
            (1012, Retryable),
            (1013, Retryable),
            (1014, Retryable),
            (1015, Terminal),
            (3000, Application),
            (4999, Application),
            (999, Terminal),
            (5000, Terminal),
        ];
        for (code, class) in expected {
            assert_eq!(CloseCode(code).class(), class, "code {code}");
        }
    }

    #[test]
    fn frames_report_the_precise_reason_for_a_bad_code() {
        assert_eq!(
            CloseFrame::new(CloseCode(0), ""),
            Err(InvalidCloseFrame::CodeOutOfRange(0))
        );
        assert_eq!(
            CloseFrame::new(CloseCode::NO_STATUS, ""),
            Err(InvalidCloseFrame::ReservedCode(1005))
        );
    }

    #[test]
    fn frames_refuse_reserved_codes_and_long_reasons() {
        assert_eq!(
            CloseFrame::new(CloseCode::ABNORMAL, ""),
            Err(InvalidCloseFrame::ReservedCode(1006))
        );
        assert!(CloseFrame::new(CloseCode::NORMAL, "x".repeat(123)).is_ok());
        assert_eq!(
            CloseFrame::new(CloseCode::NORMAL, "x".repeat(124)),
            Err(InvalidCloseFrame::ReasonTooLong { len: 124 })
        );
    }
}
