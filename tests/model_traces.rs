//! Witness traces from the SPIN model, replayed against the code (**G2**–**G5**).
//!
//! `model/traces.sh` asks SPIN, for every cell of the transition table the model
//! takes, for the shortest run of `model/lifecycle.pml` that takes it (plus a few
//! scenarios in `model/scenarios.txt`), and commits each run under `model/traces/`.
//! This test replays every trace step by step against the real implementation: the
//! owner's steps on the type-state [`Connection`], the handles' on [`Emitter`]s and
//! [`Sender`]s, the driver's and the timers' on the [`Transport`], on virtual time.
//! After every step it asserts the machine state and phase the model reached, the
//! outcome of the input, the frame the driver wrote (message or Close, with its
//! code) and the messages handed back; and it feeds the same inputs to a bare
//! [`Lifecycle`] alongside, which must give the same outcomes and close record.
//!
//! Trace format (one step per line; `#` lines are comments):
//! `actor verb [operands] => result state`, e.g. `owner accept => transition
//! accepted`, `h1 send h1.0 => pending accepted`, `driver data h1.0 => written
//! ready`, `driver close_sent h1 => transition awaiting_peer_close`,
//! `driver take_unsent h1.0 => returned closed`. See `docs/model.md`.
//!
//! Regenerate after a change to the model or the table with `model/traces.sh`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ws_lifecycle::core::{
    CloseCause, CloseEnd, Input, InputKind, Lifecycle, MachineState, Outcome, RejectReason,
    SendErrorKind, Step, TransportLoss, transition_table,
};
use ws_lifecycle::{
    Accepted, Authenticated, CloseCode, CloseFrame, Closing, Config, Connecting, Connection,
    ConnectionId, Emitter, Frame, Message, Ready, Sender, Transport,
};

/// The traces' directory, relative to the crate root.
const TRACES: &str = "model/traces";

/// Transitions of the table that the model does not take, each with the reason. A
/// transition missing from the traces and from this list fails the coverage test.
const NOT_IN_MODEL: &[(MachineState, InputKind, &str)] = &[(
    MachineState::Authenticated,
    InputKind::AuthFailed,
    "the type-state API has no call for it (Connection<Authenticated> cannot be \
     rejected; only Lifecycle::handle can feed it); tests/table.rs checks the cell",
)];

/// The readiness timeout of the replayed connection.
const READINESS: Duration = Duration::from_secs(100);
/// The close-handshake timeout of the replayed connection.
const CLOSE: Duration = Duration::from_secs(10);

/// The configuration the model's bounds stand for: outbox and pre-ready buffer of 2.
fn config() -> Config {
    let mut config = Config::default();
    config.readiness_timeout = READINESS;
    config.close_timeout = CLOSE;
    config.outbox_capacity = 2;
    config.pending_capacity = 2;
    config
}

/// The Close frame each closing actor uses, and the one the peer sends.
fn close_frame(actor: &str) -> CloseFrame {
    let code = match actor {
        "owner" => return CloseFrame::normal(),
        "h1" => 4001,
        "h2" => 4002,
        "peer" => 4100,
        other => panic!("no close frame for actor {other}"),
    };
    CloseFrame::new(CloseCode::application(code).expect("application code"), "")
        .expect("valid frame")
}

/// The code our Close carries for a close cause as the model names it.
fn expected_close_code(cause: &str) -> CloseCode {
    match cause {
        "owner" | "h1" | "h2" | "peer" => close_frame(cause).code(),
        "auth_failed" | "readiness_deadline" | "credential_expired" => CloseCode::POLICY_VIOLATION,
        other => panic!("our Close is never sent for cause {other}"),
    }
}

/// The serde name of a reject reason, as the model prints it.
fn reason_name(reason: RejectReason) -> String {
    serde_json::to_value(reason)
        .expect("RejectReason serializes")
        .as_str()
        .expect("a string")
        .to_owned()
}

/// A state by its serde name.
fn state_named(name: &str) -> MachineState {
    MachineState::ALL
        .into_iter()
        .find(|s| s.as_str() == name)
        .unwrap_or_else(|| panic!("unknown state {name:?}"))
}

