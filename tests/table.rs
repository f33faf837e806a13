//! The transition table: every (state, input) pair against a written expectation, and
//! the generated docs (`docs/transitions.md`, `docs/state-diagram.md`) against the
//! machine.
//!
//! Regenerate the docs after a deliberate change to the machine with
//! `UPDATE_DOCS=1 cargo test --test table`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ws_lifecycle::core::{
    InputKind, MachineState, Outcome, RejectReason, TableRow, transition_table,
};

/// The expected table, written by hand from DESIGN.md and the state docs. One line
/// per state; one cell per input, in `InputKind::ALL` order:
///
/// accept, auth_succeeded, auth_failed, services_ready, close, peer_close, close_sent,
/// close_timeout, readiness_deadline, credential_expired, transport_lost.
///
/// A cell is a target state (transition), `=` (handled, no change) or `!reason`
/// (rejected).
const EXPECTED: &str = "
connecting          accepted    !not_yet       !not_yet       !not_yet       closed        !not_open       !not_open            =       =             =             closed
accepted            !already    authenticated  sending_close  !not_yet       sending_close replying_close  !no_close_owed       =       sending_close =             closed
authenticated       !already    =              sending_close  ready          sending_close replying_close  !no_close_owed       =       sending_close sending_close closed
ready               !already    =              sending_close  !already       sending_close replying_close  !no_close_owed       =       =             sending_close closed
sending_close       !closing    !closing       =              !closing       =             replying_close  awaiting_peer_close  closed  =             =             closed
awaiting_peer_close !closing    !closing       =              !closing       =             closed          !no_close_owed       closed  =             =             closed
replying_close      !closing    !closing       =              !closing       =             =               closed               closed  =             =             closed
closed              !closed     !closed        =              !closed        =             =               !no_close_owed       =       =             =             =
";

fn parse_state(s: &str) -> MachineState {
    *MachineState::ALL
        .iter()
        .find(|m| m.as_str() == s)
        .unwrap_or_else(|| panic!("unknown state {s}"))
}

fn parse_cell(cell: &str) -> Outcome {
    match cell {
        "=" => Outcome::Unchanged,
        "!not_yet" => Outcome::Rejected(RejectReason::NotYet),
        "!already" => Outcome::Rejected(RejectReason::AlreadyDone),
        "!not_open" => Outcome::Rejected(RejectReason::NotOpen),
        "!no_close_owed" => Outcome::Rejected(RejectReason::NoCloseOwed),
        "!closing" => Outcome::Rejected(RejectReason::Closing),
        "!closed" => Outcome::Rejected(RejectReason::Closed),
        state => Outcome::Transition(parse_state(state)),
    }
}

fn expected_rows() -> Vec<TableRow> {
    let mut rows = Vec::new();
    for line in EXPECTED.lines().filter(|l| !l.trim().is_empty()) {
        let mut cells = line.split_whitespace();
        let state = parse_state(cells.next().unwrap());
        let cells: Vec<&str> = cells.collect();
        assert_eq!(
            cells.len(),
            InputKind::ALL.len(),
            "row {state} has {} cells",
            cells.len()
        );
        for (input, cell) in InputKind::ALL.into_iter().zip(cells) {
            rows.push(TableRow::new(state, input, parse_cell(cell)));
        }
    }
    rows
}

