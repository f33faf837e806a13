//! The one definition of the transition relation.
//!
//! This private module holds the lifecycle as a `statig` hierarchical state machine
//! (blocking flavour). Everything else is derived from it or checked against it: the
//! public [`MachineState`](crate::core::MachineState) and [`Phase`](crate::core::Phase) views, the
//! transition table ([`transition_table`](crate::core::transition_table)), the generated
//! [`docs/state-diagram.md`], and the tests that compare it with an independent model.
//!
//! Hierarchy:
//!
//! ```text
//! connecting
//! open ─┬─ handshake ─┬─ accepted
//!       │             └─ authenticated
//!       └─ ready
//! closing ─┬─ sending_close        (our Close is owed, theirs not seen)
//!          ├─ awaiting_peer_close  (our Close is out; waiting for theirs)
//!          └─ replying_close       (theirs arrived; our answer is owed)
//! closed
//! ```
//!
//! statig 0.4.1 notes: `handle` returns `()` and has no "unhandled" outcome, so each
//! handler records its verdict in the per-dispatch [`Dispatch`] context; every handler
//! chain ends in an exhaustive `match`, so no input can fall off the top unrecorded.
//! Transitions are detected by comparing the state before and after the dispatch.
//!
//! [`docs/state-diagram.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/state-diagram.md

#![allow(missing_docs)] // statig generates undocumented items; the module is private.

use std::time::{Duration, Instant};

use statig::prelude::*;

use crate::core::{
    CloseCause, CloseEnd, CloseFrame, CloseRecord, CrateClose, Input, RejectReason, TransportLoss,
};

/// What one dispatch decided, besides a possible change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No handler recorded anything (a bug: the table test fails on it).
    Unset,
    /// Handled; if the state did not change, "handled, no change".
    Handled,
    /// Refused, with the reason.
    Rejected(RejectReason),
}

/// The per-dispatch context: the time input and the verdict output.
pub(crate) struct Dispatch {
    pub(crate) now: Instant,
    pub(crate) verdict: Verdict,
    /// Who asks, for a `Close` input the crate itself raises (a slow consumer, an
    /// inbound flood); `None` means the application. Only the record differs: the
    /// transition relation does not depend on it.
    pub(crate) close_cause: Option<CloseCause>,
}

/// The machine's shared storage: configuration, armed deadlines and the close record.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) readiness_timeout: Timeout,
    pub(crate) close_timeout: Timeout,
    /// Armed while in the *handshake* superstate (**G5**).
    pub(crate) readiness_deadline: Option<Instant>,
    /// Armed while authenticated and open, when the credential expires (**G5**).
    pub(crate) credential_expiry: Option<Instant>,
    /// Armed while in the *closing* superstate (**G5**).
    pub(crate) close_deadline: Option<Instant>,
    /// Set once, by the first close of any kind (**G4**: the first cause wins).
    /// Boxed: allocated once, when the close begins; an open connection carries 8
    /// bytes for it instead of the whole record.
    pub(crate) close: Option<Box<CloseRecord>>,
}

/// A timeout in 8 bytes instead of a `Duration`'s 16 (every connection carries two):
/// nanoseconds, with `u64::MAX` — a timeout of about 584 years or more — meaning "no
/// deadline": it is left unarmed, as a deadline past what `Instant` can represent is
/// (documented on `Config`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeout(u64);

