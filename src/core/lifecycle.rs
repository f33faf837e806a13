//! [`Lifecycle`]: the sans-IO core. Inputs in (`handle`, `handle_timeout`), outputs out
//! (`poll_transmit`, `poll_timeout`); no sockets, no clocks, no runtime.

use std::time::Instant;

use statig::blocking::{IntoStateMachineExt, StateMachine};

use super::machine::{Dispatch, Machine, Verdict};
use crate::core::{
    CloseCause, CloseFrame, CloseRecord, Config, ConnectionId, Frame, Input, InputKind,
    MachineState, Phase, RejectReason, Rejected,
};

/// The sans-IO lifecycle of one connection: the machine, its deadlines and its close
/// record. Time is an input, the next deadline an output (the quinn-proto pattern).
///
/// Most code uses the type-state [`Connection`](crate::handle::Connection), which wraps a
/// `Lifecycle` and adds the outbox. Use `Lifecycle` directly to build a driver or to
/// test a protocol with virtual time. Its methods fall into three groups:
///
/// - **getters**: [`id`](Self::id), [`phase`](Self::phase), [`state`](Self::state),
///   [`close_record`](Self::close_record), [`check_send`](Self::check_send);
/// - **inputs**: [`handle`](Self::handle) for events,
///   [`handle_timeout`](Self::handle_timeout) when the clock passes
///   [`poll_timeout`](Self::poll_timeout);
/// - **outputs**: [`poll_transmit`](Self::poll_transmit) yields our Close frame once
///   (and records that it was sent), [`poll_timeout`](Self::poll_timeout) the next
///   deadline.
///
/// A driver loop: feed what arrived (`handle`), write what `poll_transmit` yields,
/// sleep until `poll_timeout`, call `handle_timeout(now)`, repeat until
/// [`Phase::Closed`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_lifecycle::{CloseCode, Config, ConnectionId, Frame, Phase};
/// use ws_lifecycle::core::{Input, Lifecycle};
///
/// let t0 = Instant::now();
/// let mut lc = Lifecycle::new(ConnectionId::new(1), Config::default());
/// lc.handle(Input::Accept, t0).unwrap();
/// // The readiness deadline is armed at accept (G5).
/// let deadline = lc.poll_timeout().unwrap();
/// assert_eq!(deadline, t0 + Config::default().readiness_timeout);
/// // Nobody authenticated in time: the deadline closes the connection with 1008.
/// lc.handle_timeout(deadline);
/// assert_eq!(lc.phase(), Phase::Closing);
/// match lc.poll_transmit(deadline) {
///     Some(Frame::Close(Some(frame))) => assert_eq!(frame.code(), CloseCode::POLICY_VIOLATION),
///     other => panic!("expected our Close, got {other:?}"),
/// }
/// // The peer acknowledges: the handshake is complete.
/// lc.handle(Input::PeerClose(None), deadline + Duration::from_millis(5)).unwrap();
/// assert_eq!(lc.phase(), Phase::Closed);
/// ```
#[repr(C)]
pub struct Lifecycle {
    /// The machine's state, copied out after every dispatch (the one place it
    /// changes): the hot paths — every send, every frame the driver takes, every
    /// broadcast delivery — read one byte at the start of this struct instead of
    /// reaching into the machine. `repr(C)` keeps it first, where the shared state's
    /// layout puts it on a hot cache line.
    state: MachineState,
    id: ConnectionId,
    machine: StateMachine<Machine>,
    span: tracing::Span,
}

/// The result of an accepted input: the state before and after. `from == to` means
/// "handled, no change" (a stale timer, a second close, a re-authentication).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{Input, Lifecycle, MachineState, Step};
/// use ws_lifecycle::{CloseFrame, Config, ConnectionId};
///
/// let now = Instant::now();
/// let mut lc = Lifecycle::new(ConnectionId::new(1), Config::default());
/// let step = lc.handle(Input::Accept, now)?;
/// assert_eq!(step, Step::new(MachineState::Connecting, MachineState::Accepted));
/// assert!(step.changed());
/// lc.handle(Input::Close(CloseFrame::normal()), now)?;
/// let again = lc.handle(Input::Close(CloseFrame::normal()), now)?; // the first close wins (G4)
/// assert!(!again.changed()); // handled, no change
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// The state before the input.
    pub from: MachineState,
    /// The state after the input.
    pub to: MachineState,
}

impl Step {
    /// The step from `from` to `to`.
    pub const fn new(from: MachineState, to: MachineState) -> Step {
        Step { from, to }
    }

    /// True when the input moved the machine.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("id", &self.id)
            .field("state", &self.state())
            .field("deadline", &self.poll_timeout())
            .field("close", &self.close_record())
            .finish()
    }
}

impl Lifecycle {
    /// A new lifecycle in [`Phase::Connecting`]. Creates the connection's tracing span.
    pub fn new(id: ConnectionId, config: Config) -> Lifecycle {
        let machine = Machine::new(config.readiness_timeout, config.close_timeout).state_machine();
        Lifecycle {
            state: MachineState::from_machine(machine.state()),
            id,
            machine,
            span: tracing::info_span!("ws_connection", id = %id),
        }
    }

