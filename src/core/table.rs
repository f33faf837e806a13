//! The transition table, read off the machine: every (state, input) pair and its
//! outcome. Tests compare it with a written expectation, the state diagram
//! ([`docs/state-diagram.md`]) is generated from it, and so is the step relation of
//! the formal model that SPIN checks ([`docs/model.md`]).
//!
//! [`docs/state-diagram.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/state-diagram.md
//! [`docs/model.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/model.md

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
///
/// ```
/// use ws_lifecycle::core::{InputKind, MachineState, Outcome, RejectReason, transition_table};
/// use MachineState::*;
///
/// let table = transition_table();
/// let outcome = |state, input| {
///     table.iter().find(|row| (row.state, row.input) == (state, input)).unwrap().outcome
/// };
/// assert_eq!(outcome(Authenticated, InputKind::ServicesReady), Outcome::Transition(Ready));
/// assert_eq!(outcome(Ready, InputKind::AuthSucceeded), Outcome::Unchanged); // re-authentication
/// let too_early = Outcome::Rejected(RejectReason::NotYet);
/// assert_eq!(outcome(Connecting, InputKind::ServicesReady), too_early);
/// assert_eq!(serde_json::to_string(&Outcome::Transition(Ready))?, r#"{"transition":"ready"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// ```
/// use ws_lifecycle::core::{InputKind, MachineState, Outcome, TableRow, transition_table};
///
/// // An expected row, written by hand and checked against the machine:
/// let row = TableRow::new(
///     MachineState::ReplyingClose,
///     InputKind::CloseSent, // our answer to the peer's Close is out
///     Outcome::Transition(MachineState::Closed),
/// );
/// assert!(transition_table().contains(&row));
/// let json = serde_json::to_value(row)?; // G9
/// assert_eq!(json, serde_json::json!({
///     "state": "replying_close", "input": "close_sent", "outcome": {"transition": "closed"}
/// }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
