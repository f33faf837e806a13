//! One table, two machines: the Promela step function of the SPIN model
//! (`model/generated/step.pml`, included by `model/lifecycle.pml`) is rendered from
//! [`transition_table`], the relation the Rust machine implements, and compared with
//! the committed file. A change to the machine that is not carried into the model fails
//! here (**G2**–**G5** are checked on the model, so the model must be this machine).
//!
//! Regenerate after a deliberate change to the machine with
//! `UPDATE_MODEL=1 cargo test --test model_table`, then re-run `model/traces.sh` and
//! `model/check.sh` (see `docs/model.md`).

use std::fmt::Write as _;

use ws_lifecycle::Phase;
use ws_lifecycle::core::{
    InputKind, MachineState, Outcome, RejectReason, TableRow, transition_table,
};

/// The committed file, relative to the crate root.
const STEP_PML: &str = "model/generated/step.pml";

/// Every reject reason the model can name, in the order of their Promela numbers
/// (0 is "no reason"). A reason the table uses that is missing here fails the test.
const REASONS: [RejectReason; 7] = [
    RejectReason::NotYet,
    RejectReason::AlreadyDone,
    RejectReason::NotOpen,
    RejectReason::NoCloseOwed,
    RejectReason::Closing,
    RejectReason::Closed,
    RejectReason::Unhandled,
];

/// `awaiting_peer_close` → `AWAITING_PEER_CLOSE`.
fn upper(name: &str) -> String {
    name.to_ascii_uppercase()
}

/// The serde name of a reject reason, e.g. `not_yet`.
fn reason_name(reason: RejectReason) -> String {
    serde_json::to_value(reason)
        .expect("RejectReason serializes")
        .as_str()
        .expect("RejectReason serializes to a string")
        .to_owned()
}

/// The Rust path of a state, input or phase, for the pinning comments.
fn debug_name<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

/// The Promela `#define` name of a reject reason.
fn reason_macro(reason: RejectReason) -> String {
    format!("R_{}", upper(&reason_name(reason)))
}

/// Renders `model/generated/step.pml` from the table.
fn render(rows: &[TableRow]) -> String {
    let transitions = rows
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Transition(_)))
        .count();
    let mut out = String::new();
    out.push_str(
        "/* Generated from ws_lifecycle::core::transition_table() by tests/model_table.rs: do not edit.\n",
    );
    out.push_str(" * Regenerate with `UPDATE_MODEL=1 cargo test --test model_table`.\n");
    writeln!(
        out,
        " * {} states x {} inputs = {} cells, {} of them transitions.",
        MachineState::ALL.len(),
        InputKind::ALL.len(),
        rows.len(),
        transitions
    )
    .unwrap();
    out.push_str(" * The numbering below is pinned: state n is MachineState::ALL[n], input n is\n");
    out.push_str(" * InputKind::ALL[n]; tests/model_traces.rs reads the same names. */\n\n");

    out.push_str(
        "/* Machine states (ws_lifecycle::core::MachineState), in MachineState::ALL order. */\n",
    );
    for (n, state) in MachineState::ALL.into_iter().enumerate() {
        writeln!(
            out,
            "#define S_{:<20} {n}  /* MachineState::{} = \"{}\", phase {} */",
            upper(state.as_str()),
            debug_name(state),
            state.as_str(),
            state.phase()
        )
        .unwrap();
    }
    writeln!(out, "#define N_STATES {}\n", MachineState::ALL.len()).unwrap();

    out.push_str("/* Inputs (ws_lifecycle::core::InputKind), in InputKind::ALL order. */\n");
    for (n, input) in InputKind::ALL.into_iter().enumerate() {
        writeln!(
            out,
            "#define I_{:<20} {n}  /* InputKind::{} = \"{}\" */",
            upper(input.as_str()),
            debug_name(input),
            input.as_str()
        )
        .unwrap();
    }
    writeln!(out, "#define N_INPUTS {}\n", InputKind::ALL.len()).unwrap();

    out.push_str(
        "/* Outcomes (ws_lifecycle::core::Outcome) and reject reasons (RejectReason). */\n",
    );
    out.push_str("#define O_TRANSITION 0  /* Outcome::Transition */\n");
    out.push_str("#define O_UNCHANGED  1  /* Outcome::Unchanged */\n");
    out.push_str("#define O_REJECTED   2  /* Outcome::Rejected */\n");
    out.push_str("#define R_NONE 0\n");
    for (n, reason) in REASONS.into_iter().enumerate() {
        writeln!(
            out,
            "#define {:<16} {}  /* RejectReason::{} = \"{}\" */",
            reason_macro(reason),
            n + 1,
            debug_name(reason),
            reason_name(reason)
        )
        .unwrap();
    }
    out.push('\n');

    out.push_str(
        "/* Phases (ws_lifecycle::Phase codes); IN_P_x(s): MachineState::phase() of s is x. */\n",
    );
    for phase in Phase::ALL {
        writeln!(
            out,
            "#define P_{:<14} {}  /* Phase::{} */",
            upper(phase.as_str()),
            phase.code(),
            debug_name(phase)
        )
        .unwrap();
    }
    for phase in Phase::ALL {
        let states: Vec<String> = MachineState::ALL
            .into_iter()
            .filter(|s| s.phase() == phase)
            .map(|s| format!("(s) == S_{}", upper(s.as_str())))
            .collect();
        writeln!(
            out,
            "#define IN_P_{}(s) ({})",
            upper(phase.as_str()),
            states.join(" || ")
        )
        .unwrap();
    }
    out.push('\n');

    out.push_str("/* The transition relation: (state s, input i) -> outcome. Updates s on a\n");
    out.push_str(
        " * transition; sets outcome (O_*) and reason (R_*, R_NONE unless rejected). */\n",
    );
    out.push_str("inline step(s, i, outcome, reason) {\n    if\n");
    for state in MachineState::ALL {
        writeln!(out, "    :: s == S_{} ->", upper(state.as_str())).unwrap();
        out.push_str("        if\n");
        for row in rows.iter().filter(|r| r.state == state) {
            let action = match row.outcome {
                Outcome::Transition(to) => format!(
                    "s = S_{}; outcome = O_TRANSITION; reason = R_NONE",
                    upper(to.as_str())
                ),
                Outcome::Unchanged => "outcome = O_UNCHANGED; reason = R_NONE".to_owned(),
                Outcome::Rejected(reason) => {
                    format!("outcome = O_REJECTED; reason = {}", reason_macro(reason))
                }
            };
            writeln!(
                out,
                "        :: i == I_{:<20} -> {action}",
                upper(row.input.as_str())
            )
            .unwrap();
        }
        out.push_str("        fi\n");
    }
    out.push_str("    fi\n}\n\n");

    out.push_str("/* Names, for the witness traces (printf; silent during verification). */\n");
    render_names(
        &mut out,
        "print_state",
        MachineState::ALL.iter().map(|s| ("S_", s.as_str())),
    );
    render_names(
        &mut out,
        "print_input",
        InputKind::ALL.iter().map(|i| ("I_", i.as_str())),
    );
    let reasons: Vec<String> = REASONS.into_iter().map(reason_name).collect();
    render_names(
        &mut out,
        "print_reason",
        reasons.iter().map(|r| ("R_", r.as_str())),
    );
    out
}

