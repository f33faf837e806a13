//! [`Effects`]: what an operation on a [`Conn`](crate::core::Conn) changed, for the
//! layer above to act on (wake a driver, a sender waiting for room, a reader).

use std::fmt;

/// What operations on a [`Conn`](crate::core::Conn) changed since the effects were
/// last taken ([`Conn::take_effects`](crate::core::Conn::take_effects)).
///
/// The sans-IO core has no wakers: it records what changed, and whoever runs it — the
/// crate's shared state, or a driver of one's own — wakes whoever waits for that
/// (**G6**). A set of flags; [`Effects::NONE`] is the empty set.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{Config, Conn, ConnectionId, Effects, Input, Message};
///
/// let now = Instant::now();
/// let mut conn = Conn::new(ConnectionId::new(1), Config::default());
/// conn.handle(Input::Accept, now)?;
/// assert!(conn.take_effects().contains(Effects::STATE));
/// conn.emit(Message::text("early"))?; // buffered until Ready (G2): nothing to write yet
/// assert_eq!(conn.take_effects(), Effects::NONE);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[must_use = "effects say whom to wake"]
pub struct Effects(u8);

impl Effects {
    /// Nothing changed.
    pub const NONE: Effects = Effects(0);
    /// The machine changed state: every waiter re-checks (the phase, what may be
    /// written and the deadlines may all have changed).
    pub const STATE: Effects = Effects(1);
    /// Something for the driver: a message was queued, or a close was requested that
    /// the driver's next call with the time applies.
    pub const TRANSMIT: Effects = Effects(1 << 1);
    /// The next deadline moved without a change of state (a re-authentication moved
    /// the credential's expiry): the driver re-reads `poll_timeout` (**G5**).
    pub const DEADLINE: Effects = Effects(1 << 2);
    /// The outbox went from full to not full, a message was taken after one was
    /// refused for the byte budget ([`Config::outbox_bytes`](crate::Config::outbox_bytes)),
    /// or the send gate shut: senders waiting for room re-check.
    pub const ROOM: Effects = Effects(1 << 3);
    /// An application message arrived in an empty inbound hold of a `Ready`
    /// connection: a reader has something to read.
    pub const INBOUND: Effects = Effects(1 << 4);
    /// The application took a message from the inbound hold: the driver, if it waits
    /// for room there, may hand over the next one.
    pub const INBOUND_ROOM: Effects = Effects(1 << 5);

    const NAMES: [(Effects, &'static str); 6] = [
        (Effects::STATE, "STATE"),
        (Effects::TRANSMIT, "TRANSMIT"),
        (Effects::DEADLINE, "DEADLINE"),
        (Effects::ROOM, "ROOM"),
        (Effects::INBOUND, "INBOUND"),
        (Effects::INBOUND_ROOM, "INBOUND_ROOM"),
    ];

    /// True when every flag of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: Effects) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no flag is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets together.
    #[inline]
    pub const fn union(self, other: Effects) -> Effects {
        Effects(self.0 | other.0)
    }
}

impl std::ops::BitOr for Effects {
    type Output = Effects;
    fn bitor(self, other: Effects) -> Effects {
        self.union(other)
    }
}

impl std::ops::BitOrAssign for Effects {
    fn bitor_assign(&mut self, other: Effects) {
        *self = self.union(other);
    }
}

impl fmt::Debug for Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        for (flag, name) in Effects::NAMES {
            if self.contains(flag) {
                set.entry(&format_args!("{name}"));
            }
        }
        set.finish()
    }
}