impl Timeout {
    fn new(timeout: Duration) -> Timeout {
        Timeout(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The deadline `self` after `now`; `None` when it cannot be represented.
    fn after(self, now: Instant) -> Option<Instant> {
        if self.0 == u64::MAX {
            return None;
        }
        now.checked_add(Duration::from_nanos(self.0))
    }
}

impl Machine {
    pub(crate) fn new(readiness_timeout: Duration, close_timeout: Duration) -> Machine {
        Machine {
            readiness_timeout: Timeout::new(readiness_timeout),
            close_timeout: Timeout::new(close_timeout),
            readiness_deadline: None,
            credential_expiry: None,
            close_deadline: None,
            close: None,
        }
    }

    fn handled(d: &mut Dispatch) -> Outcome<State> {
        d.verdict = Verdict::Handled;
        Handled
    }

    fn reject(d: &mut Dispatch, reason: RejectReason) -> Outcome<State> {
        d.verdict = Verdict::Rejected(reason);
        Handled
    }

    fn go(d: &mut Dispatch, to: State) -> Outcome<State> {
        d.verdict = Verdict::Handled;
        Transition(to)
    }

    /// Starts our close (**G3**/**G4**): records the cause and our frame — unless a
    /// close is already recorded, in which case the first one stands — and moves to
    /// `sending_close`.
    fn start_close(&mut self, d: &mut Dispatch, close: CrateClose) -> Outcome<State> {
        self.start_close_with(d, close.cause(), close.frame())
    }

    /// [`start_close`](Self::start_close) with the application's frame, or a
    /// slow-consumer policy's.
    fn start_close_with(
        &mut self,
        d: &mut Dispatch,
        cause: CloseCause,
        frame: CloseFrame,
    ) -> Outcome<State> {
        self.close
            .get_or_insert_with(|| Box::new(CloseRecord::new(cause, Some(frame))));
        Self::go(d, State::sending_close())
    }

    /// The peer closed first: we owe it an answer echoing its code (RFC 6455 §5.5.1).
    fn peer_closed_first(
        &mut self,
        d: &mut Dispatch,
        theirs: &Option<CloseFrame>,
    ) -> Outcome<State> {
        let ours = theirs.as_ref().map(|f| CloseFrame::internal(f.code(), ""));
        let record = self
            .close
            .get_or_insert_with(|| Box::new(CloseRecord::new(CloseCause::Peer, ours)));
        record.peer_closed = true;
        record.peer_frame = theirs.clone();
        Self::go(d, State::replying_close())
    }

    /// Ends the connection without (or without finishing) the close handshake.
    fn end(&mut self, d: &mut Dispatch, cause: CloseCause, end: CloseEnd) -> Outcome<State> {
        let record = self
            .close
            .get_or_insert_with(|| Box::new(CloseRecord::new(cause, None)));
        record.end = Some(end);
        Self::go(d, State::closed())
    }

    fn lost(loss: &TransportLoss) -> (CloseCause, CloseEnd) {
        (
            CloseCause::TransportLost(*loss),
            CloseEnd::TransportLost(*loss),
        )
    }
}

#[state_machine(
    initial = "State::connecting()",
    state(derive(Debug, Clone, Copy, PartialEq, Eq)),
    superstate(derive(Debug)),
    context_identifier = "d"
)]
impl Machine {
    // ── connecting ─────────────────────────────────────────────────────────────