    /// An independent copy in the same state, for simulation and model checking
    /// (exploring what each input would do from here).
    ///
    /// The copy shares nothing with the original. Never drive both against one
    /// transport: each would yield its own Close frame (deliberately not `Clone`, so
    /// that this cannot happen by accident in generic code).
    pub fn fork(&self) -> Lifecycle {
        Lifecycle {
            state: self.state,
            id: self.id,
            machine: self.machine.clone(),
            span: self.span.clone(),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The connection's tracing span (events of this connection are recorded in it).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The current phase.
    #[inline]
    pub fn phase(&self) -> Phase {
        self.state().phase()
    }

    /// The current fine-grained machine state.
    #[inline]
    pub fn state(&self) -> MachineState {
        debug_assert_eq!(
            self.state,
            MachineState::from_machine(self.machine.state()),
            "the state copy follows the machine"
        );
        self.state
    }

    /// How the connection is closing or closed; `None` while it is not.
    pub fn close_record(&self) -> Option<&CloseRecord> {
        self.machine.inner().close.as_deref()
    }

    /// The send gate (**G1**, **G3**): `Ok` only in [`Phase::Ready`]. Before `Ready`
    /// nothing may reach the peer; once a close is requested, received or forced,
    /// nothing may follow it.
    #[inline]
    pub fn check_send(&self) -> Result<(), SendRefused> {
        match self.phase() {
            Phase::Ready => Ok(()),
            Phase::Closing | Phase::Closed => Err(SendRefused::Closed),
            phase => Err(SendRefused::NotReady(phase)),
        }
    }

    /// True while application messages may still be written: in `Ready`, and while a
    /// close whose cause [flushes the queue](CloseCause::flushes_queue) — one the
    /// application or the server side asked for — writes what was queued before our
    /// Close (**G3**). After the peer's Close, an authentication failure, an expired
    /// credential or a missed deadline, our Close goes next and nothing queued is
    /// written: the peer would drop it, or must not receive it.
    #[inline]
    pub fn may_write_messages(&self) -> bool {
        match self.state() {
            MachineState::Ready => true,
            MachineState::SendingClose => {
                self.close_record().is_some_and(|r| r.cause.flushes_queue())
            }
            _ => false,
        }
    }

    /// Feeds one input at time `now`.
    ///
    /// Time is authoritative (**G5**): before any other input is dispatched, every
    /// deadline that is due at `now` fires, so a success that arrives after its
    /// deadline loses however the driver ordered the two. A timer input
    /// ([`Input::ReadinessDeadline`], [`Input::CredentialExpired`],
    /// [`Input::CloseTimeout`]) fires only if that deadline is armed and due at `now`;
    /// otherwise it is stale and absorbed, so a superseded timer (a credential that was
    /// renewed meanwhile, say) cannot close a live connection.
    ///
    /// Returns the step from the state at the call to the final state — `from == to`
    /// is "handled, no change" — or [`Rejected`] when the input is not allowed in the
    /// state it met (after any due deadline fired); a rejected input changes nothing
    /// itself. Never panics.
    pub fn handle(&mut self, input: Input, now: Instant) -> Result<Step, Rejected> {
        self.handle_as(input, now, None)
    }

    /// A close the crate raises itself, recorded with `cause` instead of
    /// [`CloseCause::Local`]; otherwise exactly `handle(Input::Close(frame), now)`.
    pub(crate) fn close_as(&mut self, frame: CloseFrame, cause: CloseCause, now: Instant) {
        let _ = self.handle_as(Input::Close(frame), now, Some(cause));
    }

    fn handle_as(
        &mut self,
        input: Input,
        now: Instant,
        close_cause: Option<CloseCause>,
    ) -> Result<Step, Rejected> {
        let from = self.state();
        let kind = input.kind();
        if let Some(deadline) = self.deadline_of(kind) {
            if deadline.is_some_and(|at| at <= now) {
                return self
                    .dispatch_as(input, now, close_cause)
                    .map(|step| Step { from, ..step });
            }
            let stale = Ok(Step { from, to: from });
            self.trace(kind, &stale);
            return stale;
        }
        while self.handle_timeout(now).is_some_and(|step| step.changed()) {}
        self.dispatch_as(input, now, close_cause)
            .map(|step| Step { from, ..step })
    }

    /// For a timer input, the deadline it stands for (`Some(None)`: not armed);
    /// `None` for every other input.
    fn deadline_of(&self, kind: InputKind) -> Option<Option<Instant>> {
        let m = self.machine.inner();
        match kind {
            InputKind::CloseTimeout => Some(m.close_deadline),
            InputKind::ReadinessDeadline => Some(m.readiness_deadline),
            InputKind::CredentialExpired => Some(m.credential_expiry),
            _ => None,
        }
    }

    /// Applies the transition relation itself: no clock, no deadline checks. This is
    /// what the transition table is read from.
    pub(crate) fn dispatch(&mut self, input: Input, now: Instant) -> Result<Step, Rejected> {
        self.dispatch_as(input, now, None)
    }

    fn dispatch_as(
        &mut self,
        input: Input,
        now: Instant,
        close_cause: Option<CloseCause>,
    ) -> Result<Step, Rejected> {
        let from = self.state();
        let kind = input.kind();
        let mut dispatch = Dispatch {
            now,
            verdict: Verdict::Unset,
            close_cause,
        };
        self.machine.handle_with_context(&input, &mut dispatch);
        self.state = MachineState::from_machine(self.machine.state());
        let to = self.state;
        let result = match dispatch.verdict {
            Verdict::Handled => Ok(Step { from, to }),
            Verdict::Rejected(reason) => Err(Rejected {
                state: from,
                input: kind,
                reason,
            }),
            // Unreachable by construction (every handler chain ends in an exhaustive
            // match); reported as a rejection rather than a panic.
            Verdict::Unset => Err(Rejected {
                state: from,
                input: kind,
                reason: RejectReason::Unhandled,
            }),
        };
        self.trace(kind, &result);
        result
    }

    /// Fires the deadline that passed first among those due at `now`, if any: the
    /// close-handshake timeout, the readiness deadline or the credential's expiry
    /// (**G5**). A driver that wakes late thus sees the cause that really came first
    /// (an expired credential before a missed readiness deadline, say). On a tie the
    /// order is close, readiness, credential. Call
    /// [`poll_timeout`](Self::poll_timeout) afterwards for the next one.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Step> {
        let m = self.machine.inner();
        let (_, input) = [
            (m.close_deadline, Input::CloseTimeout),
            (m.readiness_deadline, Input::ReadinessDeadline),
            (m.credential_expiry, Input::CredentialExpired),
        ]
        .into_iter()
        .filter_map(|(at, input)| at.filter(|at| *at <= now).map(|at| (at, input)))
        .min_by_key(|(at, _)| *at)?;
        // Timer inputs are never rejected: in a state where they do not apply they are
        // stale and absorbed.
        self.dispatch(input, now).ok()
    }

    /// The earliest armed deadline, if any: when to call
    /// [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let m = self.machine.inner();
        [m.close_deadline, m.readiness_deadline, m.credential_expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Our Close frame, once, when one is owed; it is recorded as sent. `None`
    /// otherwise. A [`Connection`](crate::handle::Connection) calls this only once no
    /// message may be written any more, so the Close is the last frame (**G3**).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        if !matches!(
            self.state(),
            MachineState::SendingClose | MachineState::ReplyingClose
        ) {
            return None;
        }
        let frame = self.close_record().and_then(|r| r.frame.clone());
        self.dispatch(Input::CloseSent, now).ok()?;
        Some(Frame::Close(frame))
    }