/// An input kind by its serde name.
fn input_named(name: &str) -> Option<InputKind> {
    InputKind::ALL.into_iter().find(|i| i.as_str() == name)
}

/// The result of an input as the model prints it.
fn result_of(result: &Result<Step, ws_lifecycle::core::Rejected>) -> String {
    match result {
        Ok(step) if step.changed() => "transition".to_owned(),
        Ok(_) => "unchanged".to_owned(),
        Err(rejected) => format!("rejected:{}", reason_name(rejected.reason)),
    }
}

/// One step of a trace.
#[derive(Debug, Clone)]
struct TraceStep {
    /// The line number in the file, for messages.
    line: usize,
    /// `owner`, `h1`, `h2`, `driver` or `timer`.
    actor: String,
    /// An input name, or `send`, `data`, `take_unsent`.
    verb: String,
    /// Message names, a close cause, or the credential's kind.
    operands: Vec<String>,
    /// `transition`, `unchanged`, `rejected:<reason>`, or a send/write result.
    result: String,
    /// The machine state after the step.
    state: MachineState,
}

/// Parses a trace file.
fn parse(text: &str) -> Result<Vec<TraceStep>, String> {
    let mut steps = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (left, right) = line
            .split_once(" => ")
            .ok_or_else(|| format!("line {}: no ` => ` in {line:?}", n + 1))?;
        let mut words = left.split_whitespace().map(str::to_owned);
        let actor = words
            .next()
            .ok_or_else(|| format!("line {}: empty", n + 1))?;
        let verb = words
            .next()
            .ok_or_else(|| format!("line {}: no verb", n + 1))?;
        let operands = words.collect();
        let (result, state) = right
            .split_once(' ')
            .ok_or_else(|| format!("line {}: no state after the result", n + 1))?;
        let state = MachineState::ALL
            .into_iter()
            .find(|s| s.as_str() == state.trim())
            .ok_or_else(|| format!("line {}: unknown state {state:?}", n + 1))?;
        steps.push(TraceStep {
            line: n + 1,
            actor,
            verb,
            operands,
            result: result.to_owned(),
            state,
        });
    }
    Ok(steps)
}

/// The owner's type-state handle, in whichever state it is.
enum Owner {
    Connecting(Connection<Connecting>),
    Accepted(Connection<Accepted>),
    Authenticated(Connection<Authenticated>),
    Ready(Connection<Ready>),
    Closing(Connection<Closing>),
    /// Between two states (only inside a step).
    Moving,
}

impl Owner {
    /// The connection's machine state, through the owner's handle.
    fn state(&self) -> Result<MachineState, String> {
        Ok(match self {
            Owner::Connecting(c) => c.state(),
            Owner::Accepted(c) => c.state(),
            Owner::Authenticated(c) => c.state(),
            Owner::Ready(c) => c.state(),
            Owner::Closing(c) => c.state(),
            Owner::Moving => return Err("the owner's handle was lost in a step".into()),
        })
    }
}

/// A replay in progress: the real connection with its handles, and a bare lifecycle
/// fed the same inputs.
struct Replay {
    now: Instant,
    owner: Owner,
    transport: Transport,
    emitters: Vec<Emitter>,
    senders: Vec<Sender>,
    shadow: Lifecycle,
}

/// The index of a handle actor (`h1` → 0).
fn handle_index(actor: &str) -> Result<usize, String> {
    match actor {
        "h1" => Ok(0),
        "h2" => Ok(1),
        other => Err(format!("{other} is not a handle")),
    }
}

impl Replay {
    fn new() -> Replay {
        let now = Instant::now();
        let conn = Connection::new(ConnectionId::new(6), config());
        Replay {
            now,
            transport: conn.transport(),
            owner: Owner::Connecting(conn),
            emitters: Vec::new(),
            senders: Vec::new(),
            shadow: Lifecycle::new(ConnectionId::new(6), config()),
        }
    }

    /// Feeds `input` to the bare lifecycle and checks its outcome against the trace.
    fn shadow(&mut self, input: Input, expected: &str) -> Result<(), String> {
        let got = result_of(&self.shadow.handle(input, self.now));
        check("Lifecycle::handle", &got, expected)
    }

