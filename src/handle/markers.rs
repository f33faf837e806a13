//! The type-state markers: zero-sized, sealed, one per step of the lifecycle.

mod sealed {
    pub trait Sealed {}
}

/// A lifecycle type state: implemented by [`Connecting`], [`Accepted`],
/// [`Authenticated`], [`Ready`] and [`Closing`] only (sealed).
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
    Connecting
);
marker!(
    /// (type state) The handshake is accepted; the peer is not authenticated.
    ///
    /// Allows: [`authenticate`](crate::handle::Connection::authenticate) when the credential
    /// checks out, [`reject`](crate::handle::Connection::reject) when it does not (1008), or
    /// `close`. The readiness deadline is running (**G5**). Nothing can be sent.
    Accepted
);
marker!(
    /// (type state) The peer is authenticated; the application's services are not
    /// ready.
    ///
    /// Allows: [`ready`](crate::handle::Connection::ready) once services are ready, or
    /// `close`. The readiness deadline is still running (**G5**). Nothing can be sent
    /// (**G2**).
    Authenticated
);
marker!(
    /// (type state) Messages flow.
    ///
    /// Allows: [`send`](crate::handle::Connection::send), re-authentication
    /// ([`reauthenticate`](crate::handle::Connection::reauthenticate)), and `close`. `send`
    /// can still fail at run time if the peer closed meanwhile (**G3**): the message
    /// comes back in the error.
    Ready
);
marker!(
    /// (type state) A close was requested, received or forced.
    ///
    /// Allows only driving the close handshake to its end (`poll_transmit`,
    /// `handle_*`, `handle_timeout`) and reading the
    /// [`close_record`](crate::handle::Connection::close_record). Nothing can be sent (**G3**).
    Closing
);
