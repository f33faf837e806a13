//! Bounded exhaustive check of the sans-IO core against the independent reference
//! model in `tests/reference/`.

mod reference;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reference::{Expected, Reference};
use ws_lifecycle::core::{
    CloseCause, CloseEnd, Input, InputKind, Lifecycle, MachineState, RejectReason, Rejected,
    SendErrorKind, SendRefused, Step, TransportLoss,
};
use ws_lifecycle::{
    CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Message, Phase, Ready,
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
    /// `handle_timeout` fired a deadline.
    timers_fired: u64,
    /// A timer input fed through `handle` found its deadline passed and fired it.
    timer_inputs_fired: u64,
    /// A timer input fed through `handle` before its armed deadline: absorbed.
    timer_inputs_early: u64,
    /// A deadline fired before some other input fed through `handle`.
    deadlines_first: u64,
    /// A success (authentication, readiness) after its deadline, rejected.
    late_successes_lost: u64,
}

impl Search {
    fn new(base: Instant, max_len: usize) -> Search {
        Search {
            base,
            max_len,
            path: Vec::with_capacity(max_len),
            sequences: 0,
            timers_fired: 0,
            timer_inputs_fired: 0,
            timer_inputs_early: 0,
            deadlines_first: 0,
            late_successes_lost: 0,
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
                let armed = model.deadline_for(&input);
                let fired_before = model.deadlines_fired();
                let expected = model.apply(&input, now);
                let fired = model.deadlines_fired() > fired_before;
                match armed {
                    Some(Some(at)) if at > now => self.timer_inputs_early += 1,
                    Some(_) => self.timer_inputs_fired += u64::from(fired),
                    None if fired => {
                        self.deadlines_first += 1;
                        let success =
                            matches!(input, Input::AuthSucceeded { .. } | Input::ServicesReady);
                        if success && matches!(expected, Expected::Rejected { .. }) {
                            self.late_successes_lost += 1;
                        }
                    }
                    None => {}
                }
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
                        if rejected.input != input.kind() {
                            return self
                                .fail(&format!("rejection names the wrong input: {rejected:?}"));
                        }
                        Expected::Rejected {
                            state: rejected.state,
                            reason: rejected.reason,
                        }
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

    /// Depth-first over every continuation of the current path. Each node forks the
    /// parent's lifecycle and clones its model once, so the work is the number of tree
    /// nodes.
    fn explore(&mut self, lc: &Lifecycle, model: &Reference) -> Checked {
        let depth = self.path.len();
        if depth == self.max_len {
            return Ok(());
        }
        let now = self.base + STEP * (depth as u32 + 1);
        for op in ALPHABET {
            let mut lc = lc.fork();
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
///   the close-handshake timeout really become due: fired by `handle_timeout`, by
///   their own timer input, or before any other input that arrives after them
///   (including the success they guard, which then loses); and timer inputs fed
///   before their deadline are absorbed.
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
    // Every way a deadline can act (or not) really happened.
    for (count, what) in [
        (search.timers_fired, "handle_timeout fired a deadline"),
        (
            search.timer_inputs_fired,
            "a timer input fired its deadline",
        ),
        (
            search.timer_inputs_early,
            "a timer input came before its deadline",
        ),
        (
            search.deadlines_first,
            "a deadline fired before another input",
        ),
        (
            search.late_successes_lost,
            "a success after its deadline lost",
        ),
    ] {
        assert!(count > 0, "never: {what} (the virtual clock is too slow)");
    }
    println!(
        "checked {} input sequences of length 1..={MAX_LEN} over {} ops \
         ({} of length {MAX_LEN}); deadlines fired by handle_timeout {} times, by their \
         timer input {} times, before another input {} times (a late success lost {} \
         times); early timer inputs absorbed {} times; {:.1?}",
        search.sequences,
        ALPHABET.len(),
        (ALPHABET.len() as u64).pow(MAX_LEN as u32),
        search.timers_fired,
        search.timer_inputs_fired,
        search.deadlines_first,
        search.late_successes_lost,
        search.timer_inputs_early,
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

// ── targeted checks of the timing and close rules ───────────────────────────────

fn new_lifecycle(config: &Config) -> Lifecycle {
    Lifecycle::new(ConnectionId::new(1), config.clone())
}

/// A typed connection made `Ready` at `t0`, its credential expiring at `expires_at`.
fn ready_connection(
    config: &Config,
    t0: Instant,
    expires_at: Option<Instant>,
) -> Connection<Ready> {
    Connection::new(ConnectionId::new(1), config.clone())
        .accept(t0)
        .expect("accept")
        .authenticate(expires_at, t0)
        .expect("authenticate")
        .ready(t0)
        .expect("ready")
}

fn text(s: &str) -> Message {
    Message::text(s.to_owned())
}

fn close_code_of(frame: Option<Frame>) -> Option<CloseCode> {
    match frame {
        Some(Frame::Close(Some(frame))) => Some(frame.code()),
        other => panic!("expected our Close with a code, got {other:?}"),
    }
}

/// **G5**: a success that arrives after its deadline loses, however the driver
/// ordered the two. The driver never called `handle_timeout`; `handle` fires the
/// passed readiness deadline first, and the success then meets a closing connection.
#[test]
fn g5_success_after_the_readiness_deadline_loses_in_handle() {
    let config = config();
    let t0 = Instant::now();
    let deadline = t0 + config.readiness_timeout;

    // Authentication exactly at the deadline.
    let mut lc = new_lifecycle(&config);
    lc.handle(Input::Accept, t0).unwrap();
    assert_eq!(lc.poll_timeout(), Some(deadline));
    let rejected = lc
        .handle(Input::AuthSucceeded { expires_at: None }, deadline)
        .expect_err("authentication after the readiness deadline must lose");
    assert_eq!(
        rejected.state,
        MachineState::SendingClose,
        "the state that refused"
    );
    assert_eq!(rejected.input, InputKind::AuthSucceeded);
    assert_eq!(rejected.reason, RejectReason::Closing);
    assert_eq!(lc.state(), MachineState::SendingClose);
    let record = lc.close_record().expect("a close record");
    assert_eq!(record.cause, CloseCause::ReadinessDeadline);
    assert_eq!(
        close_code_of(lc.poll_transmit(deadline)),
        Some(CloseCode::POLICY_VIOLATION)
    );

    // Services ready after the deadline, from Authenticated.
    let mut lc = new_lifecycle(&config);
    lc.handle(Input::Accept, t0).unwrap();
    lc.handle(Input::AuthSucceeded { expires_at: None }, t0 + STEP)
        .unwrap();
    let rejected = lc
        .handle(Input::ServicesReady, deadline + STEP)
        .expect_err("readiness after the readiness deadline must lose");
    assert_eq!(
        (rejected.state, rejected.input, rejected.reason),
        (
            MachineState::SendingClose,
            InputKind::ServicesReady,
            RejectReason::Closing
        )
    );
    assert_eq!(
        lc.close_record().map(|r| r.cause),
        Some(CloseCause::ReadinessDeadline)
    );
    assert_eq!(lc.check_send(), Err(SendRefused::Closed));

    // One instant earlier the success wins, and the deadline is disarmed for good.
    let mut lc = new_lifecycle(&config);
    lc.handle(Input::Accept, t0).unwrap();
    let just_before = deadline - Duration::from_nanos(1);
    lc.handle(Input::AuthSucceeded { expires_at: None }, just_before)
        .unwrap();
    let step = lc.handle(Input::ServicesReady, just_before).unwrap();
    assert_eq!(step.to, MachineState::Ready);
    assert_eq!(lc.poll_timeout(), None);
    assert_eq!(lc.handle_timeout(deadline + STEP), None);
    assert_eq!(lc.state(), MachineState::Ready);

    // An input that is accepted after a deadline fired reports the whole step, from
    // the state it was fed in; the deadline's close is the first close (G4).
    let mut lc = new_lifecycle(&config);
    lc.handle(Input::Accept, t0).unwrap();
    let step = lc.handle(Input::PeerClose(None), deadline).unwrap();
    assert_eq!(
        step,
        Step::new(MachineState::Accepted, MachineState::ReplyingClose)
    );
    let record = lc.close_record().expect("a close record");
    assert_eq!(record.cause, CloseCause::ReadinessDeadline);
    assert!(record.peer_closed);
}

/// **G5** in the typed API: `authenticate` and `ready` after the readiness deadline
/// return `Gone`, carrying the connection the deadline closed.
#[test]
fn g5_success_after_the_readiness_deadline_is_gone_in_the_typed_api() {
    let config = config();
    let t0 = Instant::now();
    let deadline = t0 + config.readiness_timeout;

    let accepted = Connection::new(ConnectionId::new(1), config.clone())
        .accept(t0)
        .unwrap();
    let gone = accepted
        .authenticate(None, deadline)
        .expect_err("authenticate after the readiness deadline must be Gone");
    assert_eq!(
        gone.record().map(|r| r.cause),
        Some(CloseCause::ReadinessDeadline)
    );
    let mut closing = gone.into_connection();
    assert_eq!(closing.state(), MachineState::SendingClose);
    assert_eq!(
        close_code_of(closing.poll_transmit(deadline)),
        Some(CloseCode::POLICY_VIOLATION)
    );
    assert_eq!(closing.poll_transmit(deadline), None);

    let authenticated = Connection::new(ConnectionId::new(1), config.clone())
        .accept(t0)
        .unwrap()
        .authenticate(None, t0 + STEP)
        .unwrap();
    let gone = authenticated
        .ready(deadline + STEP)
        .expect_err("ready after the readiness deadline must be Gone");
    assert_eq!(
        gone.record().map(|r| r.cause),
        Some(CloseCause::ReadinessDeadline)
    );
    assert_eq!(gone.into_connection().phase(), Phase::Closing);
}

/// **G5**: a timer input fed through `handle` before its deadline (or with no
/// deadline armed) is absorbed and changes nothing, so a superseded timer cannot close
/// a live connection, in particular a credential expiry that re-authentication
/// extended.
#[test]
fn g5_timer_input_before_its_deadline_is_absorbed() {
    let config = config();
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let unchanged = |state| -> Result<Step, Rejected> { Ok(Step::new(state, state)) };

    let mut lc = new_lifecycle(&config);
    lc.handle(Input::Accept, t0).unwrap();
    let readiness = t0 + config.readiness_timeout;
    for timer in [
        Input::ReadinessDeadline, // armed, not yet passed
        Input::CredentialExpired, // not armed
        Input::CloseTimeout,      // not armed
    ] {
        assert_eq!(
            lc.handle(timer.clone(), t0 + STEP),
            unchanged(MachineState::Accepted),
            "{timer:?}"
        );
    }
    assert_eq!(lc.poll_timeout(), Some(readiness));
    assert_eq!(lc.close_record(), None);

    // A credential expiring at t0+2s, extended to t0+10s by re-authentication.
    let first_expiry = t0 + 2 * STEP;
    let extended = t0 + 10 * STEP;
    lc.handle(
        Input::AuthSucceeded {
            expires_at: Some(first_expiry),
        },
        t0 + STEP,
    )
    .unwrap();
    lc.handle(Input::ServicesReady, t0 + STEP).unwrap();
    assert_eq!(lc.poll_timeout(), Some(first_expiry));
    assert_eq!(
        lc.handle(
            Input::AuthSucceeded {
                expires_at: Some(extended)
            },
            t0 + ms(1500)
        ),
        unchanged(MachineState::Ready)
    );
    assert_eq!(lc.poll_timeout(), Some(extended));
    // The timer a driver had set for the first expiry goes off: absorbed.
    assert_eq!(
        lc.handle(Input::CredentialExpired, first_expiry),
        unchanged(MachineState::Ready)
    );
    assert_eq!(lc.check_send(), Ok(()));
    assert_eq!(lc.poll_timeout(), Some(extended));
    // At the extended expiry it fires.
    assert_eq!(
        lc.handle(Input::CredentialExpired, extended),
        Ok(Step::new(MachineState::Ready, MachineState::SendingClose))
    );
    assert_eq!(
        lc.close_record().map(|r| r.cause),
        Some(CloseCause::CredentialExpired)
    );
    // The close-handshake timeout likewise: absorbed before, fires at its deadline.
    let close_deadline = extended + config.close_timeout;
    assert_eq!(lc.poll_timeout(), Some(close_deadline));
    assert_eq!(
        lc.handle(Input::CloseTimeout, close_deadline - ms(1)),
        unchanged(MachineState::SendingClose)
    );
    assert_eq!(
        lc.handle(Input::CloseTimeout, close_deadline),
        Ok(Step::new(MachineState::SendingClose, MachineState::Closed))
    );
    assert_eq!(
        lc.close_record().and_then(|r| r.end),
        Some(CloseEnd::TimedOut)
    );

    // Typed: `Connection<Ready>::reauthenticate` extends the expiry; a late driver
    // wake-up at the old expiry fires nothing.
    let mut conn = ready_connection(&config, t0, Some(first_expiry));
    conn.reauthenticate(Some(extended), t0 + STEP).unwrap();
    assert_eq!(conn.poll_timeout(), Some(extended));
    assert_eq!(conn.handle_timeout(first_expiry), None);
    assert_eq!(conn.send(text("still open")), Ok(()));
    let step = conn
        .handle_timeout(extended)
        .expect("the extended expiry fires");
    assert_eq!(step.to, MachineState::SendingClose);

    // Typed: `Connection<Authenticated>::reauthenticate` too; `ready` after the first
    // expiry (and before the readiness deadline) succeeds.
    let mut authenticated = Connection::new(ConnectionId::new(1), config.clone())
        .accept(t0)
        .unwrap()
        .authenticate(Some(t0 + STEP), t0)
        .unwrap();
    authenticated
        .reauthenticate(Some(extended), t0 + ms(500))
        .unwrap();
    let ready = authenticated
        .ready(t0 + 2 * STEP)
        .expect("the extended credential is still valid");
    assert_eq!(ready.poll_timeout(), Some(extended));
}

/// **G3**: once the peer's Close has arrived (also when it crosses ours), no queued
/// message is written — our Close is the next frame — and the queued messages come
/// back from `take_unsent`, in order.
#[test]
fn g3_no_message_after_the_peers_close_and_unsent_come_back() {
    let config = config();
    let t0 = Instant::now();
    let bye = CloseFrame::new(CloseCode::GOING_AWAY, "bye").unwrap();

    // The peer closes first; the driver polls first.
    let mut conn = ready_connection(&config, t0, None);
    conn.send(text("m1")).unwrap();
    conn.send(text("m2")).unwrap();
    assert_eq!(conn.take_unsent(), Vec::<Message>::new(), "still writable");
    let step = conn.handle_peer_close(Some(bye.clone()), t0).unwrap();
    assert_eq!(step.to, MachineState::ReplyingClose);
    assert_eq!(
        close_code_of(conn.poll_transmit(t0)),
        Some(CloseCode::GOING_AWAY)
    );
    assert_eq!(conn.poll_transmit(t0), None);
    assert_eq!(conn.phase(), Phase::Closed);
    assert_eq!(conn.take_unsent(), vec![text("m1"), text("m2")]);
    let refused = conn.send(text("m3")).unwrap_err();
    assert_eq!(refused.kind, SendErrorKind::Closed);

    // The peer closes first; the driver asks for the unsent messages at once.
    let mut conn = ready_connection(&config, t0, None);
    conn.send(text("m1")).unwrap();
    conn.handle_peer_close(None, t0).unwrap();
    assert_eq!(conn.take_unsent(), vec![text("m1")]);
    assert!(matches!(conn.poll_transmit(t0), Some(Frame::Close(None))));
    assert_eq!(conn.poll_transmit(t0), None);

    // Crossing Closes: our close starts flushing, then the peer's Close arrives.
    let mut conn = ready_connection(&config, t0, None);
    for m in ["m1", "m2", "m3"] {
        conn.send(text(m)).unwrap();
    }
    let mut closing = conn.close(CloseFrame::normal(), t0);
    assert_eq!(
        closing.take_unsent(),
        Vec::<Message>::new(),
        "still flushing"
    );
    assert_eq!(closing.poll_transmit(t0), Some(Frame::Message(text("m1"))));
    let step = closing.handle_peer_close(None, t0).unwrap();
    assert_eq!(step.to, MachineState::ReplyingClose);
    assert_eq!(
        close_code_of(closing.poll_transmit(t0)),
        Some(CloseCode::NORMAL)
    );
    assert_eq!(closing.poll_transmit(t0), None);
    assert_eq!(closing.take_unsent(), vec![text("m2"), text("m3")]);
    assert!(closing.is_closed());
}

/// **G3**: when the crate forces the close (authentication failure, expired
/// credential), our 1008 Close is the next frame: queued messages are never written
/// and come back from `take_unsent` straight away.
#[test]
fn g3_a_forced_close_does_not_write_queued_messages() {
    let config = config();
    let t0 = Instant::now();

    // Re-authentication failed.
    let mut conn = ready_connection(&config, t0, None);
    conn.send(text("m1")).unwrap();
    conn.send(text("m2")).unwrap();
    let mut closing = conn.reauthentication_failed(t0);
    let record = closing.close_record().expect("a close record").clone();
    assert_eq!(record.cause, CloseCause::AuthFailed);
    assert_eq!(
        close_code_of(closing.poll_transmit(t0)),
        Some(CloseCode::POLICY_VIOLATION)
    );
    assert_eq!(closing.poll_transmit(t0), None);
    assert_eq!(closing.take_unsent(), vec![text("m1"), text("m2")]);

    // The credential expired.
    let expiry = t0 + STEP;
    let mut conn = ready_connection(&config, t0, Some(expiry));
    conn.send(text("m1")).unwrap();
    conn.send(text("m2")).unwrap();
    let step = conn.handle_timeout(expiry).expect("the credential expires");
    assert_eq!(step.to, MachineState::SendingClose);
    assert_eq!(
        conn.close_record().map(|r| r.cause),
        Some(CloseCause::CredentialExpired)
    );
    assert_eq!(conn.take_unsent(), vec![text("m1"), text("m2")]);
    assert_eq!(
        close_code_of(conn.poll_transmit(expiry)),
        Some(CloseCode::POLICY_VIOLATION)
    );
    assert_eq!(conn.poll_transmit(expiry), None);

    // The credential expired and nobody woke up for it: the peer's Close arrives
    // later, and the expiry still counts first (G5) and still skips the outbox.
    let mut conn = ready_connection(&config, t0, Some(expiry));
    conn.send(text("m1")).unwrap();
    conn.handle_peer_close(None, expiry + STEP).unwrap();
    assert_eq!(
        conn.close_record().map(|r| r.cause),
        Some(CloseCause::CredentialExpired)
    );
    assert_eq!(
        close_code_of(conn.poll_transmit(expiry + STEP)),
        Some(CloseCode::POLICY_VIOLATION)
    );
    assert_eq!(conn.poll_transmit(expiry + STEP), None);
    assert_eq!(conn.take_unsent(), vec![text("m1")]);
}

/// **G4**, the reported code: `CloseRecord::code` is RFC 6455 §7.1.5's "connection
/// close code": the code of the peer's Close; 1005 if its Close had none; 1006 if no
/// Close of the peer's arrived, whatever we sent. Our own frame stays in `frame`.
#[test]
fn g4_close_record_code_follows_rfc_6455() {
    let config = config();
    let t0 = Instant::now();
    let ours = CloseFrame::new(CloseCode::application(4001).unwrap(), "ours").unwrap();
    let theirs = CloseFrame::new(CloseCode::NORMAL, "theirs").unwrap();
    let opened = || {
        let mut lc = new_lifecycle(&config);
        lc.handle(Input::Accept, t0).unwrap();
        lc
    };

    // Clean, we closed first: the peer's answer's code.
    let mut lc = opened();
    lc.handle(Input::Close(ours.clone()), t0).unwrap();
    assert!(lc.poll_transmit(t0).is_some());
    assert_eq!(
        lc.close_record().unwrap().code(),
        CloseCode::ABNORMAL,
        "no Close of the peer's yet"
    );
    lc.handle(Input::PeerClose(Some(theirs.clone())), t0)
        .unwrap();
    let record = lc.close_record().unwrap();
    assert!(record.is_clean());
    assert_eq!(record.code(), CloseCode::NORMAL);
    assert_eq!(record.frame.as_ref(), Some(&ours));

    // Clean, the peer closed first.
    let mut lc = opened();
    let going_away = CloseFrame::new(CloseCode::GOING_AWAY, "bye").unwrap();
    lc.handle(Input::PeerClose(Some(going_away)), t0).unwrap();
    assert_eq!(lc.close_record().unwrap().code(), CloseCode::GOING_AWAY);
    assert!(lc.poll_transmit(t0).is_some());
    assert!(lc.close_record().unwrap().is_clean());
    assert_eq!(lc.close_record().unwrap().code(), CloseCode::GOING_AWAY);

    // The close handshake timed out after our Close: 1006.
    let mut lc = opened();
    lc.handle(Input::Close(ours.clone()), t0).unwrap();
    assert!(lc.poll_transmit(t0).is_some());
    lc.handle_timeout(t0 + config.close_timeout).unwrap();
    let record = lc.close_record().unwrap();
    assert_eq!(record.end, Some(CloseEnd::TimedOut));
    assert_eq!(record.code(), CloseCode::ABNORMAL);
    assert_eq!(record.frame.as_ref(), Some(&ours));
    assert!(record.close_sent);

    // The peer's Close had no code: 1005, while replying and once closed.
    let mut lc = opened();
    lc.handle(Input::PeerClose(None), t0).unwrap();
    assert_eq!(lc.close_record().unwrap().code(), CloseCode::NO_STATUS);
    assert_eq!(lc.poll_transmit(t0), Some(Frame::Close(None)));
    assert!(lc.close_record().unwrap().is_clean());
    assert_eq!(lc.close_record().unwrap().code(), CloseCode::NO_STATUS);

    // The transport was lost after our Close: 1006.
    let mut lc = opened();
    lc.handle(Input::Close(ours.clone()), t0).unwrap();
    assert!(lc.poll_transmit(t0).is_some());
    lc.handle(Input::TransportLost(TransportLoss::Error), t0)
        .unwrap();
    let record = lc.close_record().unwrap();
    assert_eq!(
        record.end,
        Some(CloseEnd::TransportLost(TransportLoss::Error))
    );
    assert_eq!(record.code(), CloseCode::ABNORMAL);
    assert_eq!(record.frame.as_ref(), Some(&ours));

    // Refused before accept: the requested frame is kept, no Close was sent, 1006.
    let mut lc = new_lifecycle(&config);
    lc.handle(Input::Close(ours.clone()), t0).unwrap();
    let record = lc.close_record().unwrap();
    assert_eq!(record.cause, CloseCause::Refused);
    assert_eq!(record.end, Some(CloseEnd::NeverOpened));
    assert_eq!(record.frame.as_ref(), Some(&ours));
    assert!(!record.close_sent);
    assert_eq!(record.code(), CloseCode::ABNORMAL);
    assert_eq!(lc.poll_transmit(t0), None);
}

/// **G5**: deadline arithmetic never panics. With `Duration::MAX` timeouts `now +
/// timeout` cannot be represented, and the deadlines stay unarmed: nothing ever fires,
/// and timer inputs are absorbed.
#[test]
fn g5_duration_max_timeouts_do_not_panic_and_leave_deadlines_unarmed() {
    let mut config = Config::default();
    config.readiness_timeout = Duration::MAX;
    config.close_timeout = Duration::MAX;
    let t0 = Instant::now();
    let much_later = t0 + Duration::from_secs(100 * 365 * 24 * 3600);

    let mut lc = new_lifecycle(&config);
    lc.handle(Input::Accept, t0).unwrap();
    assert_eq!(lc.poll_timeout(), None, "readiness deadline unarmed");
    assert_eq!(lc.handle_timeout(much_later), None);
    assert_eq!(
        lc.handle(Input::ReadinessDeadline, much_later),
        Ok(Step::new(MachineState::Accepted, MachineState::Accepted))
    );
    lc.handle(Input::AuthSucceeded { expires_at: None }, much_later)
        .unwrap();
    lc.handle(Input::ServicesReady, much_later).unwrap();
    lc.handle(Input::Close(CloseFrame::normal()), much_later)
        .unwrap();
    assert_eq!(lc.poll_timeout(), None, "close deadline unarmed");
    assert!(lc.poll_transmit(much_later).is_some());
    assert_eq!(lc.handle_timeout(much_later + STEP), None);
    assert_eq!(
        lc.handle(Input::CloseTimeout, much_later + STEP),
        Ok(Step::new(
            MachineState::AwaitingPeerClose,
            MachineState::AwaitingPeerClose
        ))
    );
    lc.handle(Input::PeerClose(None), much_later + STEP)
        .unwrap();
    assert!(lc.close_record().unwrap().is_clean());

    // The typed API, and a close forced by the crate (authentication failure).
    let conn = Connection::new(ConnectionId::new(1), config.clone())
        .accept(t0)
        .unwrap();
    assert_eq!(conn.poll_timeout(), None);
    let mut closing = conn.reject(t0);
    assert_eq!(closing.poll_timeout(), None);
    assert_eq!(closing.handle_timeout(much_later), None);
    assert_eq!(closing.state(), MachineState::SendingClose);

    // Also at the far end of the clock: a credential that expires is still honoured.
    let mut conn = ready_connection(&config, t0, Some(much_later));
    assert_eq!(conn.poll_timeout(), Some(much_later));
    assert_eq!(conn.send(text("m1")), Ok(()));
    assert!(conn.handle_timeout(much_later).is_some());
    assert_eq!(conn.poll_timeout(), None, "close deadline unarmed");
}

/// The outbox's byte budget (`Config::outbox_bytes`): a few large messages, far
/// under the count bound, fill it; the next is refused as `Full` under the default
/// policy (handed back intact), and requests the 1013 slow-consumer close under
/// `OverflowPolicy::slow_consumer`, the queued ones still written before the Close
/// (**G3**). Taking one frees room for it (and wakes a waiting sender: `ROOM`).
#[test]
fn the_byte_budget_refuses_or_closes_1013_under_the_count_bound() {
    use ws_lifecycle::core::{Conn, Effects, OverflowPolicy};
    let big = |n: u8| Message::binary(vec![n; 400]);
    for slow_consumer in [false, true] {
        let now = Instant::now();
        let mut config = Config::default();
        config.outbox_bytes = 1000; // two of 400 bytes fit, a third does not
        if slow_consumer {
            config.overflow = OverflowPolicy::slow_consumer();
        }
        assert!(
            config.outbox_capacity > 3,
            "the count bound is not what refuses"
        );
        let mut conn = Conn::new(ConnectionId::new(1), config);
        conn.handle(Input::Accept, now).unwrap();
        conn.handle(Input::AuthSucceeded { expires_at: None }, now)
            .unwrap();
        conn.handle(Input::ServicesReady, now).unwrap();
        conn.send(big(1)).unwrap();
        conn.send(big(2)).unwrap();
        assert_eq!(conn.queued_bytes(), 800);
        assert!(conn.has_room() && !conn.has_room_for(400));
        let _ = conn.take_effects();
        let refused = conn.send(big(3)).unwrap_err();
        assert_eq!(refused.message, big(3), "handed back intact (G3)");
        if !slow_consumer {
            assert_eq!(refused.kind, SendErrorKind::Full);
            assert_eq!(conn.take_effects(), Effects::NONE);
            assert_eq!(conn.next_frame(now), Some(Frame::Message(big(1))));
            assert!(
                conn.take_effects().contains(Effects::ROOM),
                "G6: room freed"
            );
            conn.send(big(3)).unwrap();
            assert_eq!(conn.queued_bytes(), 800);
            continue;
        }
        assert_eq!(refused.kind, SendErrorKind::Closed);
        assert!(conn.close_deferred());
        assert_eq!(conn.next_frame(now), Some(Frame::Message(big(1))));
        assert_eq!(conn.next_frame(now), Some(Frame::Message(big(2))));
        let Some(Frame::Close(Some(close))) = conn.next_frame(now) else {
            panic!("our Close, last");
        };
        assert_eq!(close.code(), CloseCode::TRY_AGAIN_LATER);
        assert_eq!(
            conn.close_record().map(|r| r.cause),
            Some(CloseCause::SlowConsumer)
        );
    }
}

/// An empty outbox takes one message whatever its size (the framing layer's message
/// limit bounds it), so a message larger than the budget is not refused for ever.
#[test]
fn an_empty_outbox_takes_one_message_over_the_budget() {
    use ws_lifecycle::core::Conn;
    let now = Instant::now();
    let mut config = Config::default();
    config.outbox_bytes = 10;
    let mut conn = Conn::new(ConnectionId::new(1), config);
    conn.handle(Input::Accept, now).unwrap();
    conn.handle(Input::AuthSucceeded { expires_at: None }, now)
        .unwrap();
    conn.handle(Input::ServicesReady, now).unwrap();
    conn.send(Message::binary(vec![0; 100])).unwrap();
    let refused = conn.send(Message::text("x")).unwrap_err();
    assert_eq!(refused.kind, SendErrorKind::Full);
}