    /// An owner step on the type-state API. `Err(Gone)` must match a rejection.
    fn owner(&mut self, step: &TraceStep, rest: &[TraceStep]) -> Result<(), String> {
        let now = self.now;
        let owner = std::mem::replace(&mut self.owner, Owner::Moving);
        // (typed call made, it succeeded)
        let (next, ok) = match (step.verb.as_str(), owner) {
            ("accept", Owner::Connecting(c)) => match c.accept(now) {
                Ok(a) => {
                    self.emitters = vec![a.emitter(), a.emitter()];
                    (Owner::Accepted(a), true)
                }
                Err(gone) => (Owner::Closing(gone.into_connection()), false),
            },
            ("auth_succeeded", Owner::Accepted(a)) => {
                match a.authenticate(self.expiry(step, rest)?, now) {
                    Ok(a) => (Owner::Authenticated(a), true),
                    Err(gone) => (Owner::Closing(gone.into_connection()), false),
                }
            }
            ("auth_succeeded", Owner::Ready(mut r)) => {
                let ok = r.reauthenticate(self.expiry(step, rest)?, now).is_ok();
                (Owner::Ready(r), ok)
            }
            ("auth_failed", Owner::Accepted(a)) => (Owner::Closing(a.reject(now)), true),
            ("auth_failed", Owner::Ready(r)) => {
                (Owner::Closing(r.reauthentication_failed(now)), true)
            }
            ("services_ready", Owner::Authenticated(a)) => match a.ready(now) {
                Ok(r) => {
                    self.senders = vec![r.sender(), r.sender()];
                    (Owner::Ready(r), true)
                }
                Err(gone) => (Owner::Closing(gone.into_connection()), false),
            },
            ("close", owner) => {
                let frame = close_frame("owner");
                let closing = match owner {
                    Owner::Connecting(c) => c.close(frame, now),
                    Owner::Accepted(c) => c.close(frame, now),
                    Owner::Authenticated(c) => c.close(frame, now),
                    Owner::Ready(c) => c.close(frame, now),
                    _ => return Err("owner close without a live handle".into()),
                };
                (Owner::Closing(closing), true)
            }
            (verb, _) => {
                return Err(format!(
                    "the owner has no typed call for {verb} in its type state"
                ));
            }
        };
        self.owner = next;
        // A refused typed transition (Gone) is a rejection in the model, and only then.
        if ok == step.result.starts_with("rejected") {
            return Err(format!(
                "typed call {} {}, the model says {}",
                step.verb,
                if ok {
                    "succeeded"
                } else {
                    "was refused (Gone)"
                },
                step.result
            ));
        }
        let input = match step.verb.as_str() {
            "accept" => Input::Accept,
            "auth_succeeded" => Input::AuthSucceeded {
                expires_at: self.expiry(step, rest)?,
            },
            "auth_failed" => Input::AuthFailed,
            "services_ready" => Input::ServicesReady,
            _ => Input::Close(close_frame("owner")),
        };
        self.shadow(input, &step.result)
    }

    /// The credential's expiry for an `auth_succeeded` step: `lasting` has none; an
    /// expiring one lapses before the readiness deadline when the trace's next
    /// deadline is its expiry, after it otherwise (time is abstract in the model).
    fn expiry(&self, step: &TraceStep, rest: &[TraceStep]) -> Result<Option<Instant>, String> {
        match step.operands.first().map(String::as_str) {
            Some("lasting") => Ok(None),
            Some("expiring") => {
                let next_deadline = rest.iter().find(|s| {
                    s.actor == "timer"
                        && (s.verb == "readiness_deadline" || s.verb == "credential_expired")
                });
                Ok(Some(match next_deadline {
                    Some(s) if s.verb == "credential_expired" => self.now + READINESS / 100,
                    _ => self.now + READINESS * 10,
                }))
            }
            other => Err(format!("auth_succeeded with {other:?}")),
        }
    }

