//! [`MachineState`]: the machine's fine-grained state; [`Phase`] is the coarse view.

use serde::{Deserialize, Serialize};

use super::machine::State;
use super::{InputKind, Phase};

crate::core::names::named! {
    /// The machine's fine-grained state. [`Phase`] is the coarse view of it.
    ///
    /// Serde form: the snake-case name, e.g. `"awaiting_peer_close"` (**G9**).
    ///
    /// Deliberately exhaustive (not `#[non_exhaustive]`): the states are the
    /// transition relation itself; a new state would change the table, the SPIN
    /// model and every snapshot, a breaking release whatever the attribute says, and
    /// downstream model checkers rely on matching every state.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::MachineState;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Phase};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let mut closing = conn.close(CloseFrame::normal(), now);
    /// assert_eq!(closing.state(), MachineState::SendingClose); // our Close is owed
    /// closing.poll_transmit(now);
    /// assert_eq!(closing.state(), MachineState::AwaitingPeerClose); // it is out
    /// assert_eq!(closing.state().phase(), Phase::Closing); // both read as Closing
    /// assert_eq!(MachineState::AwaitingPeerClose.to_string(), "awaiting_peer_close");
    /// let json = serde_json::to_string(&MachineState::AwaitingPeerClose)?;
    /// assert_eq!(json, r#""awaiting_peer_close""#); // G9
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum MachineState {
        /// [`Phase::Connecting`].
        Connecting => "connecting",
        /// [`Phase::Accepted`].
        Accepted => "accepted",
        /// [`Phase::Authenticated`].
        Authenticated => "authenticated",
        /// [`Phase::Ready`].
        Ready => "ready",
        /// [`Phase::Closing`]: our Close is owed; the peer's has not arrived.
        SendingClose => "sending_close",
        /// [`Phase::Closing`]: our Close is out; waiting for the peer's (its
        /// acknowledgement) or the close timeout.
        AwaitingPeerClose => "awaiting_peer_close",
        /// [`Phase::Closing`]: the peer's Close arrived; our answer is owed.
        ReplyingClose => "replying_close",
        /// [`Phase::Closed`].
        Closed => "closed",
    }
}

impl MachineState {
    /// Every state, in lifecycle order.
    pub const ALL: [MachineState; 8] = [
        MachineState::Connecting,
        MachineState::Accepted,
        MachineState::Authenticated,
        MachineState::Ready,
        MachineState::SendingClose,
        MachineState::AwaitingPeerClose,
        MachineState::ReplyingClose,
        MachineState::Closed,
    ];

    /// The phase this state belongs to.
    pub const fn phase(self) -> Phase {
        match self {
            MachineState::Connecting => Phase::Connecting,
            MachineState::Accepted => Phase::Accepted,
            MachineState::Authenticated => Phase::Authenticated,
            MachineState::Ready => Phase::Ready,
            MachineState::SendingClose
            | MachineState::AwaitingPeerClose
            | MachineState::ReplyingClose => Phase::Closing,
            MachineState::Closed => Phase::Closed,
        }
    }

    pub(crate) fn from_machine(state: &State) -> MachineState {
        match state {
            State::Connecting {} => MachineState::Connecting,
            State::Accepted {} => MachineState::Accepted,
            State::Authenticated {} => MachineState::Authenticated,
            State::Ready {} => MachineState::Ready,
            State::SendingClose {} => MachineState::SendingClose,
            State::AwaitingPeerClose {} => MachineState::AwaitingPeerClose,
            State::ReplyingClose {} => MachineState::ReplyingClose,
            State::Closed {} => MachineState::Closed,
        }
    }

    /// The shortest input path from a new connection to this state; the table is
    /// read by following it and then applying each input.
    pub(super) fn path(self) -> &'static [InputKind] {
        use InputKind::*;
        match self {
            MachineState::Connecting => &[],
            MachineState::Accepted => &[Accept],
            MachineState::Authenticated => &[Accept, AuthSucceeded],
            MachineState::Ready => &[Accept, AuthSucceeded, ServicesReady],
            MachineState::SendingClose => &[Accept, Close],
            MachineState::AwaitingPeerClose => &[Accept, Close, CloseSent],
            MachineState::ReplyingClose => &[Accept, PeerClose],
            MachineState::Closed => &[TransportLost],
        }
    }
}

impl std::fmt::Display for MachineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}