    fn trace(&self, kind: InputKind, result: &Result<Step, Rejected>) {
        let _entered = self.span.enter();
        match result {
            // Refusals because the connection already ended are the ordinary outcome
            // of a race with the peer or a deadline; the others are driver bugs.
            Err(rejected)
                if matches!(
                    rejected.reason,
                    RejectReason::Closing | RejectReason::Closed
                ) =>
            {
                tracing::debug!(state = %rejected.state, input = %kind, reason = %rejected.reason, "lifecycle input refused: connection ending")
            }
            Err(rejected) => tracing::warn!(
                state = %rejected.state, input = %kind, reason = %rejected.reason,
                "lifecycle input rejected"
            ),
            Ok(step) if !step.changed() => {
                tracing::trace!(state = %step.from, input = %kind, "lifecycle input absorbed")
            }
            Ok(step) => {
                let abnormal = matches!(
                    kind,
                    InputKind::AuthFailed
                        | InputKind::ReadinessDeadline
                        | InputKind::CredentialExpired
                        | InputKind::CloseTimeout
                        | InputKind::TransportLost
                );
                if abnormal {
                    tracing::info!(from = %step.from, to = %step.to, cause = %kind, "lifecycle transition");
                } else {
                    tracing::debug!(from = %step.from, to = %step.to, cause = %kind, "lifecycle transition");
                }
            }
        }
    }
}

/// Why the send gate is shut ([`Lifecycle::check_send`](crate::core::Lifecycle::check_send)).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::SendRefused;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Phase};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// assert_eq!(conn.check_send(), Err(SendRefused::NotReady(Phase::Accepted))); // G1, G2
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// assert_eq!(conn.check_send(), Ok(()));
/// let closing = conn.close(CloseFrame::normal(), now);
/// assert_eq!(closing.check_send(), Err(SendRefused::Closed)); // G3
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendRefused {
    /// Not `Ready` yet (**G1**/**G2**): wait until the connection is ready.
    #[error("connection is {0}, not ready: nothing may be sent before ready")]
    NotReady(Phase),
    /// A close was requested, received or forced (**G3**): stop sending.
    #[error("connection is closing or closed: nothing may follow the Close frame")]
    Closed,
}