    /// A handle's step: `send` (Emitter::emit before Ready, Sender::send after) or
    /// `close` (Sender::close).
    fn handle(&mut self, step: &TraceStep) -> Result<(), String> {
        let h = handle_index(&step.actor)?;
        match step.verb.as_str() {
            "send" => {
                let name = step.operands.first().ok_or("send without a message")?;
                let message = Message::text(name.as_str());
                let sent = match self.senders.get(h) {
                    Some(sender) => sender.send(message.clone()),
                    None => self
                        .emitters
                        .get(h)
                        .ok_or("send before the handle has an Emitter")?
                        .emit(message.clone()),
                };
                let got = match sent {
                    Ok(()) if self.senders.is_empty() => "pending",
                    Ok(()) => "queued",
                    Err(e) if e.message != message => {
                        return Err(format!("send handed back {:?}, not {name}", e.message));
                    }
                    Err(e) if e.kind == SendErrorKind::Full => "full",
                    Err(e) if e.kind == SendErrorKind::Closed => "closed",
                    Err(e) => return Err(format!("send failed with {:?}", e.kind)),
                };
                check("send", got, &step.result)
            }
            "close" => {
                let frame = close_frame(&step.actor);
                let before = self.transport.close_record();
                let sender = self.senders.get(h).ok_or("close before a Sender exists")?;
                let record = sender.close_at(frame.clone(), self.now);
                if record != self.transport.close_record() {
                    return Err(
                        "Sender::close returned a record other than the connection's".into(),
                    );
                }
                let changed = before.is_none() && record.is_some();
                if changed != (step.result == "transition") {
                    return Err(format!(
                        "Sender::close {} the connection, the model says {}",
                        if changed { "closed" } else { "did not change" },
                        step.result
                    ));
                }
                self.shadow(Input::Close(frame), &step.result)
            }
            verb => Err(format!("handles do not {verb}")),
        }
    }

    /// A deadline fires: virtual time jumps to the connection's next deadline.
    fn timer(&mut self, step: &TraceStep) -> Result<(), String> {
        let at = self
            .transport
            .poll_timeout()
            .ok_or("a timer fires, but no deadline is armed")?;
        self.now = self.now.max(at);
        let fired = self.transport.handle_timeout(self.now);
        let got = match fired {
            Some(step) if step.changed() => "transition",
            Some(_) => "unchanged",
            None => "nothing fired",
        };
        check("handle_timeout", got, &step.result)?;
        let record = self.transport.close_record().ok_or("no close record")?;
        let (input, fits) = match step.verb.as_str() {
            "readiness_deadline" => (
                Input::ReadinessDeadline,
                record.cause == CloseCause::ReadinessDeadline,
            ),
            "credential_expired" => (
                Input::CredentialExpired,
                record.cause == CloseCause::CredentialExpired,
            ),
            "close_timeout" => (Input::CloseTimeout, record.end == Some(CloseEnd::TimedOut)),
            verb => return Err(format!("no timer {verb}")),
        };
        if !fits {
            return Err(format!(
                "the deadline that fired was not {}: {record:?}",
                step.verb
            ));
        }
        self.shadow(input, &step.result)
    }

    /// A driver step: write the next frame, feed the peer's Close or the loss of the
    /// transport, or take back what was never written.
    fn driver(&mut self, step: &TraceStep) -> Result<(), String> {
        match step.verb.as_str() {
            "data" => {
                let name = step.operands.first().ok_or("data without a message")?;
                let frame = self.transport.next_frame(self.now);
                let expected = Frame::Message(Message::text(name.as_str()));
                if frame.as_ref() != Some(&expected) {
                    return Err(format!("next_frame gave {frame:?}, the model wrote {name}"));
                }
                Ok(())
            }
            "close_sent" => {
                let cause = step.operands.first().ok_or("close_sent without a cause")?;
                let frame = self.transport.next_frame(self.now);
                let code = match &frame {
                    Some(Frame::Close(Some(f))) => f.code(),
                    other => {
                        return Err(format!(
                            "next_frame gave {other:?}, the model wrote our Close"
                        ));
                    }
                };
                if code != expected_close_code(cause) {
                    return Err(format!(
                        "our Close carries {code:?}, the model's close cause is {cause}"
                    ));
                }
                let shadow = self.shadow.poll_transmit(self.now);
                if shadow != frame {
                    return Err(format!(
                        "Lifecycle::poll_transmit gave {shadow:?}, the connection {frame:?}"
                    ));
                }
                check("close_sent", "transition", &step.result)
            }
            "peer_close" => {
                let frame = close_frame("peer");
                let got = result_of(
                    &self
                        .transport
                        .handle_peer_close(Some(frame.clone()), self.now),
                );
                check("Transport::handle_peer_close", &got, &step.result)?;
                self.shadow(Input::PeerClose(Some(frame)), &step.result)
            }
            "transport_lost" => {
                let got = result_of(
                    &self
                        .transport
                        .handle_transport_lost(TransportLoss::Eof, self.now),
                );
                check("Transport::handle_transport_lost", &got, &step.result)?;
                self.shadow(Input::TransportLost(TransportLoss::Eof), &step.result)
            }
            "take_unsent" => {
                let got = self.transport.take_unsent();
                let expected: Vec<Message> = step
                    .operands
                    .iter()
                    .map(|m| Message::text(m.as_str()))
                    .collect();
                if got != expected {
                    return Err(format!("take_unsent gave {got:?}, the model {expected:?}"));
                }
                Ok(())
            }
            verb => Err(format!("the driver does not {verb}")),
        }
    }

