//! The transition table, read off the machine: every (state, input) pair and its
//! outcome. Tests compare it with a written expectation, the state diagram in `docs/`
//! is generated from it, and the formal model (`model/`, to come) is to be generated
//! from it too.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::machine::State;
use crate::{
    CloseFrame, Config, ConnectionId, Input, InputKind, Lifecycle, Phase, RejectReason,
    TransportLoss,
};

/// The machine's fine-grained state. [`Phase`] is the coarse view of it.
///
/// Serde form: the snake-case name, e.g. `"awaiting_peer_close"` (**G9**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// [`Phase::Connecting`].
    Connecting,
    /// [`Phase::Accepted`].
    Accepted,
    /// [`Phase::Authenticated`].
    Authenticated,
    /// [`Phase::Ready`].
    Ready,
    /// [`Phase::Closing`]: our Close is owed; the peer's has not arrived.
    SendingClose,
    /// [`Phase::Closing`]: our Close is out; waiting for the peer's (its
    /// acknowledgement) or the close timeout.
    AwaitingPeerClose,
    /// [`Phase::Closing`]: the peer's Close arrived; our answer is owed.
    ReplyingClose,
    /// [`Phase::Closed`].
    Closed,
}

impl MachineState {
    /// Every state, in lifecycle order.
    pub const ALL: [MachineState; 8] = [
        MachineState::Connecting,
        MachineState::Accepted,
        MachineState::Authenticated,
        MachineState::Ready,
        MachineState::SendingClose,
        MachineState::AwaitingPeerClose,
        MachineState::ReplyingClose,
        MachineState::Closed,
    ];

    /// The phase this state belongs to.
    pub const fn phase(self) -> Phase {
        match self {
            MachineState::Connecting => Phase::Connecting,
            MachineState::Accepted => Phase::Accepted,
            MachineState::Authenticated => Phase::Authenticated,
            MachineState::Ready => Phase::Ready,
            MachineState::SendingClose
            | MachineState::AwaitingPeerClose
            | MachineState::ReplyingClose => Phase::Closing,
            MachineState::Closed => Phase::Closed,
        }
    }

    /// The stable snake-case name (the serde form).
    pub const fn as_str(self) -> &'static str {
        match self {
            MachineState::Connecting => "connecting",
            MachineState::Accepted => "accepted",
            MachineState::Authenticated => "authenticated",
            MachineState::Ready => "ready",
            MachineState::SendingClose => "sending_close",
            MachineState::AwaitingPeerClose => "awaiting_peer_close",
            MachineState::ReplyingClose => "replying_close",
            MachineState::Closed => "closed",
        }
    }

    pub(crate) fn from_machine(state: &State) -> MachineState {
        match state {
            State::Connecting {} => MachineState::Connecting,
            State::Accepted {} => MachineState::Accepted,
            State::Authenticated {} => MachineState::Authenticated,
            State::Ready {} => MachineState::Ready,
            State::SendingClose {} => MachineState::SendingClose,
            State::AwaitingPeerClose {} => MachineState::AwaitingPeerClose,
            State::ReplyingClose {} => MachineState::ReplyingClose,
            State::Closed {} => MachineState::Closed,
        }
    }

    /// The shortest input path from a new connection to this state; the table is
    /// read by following it and then applying each input.
    fn path(self) -> &'static [InputKind] {
        use InputKind::*;
        match self {
            MachineState::Connecting => &[],
            MachineState::Accepted => &[Accept],
            MachineState::Authenticated => &[Accept, AuthSucceeded],
            MachineState::Ready => &[Accept, AuthSucceeded, ServicesReady],
            MachineState::SendingClose => &[Accept, Close],
            MachineState::AwaitingPeerClose => &[Accept, Close, CloseSent],
            MachineState::ReplyingClose => &[Accept, PeerClose],
            MachineState::Closed => &[TransportLost],
        }
    }
}

impl std::fmt::Display for MachineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl InputKind {
    /// A representative input of this kind (payloads chosen arbitrarily: the outcome
    /// of an input depends only on its kind and the state).
    pub fn example(self) -> Input {
        match self {
            InputKind::Accept => Input::Accept,
            InputKind::AuthSucceeded => Input::AuthSucceeded { expires_at: None },
            InputKind::AuthFailed => Input::AuthFailed,
            InputKind::ServicesReady => Input::ServicesReady,
            InputKind::Close => Input::Close(CloseFrame::normal()),
            InputKind::PeerClose => Input::PeerClose(Some(CloseFrame::normal())),
            InputKind::CloseSent => Input::CloseSent,
            InputKind::CloseTimeout => Input::CloseTimeout,
            InputKind::ReadinessDeadline => Input::ReadinessDeadline,
            InputKind::CredentialExpired => Input::CredentialExpired,
            InputKind::TransportLost => Input::TransportLost(TransportLoss::Eof),
        }
    }
}

/// The outcome of one (state, input) pair.
///
/// Serde form: `{"transition":"ready"}`, `"unchanged"`, `{"rejected":"not_yet"}` (**G9**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The machine moves to this state.
    Transition(MachineState),
    /// Handled, no change.
    Unchanged,
    /// Refused with this reason; nothing changes.
    Rejected(RejectReason),
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableRow {
    /// The state the input arrives in.
    pub state: MachineState,
    /// The input.
    pub input: InputKind,
    /// What happens.
    pub outcome: Outcome,
}

/// The complete transition table: every [`MachineState`] × [`InputKind`] pair, in
/// [`MachineState::ALL`] × [`InputKind::ALL`] order, read off the real machine.
pub fn transition_table() -> Vec<TableRow> {
    let now = Instant::now();
    let mut rows = Vec::with_capacity(MachineState::ALL.len() * InputKind::ALL.len());
    for state in MachineState::ALL {
        let mut base = Lifecycle::new(ConnectionId::new(0), Config::default());
        for kind in state.path() {
            // The paths are valid by construction; a failure shows as a wrong state below.
            let _ = base.dispatch(kind.example(), now);
        }
        debug_assert_eq!(base.state(), state, "path to {state}");
        for input in InputKind::ALL {
            let mut lc = base.fork();
            let outcome = match lc.dispatch(input.example(), now) {
                Ok(step) if step.changed() => Outcome::Transition(step.to),
                Ok(_) => Outcome::Unchanged,
                Err(rejected) => Outcome::Rejected(rejected.reason),
            };
            rows.push(TableRow {
                state,
                input,
                outcome,
            });
        }
    }
    rows
}