    /// The upgrade request arrived; the handshake is not accepted. Nothing is sent
    /// here: a close refuses the upgrade with no Close frame (**G1**).
    #[state]
    fn connecting(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::Accept => Self::go(d, State::accepted()),
            Input::AuthSucceeded { .. } | Input::AuthFailed | Input::ServicesReady => {
                Self::reject(d, RejectReason::NotYet)
            }
            Input::Close(frame) => {
                // Kept for reporting; no Close frame is sent (the upgrade is refused).
                self.close = Some(Box::new(CloseRecord::new(
                    CloseCause::Refused,
                    Some(frame.clone()),
                )));
                self.end(d, CloseCause::Refused, CloseEnd::NeverOpened)
            }
            Input::PeerClose(_) | Input::CloseSent => Self::reject(d, RejectReason::NotOpen),
            Input::CloseTimeout | Input::ReadinessDeadline | Input::CredentialExpired => {
                Self::handled(d) // stale timer: nothing is armed here
            }
            Input::TransportLost(loss) => {
                let (cause, _) = Self::lost(loss);
                self.end(d, cause, CloseEnd::NeverOpened)
            }
        }
    }

    // ── open: accepted, authenticated, ready ──────────────────────────────────

    /// Accepted, not authenticated.
    #[state(superstate = "handshake")]
    fn accepted(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::AuthSucceeded { expires_at } => {
                self.credential_expiry = *expires_at;
                Self::go(d, State::authenticated())
            }
            Input::ServicesReady => Self::reject(d, RejectReason::NotYet),
            Input::CredentialExpired => Self::handled(d), // stale: no credential yet
            _ => Super,
        }
    }

    /// Authenticated, services not ready.
    #[state(superstate = "handshake")]
    fn authenticated(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::ServicesReady => Self::go(d, State::ready()),
            _ => Super,
        }
    }

    /// Accepted and authenticated share the readiness deadline (**G5**).
    #[superstate(
        superstate = "open",
        entry_action = "arm_readiness",
        exit_action = "disarm_readiness"
    )]
    fn handshake(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::ReadinessDeadline => self.start_close(d, CrateClose::ReadinessDeadline),
            _ => Super,
        }
    }

    #[action]
    fn arm_readiness(&mut self, d: &mut Dispatch) {
        // A timeout too large to represent leaves the deadline unarmed (no panic).
        self.readiness_deadline = self.readiness_timeout.after(d.now);
    }

    #[action]
    fn disarm_readiness(&mut self) {
        self.readiness_deadline = None;
    }

    /// Ready: the only state in which `send` is permitted (**G1**, **G2**, **G3**).
    #[state(superstate = "open")]
    fn ready(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::ServicesReady => Self::reject(d, RejectReason::AlreadyDone),
            Input::ReadinessDeadline => Self::handled(d), // stale: readiness won (G5)
            _ => Super,
        }
    }

    /// Every open state handles close, peer Close and transport loss here, once.
    #[superstate(exit_action = "forget_credential")]
    fn open(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::Accept => Self::reject(d, RejectReason::AlreadyDone),
            Input::AuthSucceeded { expires_at } => {
                // Re-authentication: the new credential's expiry replaces the old one.
                self.credential_expiry = *expires_at;
                Self::handled(d)
            }
            Input::AuthFailed => self.start_close(d, CrateClose::AuthFailed),
            Input::ServicesReady => Self::reject(d, RejectReason::NotYet),
            Input::Close(frame) => {
                let cause = d.close_cause.unwrap_or(CloseCause::Local);
                self.start_close_with(d, cause, frame.clone())
            }
            Input::PeerClose(theirs) => self.peer_closed_first(d, theirs),
            Input::CloseSent => Self::reject(d, RejectReason::NoCloseOwed),
            Input::CloseTimeout | Input::ReadinessDeadline => Self::handled(d), // stale
            Input::CredentialExpired => self.start_close(d, CrateClose::CredentialExpired),
            Input::TransportLost(loss) => {
                let (cause, end) = Self::lost(loss);
                self.end(d, cause, end)
            }
        }
    }

    #[action]
    fn forget_credential(&mut self) {
        self.credential_expiry = None;
    }

    // ── closing ───────────────────────────────────────────────────────────────

    /// Our Close frame is owed and the peer's has not been seen.
    #[state(superstate = "closing")]
    fn sending_close(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::CloseSent => {
                self.record().close_sent = true;
                Self::go(d, State::awaiting_peer_close())
            }
            Input::PeerClose(theirs) => {
                // Closes crossed on the wire: ours is still owed, theirs is in.
                let record = self.record();
                record.peer_closed = true;
                record.peer_frame = theirs.clone();
                Self::go(d, State::replying_close())
            }
            _ => Super,
        }
    }

    /// Our Close is out; the peer's Close is the acknowledgement.
    #[state(superstate = "closing")]
    fn awaiting_peer_close(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::PeerClose(theirs) => {
                let record = self.record();
                record.peer_closed = true;
                record.peer_frame = theirs.clone();
                record.end = Some(CloseEnd::Clean);
                Self::go(d, State::closed())
            }
            Input::CloseSent => Self::reject(d, RejectReason::NoCloseOwed),
            _ => Super,
        }
    }

    /// The peer's Close is in; once our answer is out the handshake is complete.
    #[state(superstate = "closing")]
    fn replying_close(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::CloseSent => {
                let record = self.record();
                record.close_sent = true;
                record.end = Some(CloseEnd::Clean);
                Self::go(d, State::closed())
            }
            Input::PeerClose(_) => Self::handled(d), // a duplicate Close is ignored
            _ => Super,
        }
    }

    /// Common to every closing state: the first close stands (**G4**), the close
    /// handshake is bounded by its timeout (**G5**).
    #[superstate(entry_action = "arm_close_timeout")]
    fn closing(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::Accept | Input::AuthSucceeded { .. } | Input::ServicesReady => {
                Self::reject(d, RejectReason::Closing)
            }
            // A later close of any kind changes nothing: the first one wins (G4).
            Input::AuthFailed
            | Input::Close(_)
            | Input::ReadinessDeadline
            | Input::CredentialExpired => Self::handled(d),
            Input::PeerClose(_) => Self::handled(d), // leaves override; unreachable here
            Input::CloseSent => Self::reject(d, RejectReason::NoCloseOwed),
            Input::CloseTimeout => {
                let end = CloseEnd::TimedOut;
                self.record().end = Some(end);
                Self::go(d, State::closed())
            }
            Input::TransportLost(loss) => {
                self.record().end = Some(CloseEnd::TransportLost(*loss));
                Self::go(d, State::closed())
            }
        }
    }

    #[action]
    fn arm_close_timeout(&mut self, d: &mut Dispatch) {
        self.close_deadline = self.close_timeout.after(d.now);
    }

    // ── closed ────────────────────────────────────────────────────────────────

    /// Terminal. Late closes and timers are absorbed; anything that would reopen is
    /// refused.
    #[state(entry_action = "disarm_all")]
    fn closed(&mut self, d: &mut Dispatch, event: &Input) -> Outcome<State> {
        match event {
            Input::Accept | Input::AuthSucceeded { .. } | Input::ServicesReady => {
                Self::reject(d, RejectReason::Closed)
            }
            Input::CloseSent => Self::reject(d, RejectReason::NoCloseOwed),
            Input::AuthFailed
            | Input::Close(_)
            | Input::PeerClose(_)
            | Input::CloseTimeout
            | Input::ReadinessDeadline
            | Input::CredentialExpired
            | Input::TransportLost(_) => Self::handled(d),
        }
    }

    #[action]
    fn disarm_all(&mut self) {
        self.readiness_deadline = None;
        self.credential_expiry = None;
        self.close_deadline = None;
    }
}

impl Machine {
    /// The close record; every closing state has one (set by the transition into it).
    fn record(&mut self) -> &mut CloseRecord {
        self.close
            .get_or_insert_with(|| Box::new(CloseRecord::new(CloseCause::Local, None)))
    }
}
