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

// Each test crate that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ws_lifecycle::{
    CloseCause, CloseCode, CloseEnd, CloseFrame, CloseRecord, Config, Input, MachineState, Phase,
    RejectReason, TransportLoss,
};

/// What the model expects `Lifecycle::handle` to return for one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `Ok(step)` with `step.to == state != step.from`.
    Transition(MachineState),
    /// `Ok(step)` with `step.from == step.to`.
    Unchanged,
    /// `Err(rejected)` with this reason; nothing changes.
    Rejected(RejectReason),
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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    // ── inputs ────────────────────────────────────────────────────────────────

    /// Applies one input at `now` and returns the expected outcome.
    pub fn apply(&mut self, input: &Input, now: Instant) -> Expected {
        let before = self.state();
        match self.react(input, now) {
            Err(reason) => {
                debug_assert_eq!(self.state(), before, "a rejection changed the model");
                Expected::Rejected(reason)
            }
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
            Expected::Rejected(reason) => panic!("model rejected timer {input:?}: {reason:?}"),
            expected => Some(expected),
        }
    }

    /// What `Lifecycle::poll_transmit(now)` is expected to yield: our Close frame
    /// (`Some(frame)`, where `frame` is `None` for an empty Close) exactly once, when
    /// it is owed; the model records it as sent.
    pub fn poll_close(&mut self, now: Instant) -> Option<Option<OurFrame>> {
        if !self.close_owed() {
            return None;
        }
        let frame = self.our_frame.clone();
        let outcome = self.apply(&Input::CloseSent, now);
        assert!(
            !matches!(outcome, Expected::Rejected(_)),
            "model refused its own CloseSent"
        );
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
                self.readiness_deadline = Some(now + self.readiness_timeout);
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
                    // Refusing the upgrade: no Close frame, nothing to close.
                    self.cause = Some(CloseCause::Refused);
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
            Input::CloseTimeout => {
                if self.closing() {
                    self.finish(CloseEnd::TimedOut);
                }
                Ok(()) // elsewhere a stale timer
            }
            Input::ReadinessDeadline => {
                if self.open() && !self.ready {
                    self.begin_close(
                        CloseCause::ReadinessDeadline,
                        Some(OurFrame::Code(CloseCode::POLICY_VIOLATION)),
                        now,
                    );
                }
                Ok(()) // elsewhere stale: readiness won, or nothing is armed (G5)
            }
            Input::CredentialExpired => {
                if self.open() && self.authenticated {
                    self.begin_close(
                        CloseCause::CredentialExpired,
                        Some(OurFrame::Code(CloseCode::POLICY_VIOLATION)),
                        now,
                    );
                }
                Ok(()) // elsewhere stale
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
        self.close_deadline = Some(now + self.close_timeout);
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