/// An `inline` that prints the name of the value `x` (a `#define`d constant).
fn render_names<'a>(
    out: &mut String,
    name: &str,
    names: impl Iterator<Item = (&'static str, &'a str)>,
) {
    writeln!(out, "inline {name}(x) {{\n    if").unwrap();
    for (prefix, n) in names {
        writeln!(out, "    :: x == {prefix}{} -> printf(\"{n}\")", upper(n)).unwrap();
    }
    out.push_str("    fi\n}\n");
}

/// The committed step function is the one the table renders to now; when it is not,
/// the model checks a different machine from the code (**G2**–**G5**).
#[test]
fn committed_promela_step_function_is_the_rust_table_g2_g3_g4_g5() {
    let rows = transition_table();
    for row in &rows {
        if let Outcome::Rejected(reason) = row.outcome {
            assert!(
                REASONS.contains(&reason),
                "{} × {} is rejected with {reason:?}, which tests/model_table.rs::REASONS \
                 does not number: add it there and regenerate",
                row.state,
                row.input
            );
        }
    }
    let rendered = render(&rows);
    let full = format!("{}/{STEP_PML}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_MODEL").is_some() {
        std::fs::write(&full, &rendered).unwrap_or_else(|e| panic!("writing {full}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&full).unwrap_or_default();
    if committed != rendered {
        let first = committed
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(rendered.lines().count()));
        panic!(
            "{STEP_PML} is not the Rust transition table any more (first difference at line \
             {}):\n  committed: {:?}\n  from table: {:?}\nThe SPIN model would check a \
             different machine from the code. Run `UPDATE_MODEL=1 cargo test --test \
             model_table`, then `model/traces.sh` and `model/check.sh`, and commit the results.",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            rendered.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

/// The generated file names every state and input once, with its Rust name, so the
/// numbering the traces and the model share cannot shift silently.
#[test]
fn generated_numbering_pins_every_state_and_input() {
    let rendered = render(&transition_table());
    for (n, state) in MachineState::ALL.into_iter().enumerate() {
        let line = format!("#define S_{:<20} {n}", upper(state.as_str()));
        assert_eq!(rendered.matches(&line).count(), 1, "{line}");
    }
    for (n, input) in InputKind::ALL.into_iter().enumerate() {
        let line = format!("#define I_{:<20} {n}", upper(input.as_str()));
        assert_eq!(rendered.matches(&line).count(), 1, "{line}");
    }
    // Every cell appears exactly once in the step function.
    let cells = rendered
        .lines()
        .filter(|l| l.contains(":: i == I_"))
        .count();
    assert_eq!(cells, MachineState::ALL.len() * InputKind::ALL.len());
}
