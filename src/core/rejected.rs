//! [`Rejected`]: the lifecycle refused an input, and why ([`RejectReason`]).

use serde::{Deserialize, Serialize};

use super::{InputKind, MachineState};

/// Why the machine refused an input.
///
/// Serde form: the snake-case name, e.g. `"not_yet"` (**G9**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{Input, Lifecycle, RejectReason};
/// use ws_lifecycle::{Config, ConnectionId};
///
/// let mut lc = Lifecycle::new(ConnectionId::new(1), Config::default());
/// let rejected = lc.handle(Input::ServicesReady, Instant::now()).unwrap_err(); // before accept
/// assert_eq!(rejected.reason, RejectReason::NotYet);
/// assert_eq!(rejected.reason.advice(), "too early: perform the missing lifecycle step first");
/// assert_eq!(serde_json::to_string(&RejectReason::NotYet)?, r#""not_yet""#); // G9
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// The input comes too early (authentication before accept, ready before
    /// authentication): perform the missing step first.
    NotYet,
    /// That step already happened (a second accept or ready); nothing to do.
    AlreadyDone,
    /// Peer frames cannot arrive before the handshake is accepted: the driver fed an
    /// input for a connection that is not open.
    NotOpen,
    /// No Close frame of ours is owed: `CloseSent` was reported without one.
    NoCloseOwed,
    /// The connection is closing: it will not open further. Finish the close
    /// handshake and drop it.
    Closing,
    /// The connection is closed: drop it.
    Closed,
    /// No handler took the input. This is a bug in ws-lifecycle; please report it.
    Unhandled,
}

impl RejectReason {
    /// What the reason means and what to do next, in a sentence.
    pub const fn advice(self) -> &'static str {
        match self {
            RejectReason::NotYet => "too early: perform the missing lifecycle step first",
            RejectReason::AlreadyDone => "that step already happened: nothing to do",
            RejectReason::NotOpen => {
                "the handshake is not accepted, so no peer frame can arrive: the driver fed the wrong connection"
            }
            RejectReason::NoCloseOwed => {
                "no Close frame of ours is owed: do not report one as sent"
            }
            RejectReason::Closing => {
                "the connection is closing: finish the close handshake and drop it"
            }
            RejectReason::Closed => "the connection is closed: drop it",
            RejectReason::Unhandled => {
                "no handler took the input: a bug in ws-lifecycle, please report it"
            }
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.advice())
    }
}

/// The machine refused an input; nothing changed.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{Input, InputKind, Lifecycle, MachineState, RejectReason};
/// use ws_lifecycle::{Config, ConnectionId};
///
/// let now = Instant::now();
/// let mut lc = Lifecycle::new(ConnectionId::new(1), Config::default());
/// lc.handle(Input::Accept, now)?;
/// let rejected = lc.handle(Input::Accept, now).unwrap_err();
/// assert_eq!(rejected.state, MachineState::Accepted);
/// assert_eq!((rejected.input, rejected.reason), (InputKind::Accept, RejectReason::AlreadyDone));
/// assert_eq!(
///     rejected.to_string(),
///     "input accept rejected in state accepted: that step already happened: nothing to do"
/// );
/// assert_eq!(lc.state(), MachineState::Accepted); // nothing changed
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input {input} rejected in state {state}: {reason}")]
#[non_exhaustive]
pub struct Rejected {
    /// The state the input arrived in.
    pub state: MachineState,
    /// The refused input.
    pub input: InputKind,
    /// Why; its documentation says what to do next.
    pub reason: RejectReason,
}
