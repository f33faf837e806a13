//! Bounded exhaustive check of the sans-IO core against the independent reference
//! model in `tests/reference/`.

mod reference;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reference::{Expected, Reference};
use ws_lifecycle::{
    CloseCode, CloseFrame, Config, ConnectionId, Frame, Input, InputKind, Lifecycle, Phase,
    SendRefused, TransportLoss,
};

/// The longest input sequence checked.
const MAX_LEN: usize = 6;

/// How far the virtual clock moves before each step.
const STEP: Duration = Duration::from_secs(1);

/// Timeouts chosen, relative to `STEP` and `MAX_LEN`, so that every deadline can
/// really become due within a sequence: the readiness deadline 3 steps after accept,
/// the close deadline 2 steps after a close starts, a credential 1 step after it was
/// granted (so it can expire before the readiness deadline, and both can be due when
/// `handle_timeout` runs).
fn config() -> Config {
    let mut config = Config::default();
    config.readiness_timeout = 3 * STEP;
    config.close_timeout = 2 * STEP;
    config
}
const CREDENTIAL_LIFETIME: Duration = STEP;

/// One step of a sequence: an input for `Lifecycle::handle`, or a call to
/// `Lifecycle::handle_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Accept,
    /// A credential that does not expire.
    AuthForever,
    /// A credential that expires `CREDENTIAL_LIFETIME` from now.
    AuthExpiring,
    AuthFailed,
    ServicesReady,
    /// `Close(1000)`.
    CloseNormal,
    /// `Close(4001 "second")`: a different frame, so "the first close wins" is visible.
    CloseApp,
    /// The peer's Close without a status code.
    PeerCloseEmpty,
    /// The peer's Close with `1001 "bye"`.
    PeerCloseGoingAway,
    CloseSent,
    CloseTimeout,
    ReadinessDeadline,
    CredentialExpired,
    TransportLost,
    /// `handle_timeout(now)`: fires whichever armed deadline is due, if any.
    HandleTimeout,
    /// `poll_transmit(now)`: yields our Close frame once, when it is owed.
    PollTransmit,
}

const ALPHABET: [Op; 16] = [
    Op::Accept,
    Op::AuthForever,
    Op::AuthExpiring,
    Op::AuthFailed,
    Op::ServicesReady,
    Op::CloseNormal,
    Op::CloseApp,
    Op::PeerCloseEmpty,
    Op::PeerCloseGoingAway,
    Op::CloseSent,
    Op::CloseTimeout,
    Op::ReadinessDeadline,
    Op::CredentialExpired,
    Op::TransportLost,
    Op::HandleTimeout,
    Op::PollTransmit,
];

impl Op {
    /// The input this op feeds at `now`; `None` for `HandleTimeout` and `PollTransmit`.
    fn input(self, now: Instant) -> Option<Input> {
        Some(match self {
            Op::Accept => Input::Accept,
            Op::AuthForever => Input::AuthSucceeded { expires_at: None },
            Op::AuthExpiring => Input::AuthSucceeded {
                expires_at: Some(now + CREDENTIAL_LIFETIME),
            },
            Op::AuthFailed => Input::AuthFailed,
            Op::ServicesReady => Input::ServicesReady,
            Op::CloseNormal => Input::Close(CloseFrame::normal()),
            Op::CloseApp => Input::Close(
                CloseFrame::new(CloseCode::application(4001).unwrap(), "second").unwrap(),
            ),
            Op::PeerCloseEmpty => Input::PeerClose(None),
            Op::PeerCloseGoingAway => {
                Input::PeerClose(Some(CloseFrame::new(CloseCode::GOING_AWAY, "bye").unwrap()))
            }
            Op::CloseSent => Input::CloseSent,
            Op::CloseTimeout => Input::CloseTimeout,
            Op::ReadinessDeadline => Input::ReadinessDeadline,
            Op::CredentialExpired => Input::CredentialExpired,
            Op::TransportLost => Input::TransportLost(TransportLoss::Eof),
            Op::HandleTimeout | Op::PollTransmit => return None,
        })
    }
}

/// A disagreement: the failing sequence and what differed.
type Checked = Result<(), String>;

struct Search {
    base: Instant,
    max_len: usize,
    path: Vec<Op>,
    sequences: u64,
    timers_fired: u64,
}

