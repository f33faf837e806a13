//! [`Phase`]: the coarse, public lifecycle phase other tasks observe.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

crate::core::names::named! {
    /// The phase of a connection, as other tasks and operators see it.
    ///
    /// `Phase` is the coarse view of the lifecycle: the machine's finer states (see
    /// [`MachineState`](crate::core::MachineState)) map onto it, the three closing sub-states
    /// all reading as [`Phase::Closing`].
    ///
    /// Two forms are stable and covered by snapshot tests (**G9 wire stability**): the
    /// numeric code ([`Phase::code`], the `#[repr(u8)]` discriminant, suitable for an
    /// atomic state word) and the serde form (the lower-case name, `"ready"`). Neither
    /// changes without a visible diff in `tests/snapshots/`.
    ///
    /// ```
    /// use ws_lifecycle::Phase;
    ///
    /// assert_eq!(Phase::Ready.code(), 3);
    /// assert_eq!(Phase::from_code(3), Some(Phase::Ready));
    /// assert_eq!(Phase::Ready.to_string(), "ready");
    /// assert_eq!("closing".parse::<Phase>(), Ok(Phase::Closing));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[repr(u8)]
    pub enum Phase {
        /// The upgrade request arrived; the WebSocket handshake is not accepted yet.
        /// Nothing may be sent (**G1**).
        Connecting = 0 => "connecting",
        /// The handshake is accepted; the peer is not authenticated yet.
        Accepted = 1 => "accepted",
        /// The peer is authenticated; the application's services are not ready yet.
        Authenticated = 2 => "authenticated",
        /// Application messages flow in both directions.
        Ready = 3 => "ready",
        /// A close was requested or received; the close handshake is under way.
        Closing = 4 => "closing",
        /// Terminal: the transport is done.
        Closed = 5 => "closed",
    }
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 6] = [
        Phase::Connecting,
        Phase::Accepted,
        Phase::Authenticated,
        Phase::Ready,
        Phase::Closing,
        Phase::Closed,
    ];

    /// The stable numeric code of this phase (its `#[repr(u8)]` discriminant).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The phase with numeric code `code`, or `None` for an unknown code.
    pub const fn from_code(code: u8) -> Option<Phase> {
        match code {
            0 => Some(Phase::Connecting),
            1 => Some(Phase::Accepted),
            2 => Some(Phase::Authenticated),
            3 => Some(Phase::Ready),
            4 => Some(Phase::Closing),
            5 => Some(Phase::Closed),
            _ => None,
        }
    }

    /// True for `Accepted`, `Authenticated` and `Ready`: the *open* superstate, where a
    /// close request, a peer Close or a transport loss is handled.
    pub const fn is_open(self) -> bool {
        matches!(self, Phase::Accepted | Phase::Authenticated | Phase::Ready)
    }

    /// True for `Closing` and `Closed`: a close was requested, received or forced, and
    /// `send` is refused from now on (**G3**).
    pub const fn is_closing_or_closed(self) -> bool {
        matches!(self, Phase::Closing | Phase::Closed)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The error returned when a string names no [`Phase`].
///
/// ```
/// use ws_lifecycle::Phase;
///
/// let err = "Ready".parse::<Phase>().unwrap_err(); // the names are lower-case
/// assert_eq!(err.input(), "Ready");
/// assert!(err.to_string().starts_with(r#"unknown phase "Ready": expected one of connecting"#));
/// assert_eq!("ready".parse::<Phase>(), Ok(Phase::Ready));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown phase {input:?}: expected one of connecting, accepted, authenticated, ready, closing, closed"
)]
pub struct UnknownPhase {
    input: String,
}

impl UnknownPhase {
    /// The string that named no phase.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl FromStr for Phase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPhase {
                input: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_none() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_code(p.code()), Some(p));
            assert_eq!(p.as_str().parse::<Phase>(), Ok(p));
        }
        assert_eq!(Phase::from_code(6), None);
        assert_eq!(Phase::from_code(u8::MAX), None);
        assert!("Ready".parse::<Phase>().is_err());
    }
}
