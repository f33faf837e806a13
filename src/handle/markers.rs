//! The type-state markers: zero-sized, sealed, one per step of the lifecycle.

mod sealed {
    pub trait Sealed {}
}

/// A lifecycle type state: implemented by [`Connecting`], [`Accepted`],
/// [`Authenticated`], [`Ready`] and [`Closing`] only (sealed).
///
/// The markers are types, never values: they exist only in `Connection<S>`.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::handle::TypeState;
/// use ws_lifecycle::{Accepted, Config, Connection, ConnectionId};
///
/// assert_eq!(<Accepted as TypeState>::NAME, "Accepted");
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(Instant::now())?;
/// assert!(format!("{conn:?}").contains(r#"type_state: "Accepted""#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Sealed: no type outside the crate can be a step of the lifecycle.
///
/// ```compile_fail,E0277
/// use ws_lifecycle::handle::TypeState;
///
/// enum Paused {}
/// impl TypeState for Paused {
///     const NAME: &'static str = "Paused";
/// }
/// ```
pub trait TypeState: sealed::Sealed + Send + Sync + 'static {
    /// The name, for `Debug` output.
    const NAME: &'static str;
}

macro_rules! marker {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {}
        impl sealed::Sealed for $name {}
        impl TypeState for $name {
            const NAME: &'static str = stringify!($name);
        }
    };
}

marker!(
    /// (type state) The upgrade request arrived; the handshake is not accepted.
    ///
    /// Allows: [`accept`](crate::handle::Connection::accept) to take the handshake, or
    /// [`close`](crate::handle::Connection::close) to refuse it (no Close frame is sent).
    /// Nothing can be sent (**G1**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseFrame, Config, Connecting, Connection, ConnectionId};
    ///
    /// let conn: Connection<Connecting> = Connection::new(ConnectionId::new(1), Config::default());
    /// let mut refused = conn.close(CloseFrame::normal(), Instant::now()); // refuse the upgrade
    /// assert!(refused.is_closed());
    /// assert_eq!(refused.poll_transmit(Instant::now()), None); // no WebSocket, no Close frame
    /// ```
    Connecting
);
marker!(
    /// (type state) The handshake is accepted; the peer is not authenticated.
    ///
    /// Allows: [`authenticate`](crate::handle::Connection::authenticate) when the credential
    /// checks out, [`reject`](crate::handle::Connection::reject) when it does not (1008), or
    /// `close`. The readiness deadline is running (**G5**). Nothing can be sent.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Accepted, CloseCode, Config, Connection, ConnectionId, Frame};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default());
    /// let conn: Connection<Accepted> = conn.accept(now)?;
    /// let mut closing = conn.reject(now); // the credential was refused
    /// let frame = closing.poll_transmit(now);
    /// assert!(matches!(frame, Some(Frame::Close(Some(f))) if f.code() == CloseCode::POLICY_VIOLATION));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Accepted
);
marker!(
    /// (type state) The peer is authenticated; the application's services are not
    /// ready.
    ///
    /// Allows: [`ready`](crate::handle::Connection::ready) once services are ready, or
    /// `close`. The readiness deadline is still running (**G5**). Nothing can be sent
    /// (**G2**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Authenticated, Config, Connection, ConnectionId, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let conn: Connection<Authenticated> = conn.authenticate(None, now)?;
    /// conn.emitter().emit(Message::text("history"))?; // buffered for Ready (G2)
    /// assert_eq!(conn.transport().next_frame(now), None); // nothing reaches the peer yet
    /// let _ready = conn.ready(now)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Authenticated
);
marker!(
    /// (type state) Messages flow.
    ///
    /// Allows: [`send`](crate::handle::Connection::send), re-authentication
    /// ([`reauthenticate`](crate::handle::Connection::reauthenticate)), and `close`. `send`
    /// can still fail at run time if the peer closed meanwhile (**G3**): the message
    /// comes back in the error.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Message, Ready};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let mut conn: Connection<Ready> = conn.authenticate(None, now)?.ready(now)?;
    /// conn.send(Message::text("hi"))?;
    /// conn.reauthenticate(Some(now + Duration::from_secs(3600)), now)?; // a refreshed token
    /// assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(3600)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Ready
);
marker!(
    /// (type state) A close was requested, received or forced.
    ///
    /// Allows only driving the close handshake to its end (`poll_transmit`,
    /// `handle_*`, `handle_timeout`) and reading the
    /// [`close_record`](crate::handle::Connection::close_record). Nothing can be sent (**G3**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseFrame, Closing, Config, Connection, ConnectionId, Frame};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let mut closing: Connection<Closing> = conn.close(CloseFrame::normal(), now);
    /// assert!(matches!(closing.poll_transmit(now), Some(Frame::Close(_))));
    /// closing.handle_peer_close(None, now)?; // the peer's acknowledgement
    /// assert!(closing.is_closed()); // drop it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Closing
);
