//! An independent reference model of the connection lifecycle, for the model-based
//! tests (`tests/sequences.rs`, `tests/proptest_machine.rs`).
//!
//! It is deliberately written in a different style from `src/machine.rs`: there is no
//! enum of states and no hierarchy. The model is a handful of booleans (what has
//! happened so far), the first close's cause and frame, and the armed deadlines. The
//! fine-grained [`MachineState`] and the [`Phase`] are *derived* from the flags, and an
//! input's outcome is derived by comparing the derived state before and after it.
//! Every rule below is written from the documented behaviour, not from the
//! implementation, so that two independent implementations have to agree.
//!
//! Time is authoritative (G5). A timer input stands for one deadline: it acts only when
//! that deadline is armed and has passed, and is otherwise absorbed. Before any other
//! input acts, every deadline that has passed fires, the one that passed first first.
//! A fired deadline is spent (disarmed), and every armed deadline matters: firing one
//! always changes the state.

// Each test crate that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ws_lifecycle::core::{
    CloseCause, CloseEnd, Input, MachineState, RejectReason, Rejected, Step, TransportLoss,
};
use ws_lifecycle::{CloseCode, CloseFrame, CloseRecord, Config, Phase};

/// What the model expects `Lifecycle::handle` to return for one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `Ok(step)` with `step.to == state != step.from` (`step.from`: the state when
    /// the input arrived).
    Transition(MachineState),
    /// `Ok(step)` with `step.from == step.to`.
    Unchanged,
    /// `Err(rejected)` with this reason, refused in `state`: the state the input met
    /// after the deadlines that had passed fired (they may have moved the machine
    /// even though the input itself changed nothing).
    Rejected {
        /// The state that refused the input.
        state: MachineState,
        /// Why.
        reason: RejectReason,
    },
}

impl Expected {
    /// What `handle` returned, in the model's terms.
    pub fn of(result: &Result<Step, Rejected>) -> Expected {
        match result {
            Ok(step) if step.changed() => Expected::Transition(step.to),
            Ok(_) => Expected::Unchanged,
            Err(rejected) => Expected::Rejected {
                state: rejected.state,
                reason: rejected.reason,
            },
        }
    }
}

/// What our Close frame is expected to carry.
///
/// Frames the application or the peer chose are known exactly. The 1008 frames the
/// crate writes itself (authentication failure, readiness deadline, credential expiry)
/// are known by their code only: their reason text is the crate's to choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OurFrame {
    /// Exactly this frame.
    Exact(CloseFrame),
    /// A frame with this code and any (valid) reason.
    Code(CloseCode),
}

impl OurFrame {
    /// True when `frame` is what this expectation describes.
    pub fn matches(&self, frame: &CloseFrame) -> bool {
        match self {
            OurFrame::Exact(expected) => expected == frame,
            OurFrame::Code(code) => frame.code() == *code,
        }
    }
}

/// True when an actual (optional) frame matches an expected (optional) one.
pub fn frame_matches(expected: Option<&OurFrame>, actual: Option<&CloseFrame>) -> bool {
    match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => e.matches(a),
        _ => false,
    }
}

/// The flag-based reference model of one connection.
#[derive(Debug, Clone)]
pub struct Reference {
    readiness_timeout: Duration,
    close_timeout: Duration,

    // What has happened so far. Each flag is set once and never cleared.
    /// The handshake was accepted.
    accepted: bool,
    /// Authentication succeeded (at least once).
    authenticated: bool,
    /// The application's services became ready.
    ready: bool,
    /// A close of any kind happened: a close request, the peer's Close, an
    /// authentication failure, a deadline, a refusal or a transport loss.
    close_requested: bool,
    /// Our Close frame went out.
    close_sent: bool,
    /// The peer's Close frame came in.
    peer_closed: bool,
    /// Terminal.
    closed: bool,

    // The first close, kept for good (G4).
    cause: Option<CloseCause>,
    our_frame: Option<OurFrame>,
    peer_frame: Option<CloseFrame>,
    end: Option<CloseEnd>,

    // Armed deadlines (G5).
    readiness_deadline: Option<Instant>,
    credential_expiry: Option<Instant>,
    close_deadline: Option<Instant>,