impl Search {
    fn new(base: Instant, max_len: usize) -> Search {
        Search {
            base,
            max_len,
            path: Vec::with_capacity(max_len),
            sequences: 0,
            timers_fired: 0,
        }
    }

    /// The failing sequence and what differed.
    fn fail(&self, what: &str) -> Checked {
        Err(format!(
            "implementation and reference disagree after {:?}:\n  {what}",
            self.path
        ))
    }

    /// Applies `op` at `now` to both, comparing the outcome.
    fn step(&mut self, lc: &mut Lifecycle, model: &mut Reference, op: Op, now: Instant) -> Checked {
        let before = lc.state();
        match op.input(now) {
            Some(input) => {
                let expected = model.apply(&input, now);
                let actual = match lc.handle(input.clone(), now) {
                    Ok(step) => {
                        if step.from != before {
                            return self
                                .fail(&format!("step.from {} != state {before}", step.from));
                        }
                        if step.changed() {
                            Expected::Transition(step.to)
                        } else {
                            Expected::Unchanged
                        }
                    }
                    Err(rejected) => {
                        if rejected.state != before || rejected.input != input.kind() {
                            return self
                                .fail(&format!("rejection names the wrong pair: {rejected:?}"));
                        }
                        Expected::Rejected(rejected.reason)
                    }
                };
                if actual != expected {
                    return self.fail(&format!("{input:?}: expected {expected:?}, got {actual:?}"));
                }
            }
            None if op == Op::PollTransmit => {
                let expected = model.poll_close(now);
                let actual = lc.poll_transmit(now);
                let agree = match (&expected, &actual) {
                    (None, None) => true,
                    (Some(frame), Some(Frame::Close(actual))) => {
                        reference::frame_matches(frame.as_ref(), actual.as_ref())
                    }
                    _ => false,
                };
                if !agree {
                    return self.fail(&format!(
                        "poll_transmit: expected Close {expected:?}, got {actual:?}"
                    ));
                }
            }
            None => {
                let expected = model.handle_timeout(now);
                let actual = lc.handle_timeout(now).map(|step| {
                    if step.changed() {
                        Expected::Transition(step.to)
                    } else {
                        Expected::Unchanged
                    }
                });
                if actual != expected {
                    return self.fail(&format!(
                        "handle_timeout: expected {expected:?}, got {actual:?}"
                    ));
                }
                if actual.is_some() {
                    self.timers_fired += 1;
                }
            }
        }
        Ok(())
    }

    /// Compares every observable of the lifecycle with the model.
    fn compare(&self, lc: &Lifecycle, model: &Reference) -> Checked {
        if lc.state() != model.state() {
            return self.fail(&format!(
                "state: expected {}, got {}",
                model.state(),
                lc.state()
            ));
        }
        if lc.phase() != model.phase() {
            return self.fail(&format!(
                "phase: expected {}, got {}",
                model.phase(),
                lc.phase()
            ));
        }
        let expected_send = if model.send_permitted() {
            Ok(())
        } else {
            match model.phase() {
                Phase::Closing | Phase::Closed => Err(SendRefused::Closed),
                phase => Err(SendRefused::NotReady(phase)),
            }
        };
        if lc.check_send() != expected_send {
            return self.fail(&format!(
                "check_send: expected {expected_send:?}, got {:?}",
                lc.check_send()
            ));
        }
        if let Err(problem) = model.check_record(lc.close_record()) {
            return self.fail(&format!("close record: {problem}"));
        }
        if lc.poll_timeout() != model.next_deadline() {
            return self.fail(&format!(
                "poll_timeout: expected {:?}, got {:?}",
                model.next_deadline().map(|d| d - self.base),
                lc.poll_timeout().map(|d| d - self.base)
            ));
        }
        Ok(())
    }

    /// Depth-first over every continuation of the current path. Each node clones the
    /// parent's lifecycle and model once, so the work is the number of tree nodes.
    fn explore(&mut self, lc: &Lifecycle, model: &Reference) -> Checked {
        let depth = self.path.len();
        if depth == self.max_len {
            return Ok(());
        }
        let now = self.base + STEP * (depth as u32 + 1);
        for op in ALPHABET {
            let mut lc = lc.clone();
            let mut model = model.clone();
            self.path.push(op);
            self.step(&mut lc, &mut model, op, now)?;
            self.compare(&lc, &model)?;
            self.sequences += 1;
            self.explore(&lc, &model)?;
            self.path.pop();
        }
        Ok(())
    }

