//! Layer 3, the handles: the type-state [`Connection<S>`](Connection) and its markers,
//! [`AnyConnection`], and the shared-state handles [`Sender`], [`Emitter`],
//! [`Receiver`], [`Observer`] and [`Transport`], each with its own errors.

mod any;
mod common;
mod connection;
mod emitter;
mod gone;
mod markers;
mod observer;
mod receiver;
mod sender;
mod transport;

pub use any::AnyConnection;
pub use connection::{Authorized, Connection, Live, PreReady};
pub use emitter::Emitter;
pub use gone::Gone;
pub use markers::{Accepted, Authenticated, Closing, Connecting, Ready, TypeState};
pub use observer::{Observer, WaitError};
pub use receiver::Receiver;
pub use sender::Sender;
pub use transport::Transport;
