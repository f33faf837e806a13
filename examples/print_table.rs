//! Prints the transition table read off the machine, one row per (state, input).
//!
//! `cargo run --example print_table`
use ws_lifecycle::core::{Outcome, transition_table};

fn main() {
    for row in transition_table() {
        let outcome = match row.outcome {
            Outcome::Transition(to) => format!("-> {to}"),
            Outcome::Unchanged => "unchanged".to_owned(),
            Outcome::Rejected(reason) => format!("rejected {reason:?}"),
        };
        println!("{:<20} {:<19} {}", row.state, row.input, outcome);
    }
}
