//! The transition table, read off the machine: every (state, input) pair and its
//! outcome. Tests compare it with a written expectation, the state diagram in `docs/`
//! is generated from it, and the formal model (`model/`, to come) is to be generated
//! from it too.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::core::{
    CloseFrame, Config, ConnectionId, Input, InputKind, Lifecycle, MachineState, RejectReason,
    TransportLoss,
};

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
///
/// Deliberately exhaustive: an input is taken with a change of state, taken without
/// one, or refused — the three outcomes of `Result<Step, Rejected>`, which cannot grow.
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
#[non_exhaustive]
pub struct TableRow {
    /// The state the input arrives in.
    pub state: MachineState,
    /// The input.
    pub input: InputKind,
    /// What happens.
    pub outcome: Outcome,
}

impl TableRow {
    /// A row: `input` in `state` has `outcome` (for expected tables written by hand).
    pub const fn new(state: MachineState, input: InputKind, outcome: Outcome) -> TableRow {
        TableRow {
            state,
            input,
            outcome,
        }
    }
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