/// Every (state, input) pair has exactly the documented outcome — including the
/// guarantee-bearing cells: nothing but accept leaves `connecting` open (G1), closes
/// in closing states change nothing (G4), a stale readiness deadline in `ready` is
/// absorbed (G5), and `ready` is reachable only through `authenticated` (G2).
#[test]
fn every_state_input_pair_has_the_documented_outcome_g1_g2_g4_g5() {
    let actual = transition_table();
    let expected = expected_rows();
    assert_eq!(actual.len(), MachineState::ALL.len() * InputKind::ALL.len());
    assert_eq!(expected.len(), actual.len());
    let mut mismatches = Vec::new();
    for (a, e) in actual.iter().zip(&expected) {
        assert_eq!((a.state, a.input), (e.state, e.input), "table order");
        if a.outcome != e.outcome {
            mismatches.push(format!(
                "{} × {}: machine {:?}, expected {:?}",
                a.state, a.input, a.outcome, e.outcome
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "transition table differs:\n{}",
        mismatches.join("\n")
    );
}

/// No pair falls through every handler unrecorded (the statig "no unhandled outcome"
/// pitfall): `Unhandled` never appears.
#[test]
fn no_pair_is_unhandled() {
    for row in transition_table() {
        assert_ne!(
            row.outcome,
            Outcome::Rejected(RejectReason::Unhandled),
            "{row:?}"
        );
    }
}

fn cell(outcome: Outcome) -> String {
    match outcome {
        Outcome::Transition(to) => format!("→ `{to}`"),
        Outcome::Unchanged => "·".to_owned(),
        Outcome::Rejected(reason) => {
            let reason = serde_json::to_value(reason).unwrap();
            format!("✗ {}", reason.as_str().unwrap())
        }
    }
}

fn edges(rows: &[TableRow]) -> BTreeMap<(MachineState, MachineState), Vec<InputKind>> {
    let mut edges: BTreeMap<(MachineState, MachineState), Vec<InputKind>> = BTreeMap::new();
    for row in rows {
        if let Outcome::Transition(to) = row.outcome {
            edges.entry((row.state, to)).or_default().push(row.input);
        }
    }
    edges
}

fn render_transitions(rows: &[TableRow]) -> String {
    let mut out = String::new();
    out.push_str("<!-- Generated from the machine by tests/table.rs; do not edit. -->\n");
    out.push_str("Every transition (state ──inputs──▶ next state):\n\n```text\n");
    for ((from, to), inputs) in edges(rows) {
        let label: Vec<&str> = inputs.iter().map(|i| i.as_str()).collect();
        writeln!(out, "{from:<20} ──{}──▶ {to}", label.join(", ")).unwrap();
    }
    out.push_str("```\n\n");
    out.push_str("Rows are states, columns inputs. `→ x`: moves to `x`; `·`: handled, no change; ");
    out.push_str("`✗ reason`: rejected, nothing changes.\n\n");
    out.push_str("| state |");
    for input in InputKind::ALL {
        write!(out, " {input} |").unwrap();
    }
    out.push_str("\n|---|");
    for _ in InputKind::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for state in MachineState::ALL {
        write!(out, "| **{state}** ({}) |", state.phase()).unwrap();
        for row in rows.iter().filter(|r| r.state == state) {
            write!(out, " {} |", cell(row.outcome)).unwrap();
        }
        out.push('\n');
    }
    out
}

fn render_diagram(rows: &[TableRow]) -> String {
    let edges = edges(rows);
    let mut out = String::new();
    out.push_str("<!-- Generated from the machine by tests/table.rs; do not edit. -->\n");
    out.push_str("# State diagram\n\n");
    out.push_str(
        "Every transition of the machine; inputs that change nothing or are rejected are in\n",
    );
    out.push_str("[transitions.md](transitions.md). Regenerate with `UPDATE_DOCS=1 cargo test --test table`.\n\n");
    out.push_str("```mermaid\nstateDiagram-v2\n    [*] --> connecting\n");
    for ((from, to), inputs) in &edges {
        let label: Vec<&str> = inputs.iter().map(|i| i.as_str()).collect();
        writeln!(out, "    {from} --> {to}: {}", label.join(", ")).unwrap();
    }
    out.push_str("    closed --> [*]\n```\n\n## Transition table\n\n");
    out.push_str(&render_transitions(rows));
    out
}

fn check_or_update(path: &str, rendered: &str) -> Option<String> {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&full, rendered).unwrap();
        return None;
    }
    let committed = std::fs::read_to_string(&full).unwrap_or_default();
    (committed != rendered).then(|| path.to_owned())
}

/// The committed state diagram and table are what the machine does now; a change to
/// the machine that is not reflected in the docs fails here.
#[test]
fn committed_state_diagram_is_current() {
    let rows = transition_table();
    let stale: Vec<String> = [
        check_or_update("docs/transitions.md", &render_transitions(&rows)),
        check_or_update("docs/state-diagram.md", &render_diagram(&rows)),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        stale.is_empty(),
        "stale generated docs: {stale:?}; run `UPDATE_DOCS=1 cargo test --test table` and commit"
    );
}