    /// How many deadlines have fired (for coverage counts).
    fired: u32,
}

impl Reference {
    /// A connection whose upgrade request just arrived.
    pub fn new(config: &Config) -> Reference {
        Reference {
            readiness_timeout: config.readiness_timeout,
            close_timeout: config.close_timeout,
            accepted: false,
            authenticated: false,
            ready: false,
            close_requested: false,
            close_sent: false,
            peer_closed: false,
            closed: false,
            cause: None,
            our_frame: None,
            peer_frame: None,
            end: None,
            readiness_deadline: None,
            credential_expiry: None,
            close_deadline: None,
            fired: 0,
        }
    }

    // ── derived views ─────────────────────────────────────────────────────────

    /// The close handshake is under way (and not over).
    fn closing(&self) -> bool {
        self.close_requested && !self.closed
    }

    /// Accepted, not closing, not closed.
    fn open(&self) -> bool {
        self.accepted && !self.close_requested && !self.closed
    }

    /// The expected fine-grained state, derived from the flags.
    pub fn state(&self) -> MachineState {
        if self.closed {
            MachineState::Closed
        } else if self.close_requested {
            match (self.close_sent, self.peer_closed) {
                (false, false) => MachineState::SendingClose,
                (true, false) => MachineState::AwaitingPeerClose,
                (false, true) => MachineState::ReplyingClose,
                (true, true) => unreachable!("both Close frames exchanged but not closed"),
            }
        } else if self.ready {
            MachineState::Ready
        } else if self.authenticated {
            MachineState::Authenticated
        } else if self.accepted {
            MachineState::Accepted
        } else {
            MachineState::Connecting
        }
    }

    /// The expected phase, derived from the flags (not from [`Reference::state`]).
    pub fn phase(&self) -> Phase {
        if self.closed {
            Phase::Closed
        } else if self.close_requested {
            Phase::Closing
        } else if self.ready {
            Phase::Ready
        } else if self.authenticated {
            Phase::Authenticated
        } else if self.accepted {
            Phase::Accepted
        } else {
            Phase::Connecting
        }
    }

    /// The send gate (G1, G2, G3): only a ready connection with no close under way.
    pub fn send_permitted(&self) -> bool {
        self.ready && !self.close_requested && !self.closed
    }

    /// Queued application messages may still be written (G3): while ready and open,
    /// and during a close the application asked for, until our Close is written and
    /// unless the peer's Close came in. After the peer's Close, or when the crate
    /// forces the close (authentication failure, a deadline), our Close goes next.
    pub fn messages_may_flow(&self) -> bool {
        let graceful_local_close = self.close_requested
            && !self.closed
            && self.cause == Some(CloseCause::Local)
            && !self.peer_closed
            && !self.close_sent;
        self.send_permitted() || graceful_local_close
    }

    /// `take_unsent` hands the queued messages back (G3): as soon as they can no
    /// longer be written, i.e. a close happened and they may not flow.
    pub fn unsent_are_returned(&self) -> bool {
        self.close_requested && !self.messages_may_flow()
    }

    /// The code `CloseRecord::code` reports (RFC 6455 §7.1.5, "the WebSocket
    /// connection close code"): the code of the peer's Close; 1005 when its Close had
    /// no code; 1006 when no Close of the peer's arrived, whatever we sent.
    pub fn reported_code(&self) -> CloseCode {
        if !self.peer_closed {
            CloseCode::ABNORMAL
        } else if let Some(theirs) = &self.peer_frame {
            theirs.code()
        } else {
            CloseCode::NO_STATUS
        }
    }