    /// Applies one step and checks the state and phase the model reached, and that
    /// the connection and the bare lifecycle agree on the close record.
    fn apply(&mut self, step: &TraceStep, rest: &[TraceStep]) -> Result<(), String> {
        match step.actor.as_str() {
            "owner" => self.owner(step, rest)?,
            "h1" | "h2" => self.handle(step)?,
            "timer" => self.timer(step)?,
            "driver" => self.driver(step)?,
            other => return Err(format!("unknown actor {other}")),
        }
        let state = self.owner.state()?;
        check("machine state", state.as_str(), step.state.as_str())?;
        check(
            "phase",
            self.transport.phase().as_str(),
            step.state.phase().as_str(),
        )?;
        check(
            "bare lifecycle state",
            self.shadow.state().as_str(),
            step.state.as_str(),
        )?;
        if self.shadow.close_record().cloned() != self.transport.close_record() {
            return Err(format!(
                "close records differ: lifecycle {:?}, connection {:?}",
                self.shadow.close_record(),
                self.transport.close_record()
            ));
        }
        Ok(())
    }
}

/// `Err` with both values when they differ.
fn check(what: &str, got: &str, expected: &str) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{what}: the code gives {got}, the model {expected}"
        ))
    }
}

/// Replays a whole trace; `Err` names the first step where code and model differ.
fn replay(text: &str) -> Result<usize, String> {
    let steps = parse(text)?;
    let mut replay = Replay::new();
    for (n, step) in steps.iter().enumerate() {
        replay
            .apply(step, &steps[n + 1..])
            .map_err(|e| format!("line {} ({} {} ...): {e}", step.line, step.actor, step.verb))?;
    }
    Ok(steps.len())
}

/// One line of `model/traces/index.txt`.
struct IndexEntry {
    state: MachineState,
    input: InputKind,
    outcome: String,
    trace: Option<String>,
}

/// Reads the index: the cells, and the scenario traces.
fn read_index() -> (Vec<IndexEntry>, Vec<String>) {
    let path = format!("{}/{TRACES}/index.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut cells = Vec::new();
    let mut scenarios = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["scenario", _, file] => scenarios.push((*file).to_owned()),
            [state, input, outcome, trace] => cells.push(IndexEntry {
                state: state_named(state),
                input: input_named(input).unwrap_or_else(|| panic!("unknown input {input}")),
                outcome: (*outcome).to_owned(),
                trace: (*trace != "not-taken").then(|| (*trace).to_owned()),
            }),
            _ => panic!("{path}: malformed line {line:?}"),
        }
    }
    (cells, scenarios)
}