    /// Runs the whole search from a new connection.
    fn run(&mut self, config: &Config) -> Checked {
        let lc = Lifecycle::new(ConnectionId::new(1), config.clone());
        let model = Reference::new(config);
        self.compare(&lc, &model)?;
        self.explore(&lc, &model)
    }
}

/// Bounded exhaustive check: every sequence of up to six inputs over an alphabet that
/// contains every [`InputKind`] (with payload variants where the payload matters) and
/// `handle_timeout`, driven on [`Lifecycle`] and on the flag-based reference model, with
/// every observable compared after every step: the outcome (transition, unchanged, or
/// the rejection reason), the machine state, the phase, the send gate, the close record
/// and the next deadline.
///
/// - **G1** (accept-first) and **G3** (close-gating): `check_send` is `Ok` only while
///   `Ready` with no close under way; a close before accept refuses the upgrade with no
///   Close frame.
/// - **G4** (single close): two different local Close frames, the peer's Close with and
///   without a code, authentication failure and the deadlines all race each other; the
///   first close's cause and frame must stand.
/// - **G5** (deadlines): the virtual clock advances one step per input, and the
///   timeouts are short enough that the readiness deadline, the credential expiry and
///   the close-handshake timeout really become due and are fired by `handle_timeout`
///   in some sequences, including ones racing the success they guard.
#[test]
fn every_input_sequence_up_to_length_6_matches_reference() {
    let kinds: BTreeSet<InputKind> = ALPHABET
        .iter()
        .filter_map(|op| op.input(Instant::now()))
        .map(|input| input.kind())
        .collect();
    assert_eq!(
        kinds,
        InputKind::ALL.into_iter().collect::<BTreeSet<_>>(),
        "the alphabet must contain every input kind"
    );

    let started = Instant::now();
    let config = config();
    let base = Instant::now();
    let mut search = Search::new(base, MAX_LEN);
    if let Err(first) = search.run(&config) {
        // Depth-first finds *a* failing sequence; report a shortest one as well.
        let shortest = (1..=MAX_LEN)
            .find_map(|len| Search::new(base, len).run(&config).err())
            .unwrap_or_default();
        panic!("{shortest}\n(first found depth-first: {first})");
    }

    let expected: u64 = (1..=MAX_LEN as u32)
        .map(|len| (ALPHABET.len() as u64).pow(len))
        .sum();
    assert_eq!(search.sequences, expected);
    assert!(
        search.timers_fired > 0,
        "no deadline ever became due: the virtual clock is too slow"
    );
    println!(
        "checked {} input sequences of length 1..={MAX_LEN} over {} ops \
         ({} of length {MAX_LEN}); handle_timeout fired a deadline {} times; {:.1?}",
        search.sequences,
        ALPHABET.len(),
        (ALPHABET.len() as u64).pow(MAX_LEN as u32),
        search.timers_fired,
        started.elapsed()
    );
}

/// **G5**, the documented rule of `Lifecycle::handle_timeout`: "fires the earliest
/// deadline that is due". While `Authenticated`, a credential that expired before the
/// readiness deadline must win when a late `handle_timeout` finds both due.
/// (Found by the reference model: an earlier version used a fixed priority and
/// reported `ReadinessDeadline` here.)
#[test]
fn handle_timeout_fires_the_earliest_due_deadline() {
    let config = config();
    let mut lc = Lifecycle::new(ConnectionId::new(1), config.clone());
    let mut model = Reference::new(&config);
    let mut search = Search::new(Instant::now(), 3);
    // Accept at 1 s (readiness deadline 4 s), a credential at 2 s that expires at 3 s,
    // and a driver that only calls handle_timeout at 4 s, when both are due.
    for (secs, op) in [
        (1, Op::Accept),
        (2, Op::AuthExpiring),
        (4, Op::HandleTimeout),
    ] {
        search.path.push(op);
        let now = search.base + STEP * secs;
        let checked = search
            .step(&mut lc, &mut model, op, now)
            .and_then(|()| search.compare(&lc, &model));
        if let Err(disagreement) = checked {
            panic!("{disagreement}");
        }
    }
}