    /// The first close's cause; `None` while no close happened (no close record).
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.cause
    }

    /// What our Close frame carries (`None`: empty Close, or no Close at all).
    pub fn our_frame(&self) -> Option<&OurFrame> {
        self.our_frame.as_ref()
    }

    /// Our Close frame went out.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// The peer's Close frame came in.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// What the peer's Close carried.
    pub fn peer_frame(&self) -> Option<&CloseFrame> {
        self.peer_frame.as_ref()
    }

    /// How the connection ended; `None` while not closed.
    pub fn end(&self) -> Option<CloseEnd> {
        self.end
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.readiness_deadline,
            self.credential_expiry,
            self.close_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Our Close frame is owed and not yet sent.
    pub fn close_owed(&self) -> bool {
        self.closing() && !self.close_sent
    }

    /// Compares an actual close record with the model; `Err` describes the mismatch.
    pub fn check_record(&self, actual: Option<&CloseRecord>) -> Result<(), String> {
        let Some(cause) = self.cause else {
            return match actual {
                None => Ok(()),
                Some(r) => Err(format!("expected no close record, got {r:?}")),
            };
        };
        let Some(r) = actual else {
            return Err(format!(
                "expected a close record with cause {cause:?}, got none"
            ));
        };
        let mut problems = Vec::new();
        if r.cause != cause {
            problems.push(format!("cause: expected {cause:?}, got {:?}", r.cause));
        }
        if !frame_matches(self.our_frame.as_ref(), r.frame.as_ref()) {
            problems.push(format!(
                "our frame: expected {:?}, got {:?}",
                self.our_frame, r.frame
            ));
        }
        if r.close_sent != self.close_sent {
            problems.push(format!(
                "close_sent: expected {}, got {}",
                self.close_sent, r.close_sent
            ));
        }
        if r.peer_closed != self.peer_closed {
            problems.push(format!(
                "peer_closed: expected {}, got {}",
                self.peer_closed, r.peer_closed
            ));
        }
        if r.peer_frame != self.peer_frame {
            problems.push(format!(
                "peer_frame: expected {:?}, got {:?}",
                self.peer_frame, r.peer_frame
            ));
        }
        if r.end != self.end {
            problems.push(format!("end: expected {:?}, got {:?}", self.end, r.end));
        }
        if r.code() != self.reported_code() {
            problems.push(format!(
                "code(): expected {}, got {}",
                self.reported_code(),
                r.code()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    // ── inputs ────────────────────────────────────────────────────────────────

    /// Applies one input at `now` (as `Lifecycle::handle`) and returns the expected
    /// outcome.
    pub fn apply(&mut self, input: &Input, now: Instant) -> Expected {
        let before = self.state();
        let result = match self.deadline_for(input) {
            // A timer input: it acts only if its own deadline is armed and has passed.
            Some(deadline) => {
                if deadline.is_some_and(|at| at <= now) {
                    self.fire(input, now);
                }
                Ok(())
            }
            // Anything else meets the state the clock has already produced.
            None => {
                self.fire_passed_deadlines(now);
                let met = self.state();
                let reacted = self.react(input, now);
                if reacted.is_err() {
                    debug_assert_eq!(self.state(), met, "a rejection changed the model");
                }
                reacted
            }
        };
        match result {
            Err(reason) => Expected::Rejected {
                state: self.state(),
                reason,
            },
            Ok(()) => {
                let after = self.state();
                if after == before {
                    Expected::Unchanged
                } else {
                    Expected::Transition(after)
                }
            }
        }
    }

    /// How many deadlines have fired so far, by any route.
    pub fn deadlines_fired(&self) -> u32 {
        self.fired
    }

    /// For a timer input, the deadline it stands for (`Some(None)`: not armed); `None`
    /// for any other input.
    pub fn deadline_for(&self, input: &Input) -> Option<Option<Instant>> {
        match input {
            Input::CloseTimeout => Some(self.close_deadline),
            Input::ReadinessDeadline => Some(self.readiness_deadline),
            Input::CredentialExpired => Some(self.credential_expiry),
            _ => None,
        }
    }

    /// Fires every deadline that has passed at `now`, the earliest first, until none
    /// has. Terminates: each firing spends a deadline, and only the start of a close
    /// (at most once) arms a new one.
    fn fire_passed_deadlines(&mut self, now: Instant) {
        while let Some(timer) = self.due_timer(now) {
            self.fire(&timer, now);
        }
    }

    /// Fires one armed, passed deadline: it is spent, and it acts.
    fn fire(&mut self, timer: &Input, now: Instant) {
        let before = self.state();
        self.fired += 1;
        match timer {
            Input::CloseTimeout => self.close_deadline = None,
            Input::ReadinessDeadline => self.readiness_deadline = None,
            Input::CredentialExpired => self.credential_expiry = None,
            other => unreachable!("{other:?} is not a timer"),
        }
        let reacted = self.react(timer, now);
        assert_eq!(reacted, Ok(()), "the model refused timer {timer:?}");
        assert_ne!(
            self.state(),
            before,
            "the model had {timer:?} armed in {before} where it means nothing"
        );
    }

    /// The input `handle_timeout(now)` feeds: the deadline that passed first among
    /// those due (ties: close, readiness, credential), or `None` when none is due.
    /// (The close deadline is never armed together with the other two; the readiness
    /// deadline and the credential expiry are both armed while `Authenticated`.)
    pub fn due_timer(&self, now: Instant) -> Option<Input> {
        let due = |deadline: Option<Instant>| deadline.filter(|at| *at <= now);
        let candidates = [
            (due(self.close_deadline), Input::CloseTimeout),
            (due(self.readiness_deadline), Input::ReadinessDeadline),
            (due(self.credential_expiry), Input::CredentialExpired),
        ];
        let mut best: Option<(Instant, Input)> = None;
        for (deadline, input) in candidates {
            let Some(at) = deadline else { continue };
            let better = match &best {
                None => true,
                Some((earliest, _)) => at < *earliest,
            };
            if better {
                best = Some((at, input));
            }
        }
        best.map(|(_, input)| input)
    }

    /// What `handle_timeout(now)` is expected to do: `None` when no deadline is due,
    /// else the outcome of the due timer's input.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Expected> {
        let input = self.due_timer(now)?;
        match self.apply(&input, now) {
            // Timer inputs are never refused.
            Expected::Rejected { reason, .. } => {
                panic!("model rejected timer {input:?}: {reason:?}")
            }
            expected => Some(expected),
        }
    }

    /// What `Lifecycle::poll_transmit(now)` is expected to yield: our Close frame
    /// (`Some(frame)`, where `frame` is `None` for an empty Close) exactly once, when
    /// it is owed; the model records it as sent. Writing is not an input: the clock is
    /// not consulted.
    pub fn poll_close(&mut self, now: Instant) -> Option<Option<OurFrame>> {
        if !self.close_owed() {
            return None;
        }
        let frame = self.our_frame.clone();
        let reacted = self.react(&Input::CloseSent, now);
        assert_eq!(reacted, Ok(()), "model refused its own CloseSent");
        Some(frame)
    }

    fn react(&mut self, input: &Input, now: Instant) -> Result<(), RejectReason> {
        match input {
            Input::Accept => {
                self.refuse_if_finishing(RejectReason::Closed, RejectReason::Closing)?;
                if self.accepted {
                    return Err(RejectReason::AlreadyDone);
                }
                self.accepted = true;
                // A deadline too far away to represent is never reached (G5).
                self.readiness_deadline = now.checked_add(self.readiness_timeout);
                Ok(())
            }
            Input::AuthSucceeded { expires_at } => {
                self.refuse_if_finishing(RejectReason::Closed, RejectReason::Closing)?;
                if !self.accepted {
                    return Err(RejectReason::NotYet);
                }
                // First authentication or re-authentication: the expiry is replaced.
                self.authenticated = true;
                self.credential_expiry = *expires_at;
                Ok(())
            }
            Input::ServicesReady => {
                self.refuse_if_finishing(RejectReason::Closed, RejectReason::Closing)?;
                if self.ready {
                    return Err(RejectReason::AlreadyDone);
                }
                if !self.authenticated {
                    return Err(RejectReason::NotYet);
                }
                self.ready = true;
                self.readiness_deadline = None;
                Ok(())
            }
            Input::AuthFailed => {
                if self.closed || self.closing() {
                    return Ok(()); // the first close wins (G4)
                }
                if !self.accepted {
                    return Err(RejectReason::NotYet);
                }
                self.begin_close(
                    CloseCause::AuthFailed,
                    Some(OurFrame::Code(CloseCode::POLICY_VIOLATION)),
                    now,
                );
                Ok(())
            }
            Input::Close(frame) => {
                if self.closed || self.closing() {
                    return Ok(()); // the first close wins (G4)
                }
                if !self.accepted {
                    // Refusing the upgrade: no Close frame is written, nothing to
                    // close; the record keeps the frame that was asked for.
                    self.cause = Some(CloseCause::Refused);
                    self.our_frame = Some(OurFrame::Exact(frame.clone()));
                    self.close_requested = true;
                    self.finish(CloseEnd::NeverOpened);
                    return Ok(());
                }
                self.begin_close(CloseCause::Local, Some(OurFrame::Exact(frame.clone())), now);
                Ok(())
            }
            Input::PeerClose(theirs) => {
                if self.closed {
                    return Ok(());
                }
                if !self.accepted {
                    return Err(RejectReason::NotOpen);
                }
                if self.peer_closed {
                    return Ok(()); // a duplicate Close is ignored
                }
                if self.open() {
                    // The peer closed first: our answer echoes its code, no reason.
                    let echo = theirs.as_ref().map(|f| {
                        OurFrame::Exact(
                            CloseFrame::new(f.code(), "").expect("a peer's code is sendable"),
                        )
                    });
                    self.begin_close(CloseCause::Peer, echo, now);
                }
                self.peer_closed = true;
                self.peer_frame = theirs.clone();
                if self.close_sent {
                    self.finish(CloseEnd::Clean);
                }
                Ok(())
            }
            Input::CloseSent => {
                if !self.accepted && !self.closed {
                    return Err(RejectReason::NotOpen);
                }
                if !self.close_owed() {
                    return Err(RejectReason::NoCloseOwed);
                }
                self.close_sent = true;
                if self.peer_closed {
                    self.finish(CloseEnd::Clean);
                }
                Ok(())
            }
            // The three timers only get here when their deadline is armed and has
            // passed (see `apply`); the conditions restate where each one matters.
            Input::CloseTimeout => {
                if self.closing() {
                    self.finish(CloseEnd::TimedOut);
                }
                Ok(())
            }
            Input::ReadinessDeadline => {
                if self.open() && !self.ready {
                    self.begin_close(
                        CloseCause::ReadinessDeadline,
                        Some(OurFrame::Code(CloseCode::POLICY_VIOLATION)),
                        now,
                    );
                }
                Ok(())
            }
            Input::CredentialExpired => {
                if self.open() && self.authenticated {
                    self.begin_close(
                        CloseCause::CredentialExpired,
                        Some(OurFrame::Code(CloseCode::POLICY_VIOLATION)),
                        now,
                    );
                }
                Ok(())
            }
            Input::TransportLost(loss) => {
                if self.closed {
                    return Ok(());
                }
                self.lose_transport(*loss);
                Ok(())
            }
            other => panic!("the reference model does not know input {other:?}"),
        }
    }

    /// Accept, AuthSucceeded and ServicesReady never reopen a closing or closed
    /// connection.
    fn refuse_if_finishing(
        &self,
        if_closed: RejectReason,
        if_closing: RejectReason,
    ) -> Result<(), RejectReason> {
        if self.closed {
            Err(if_closed)
        } else if self.closing() {
            Err(if_closing)
        } else {
            Ok(())
        }
    }

    /// The first close of an open connection: our Close is owed from now on.
    fn begin_close(&mut self, cause: CloseCause, frame: Option<OurFrame>, now: Instant) {
        debug_assert!(self.open());
        self.close_requested = true;
        self.cause = Some(cause);
        self.our_frame = frame;
        self.readiness_deadline = None;
        self.credential_expiry = None;
        // A deadline too far away to represent is never reached (G5).
        self.close_deadline = now.checked_add(self.close_timeout);
    }

    fn lose_transport(&mut self, loss: TransportLoss) {
        if self.cause.is_none() {
            self.cause = Some(CloseCause::TransportLost(loss));
        }
        let end = if self.accepted {
            CloseEnd::TransportLost(loss)
        } else {
            CloseEnd::NeverOpened
        };
        self.close_requested = true;
        self.finish(end);
    }

    fn finish(&mut self, end: CloseEnd) {
        self.closed = true;
        self.end = Some(end);
        self.readiness_deadline = None;
        self.credential_expiry = None;
        self.close_deadline = None;
    }
}