/// Reads one trace file.
fn read_trace(file: &str) -> String {
    let path = format!("{}/{TRACES}/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The traces are those of the current table: the index lists every cell with the
/// table's outcome, and every transition of the table has a witness trace unless
/// [`NOT_IN_MODEL`] says why the model cannot take it (**G2**–**G5**: the properties
/// SPIN checks hold for the machine the code implements).
#[test]
fn every_table_transition_has_a_witness_trace_g2_g3_g4_g5() {
    let (cells, _) = read_index();
    let table = transition_table();
    assert_eq!(
        cells.len(),
        table.len(),
        "model/traces/index.txt is stale: run model/traces.sh"
    );
    let mut missing = Vec::new();
    for (row, cell) in table.iter().zip(&cells) {
        assert_eq!(
            (row.state, row.input),
            (cell.state, cell.input),
            "model/traces/index.txt is stale: run model/traces.sh"
        );
        let outcome = match row.outcome {
            Outcome::Transition(_) => "transition".to_owned(),
            Outcome::Unchanged => "unchanged".to_owned(),
            Outcome::Rejected(reason) => format!("rejected:{}", reason_name(reason)),
        };
        assert_eq!(
            outcome, cell.outcome,
            "{} × {}: the table and the traces' index disagree; run model/traces.sh",
            row.state, row.input
        );
        let excused = NOT_IN_MODEL
            .iter()
            .any(|(s, i, _)| (*s, *i) == (row.state, row.input));
        if matches!(row.outcome, Outcome::Transition(_)) && cell.trace.is_none() && !excused {
            missing.push(format!("{} × {}", row.state, row.input));
        }
        if excused {
            assert!(
                cell.trace.is_none(),
                "{} × {} is in NOT_IN_MODEL but the model takes it now: remove it",
                row.state,
                row.input
            );
        }
    }
    assert!(
        missing.is_empty(),
        "transitions with no witness trace (the model cannot take them): {missing:?}"
    );
}

/// Every witness trace replays against the code: the connection and its handles
/// reach the model's state and phase after every step, with the model's outcomes,
/// frames and returned messages (**G2**, **G3**, **G4**, **G5**). Each cell trace
/// ends with the step its trap asked for.
#[test]
fn every_witness_trace_replays_against_the_code_g2_g3_g4_g5() {
    let (cells, scenarios) = read_index();
    let mut failures = Vec::new();
    let mut replayed = BTreeSet::new();
    for cell in &cells {
        let Some(file) = &cell.trace else { continue };
        let text = read_trace(file);
        let steps = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let last = steps.last().unwrap_or_else(|| panic!("{file} is empty"));
        let input_named_last = input_named(&last.verb);
        assert_eq!(
            input_named_last,
            Some(cell.input),
            "{file} does not end with {}",
            cell.input
        );
        if let Err(e) = replay(&text) {
            failures.push(format!("{file}: {e}"));
        }
        replayed.insert(file.clone());
    }
    for file in &scenarios {
        if let Err(e) = replay(&read_trace(file)) {
            failures.push(format!("{file}: {e}"));
        }
        replayed.insert(file.clone());
    }
    // Every committed trace is in the index (no stale files).
    let dir = format!("{}/{TRACES}", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).expect("model/traces") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".trace") {
            assert!(
                replayed.contains(name.as_ref()),
                "{name} is not in the index: run model/traces.sh"
            );
        }
    }
    assert!(replayed.len() >= 30, "only {} traces", replayed.len());
    assert!(
        failures.is_empty(),
        "{} trace(s) disagree with the code:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The replay can fail: a trace whose step claims an outcome, frame or state the
/// code does not produce is reported at that step.
#[test]
fn a_trace_the_code_does_not_follow_fails_the_replay() {
    let good = "owner accept => transition accepted\n\
                timer readiness_deadline => transition sending_close\n\
                driver close_sent readiness_deadline => transition awaiting_peer_close\n";
    assert_eq!(replay(good), Ok(3));
    for (bad, at) in [
        // wrong state after the step
        (
            good.replace("=> transition accepted", "=> transition authenticated"),
            1,
        ),
        // wrong close code (the owner's 1000 instead of 1008)
        (
            good.replace("close_sent readiness_deadline", "close_sent owner"),
            3,
        ),
        // a data frame where the code writes our Close
        (
            good.replace(
                "driver close_sent readiness_deadline => transition awaiting_peer_close",
                "driver data h1.0 => written sending_close",
            ),
            3,
        ),
        // a send that the code refuses (closing) reported as queued
        (
            good.replace(
                "driver close_sent readiness_deadline => transition awaiting_peer_close",
                "h1 send h1.0 => pending sending_close",
            ),
            3,
        ),
    ] {
        let err = replay(&bad).expect_err("the replay must fail");
        assert!(err.starts_with(&format!("line {at} ")), "{err}");
    }
}
