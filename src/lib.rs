//! # ws-lifecycle
//!
//! A WebSocket connection lifecycle that is correct by construction: the wrong order
//! does not compile where the type system can prevent it, and every (state, input)
//! pair has one defined, tested outcome where it cannot.
//!
//! ```
//! use std::time::Instant;
//! use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message};
//!
//! let now = Instant::now();
//! let conn = Connection::new(ConnectionId::new(1), Config::default()) // Connecting
//!     .accept(now)?                                                   // Accepted
//!     .authenticate(None, now)?;                                      // Authenticated
//! let mut conn = conn.ready(now)?;                                    // Ready
//! conn.send(Message::text("welcome"))?;            // `send` exists only on Ready (G1)
//! let mut closing = conn.close(CloseFrame::normal(), now); // consumes `conn`
//! assert_eq!(closing.poll_transmit(now), Some(Frame::Message(Message::text("welcome"))));
//! assert!(matches!(closing.poll_transmit(now), Some(Frame::Close(_)))); // always last (G3)
//! assert_eq!(closing.poll_transmit(now), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The lifecycle
//!
//! ```text
//! Connecting ──accept──▶ Accepted ──auth ok──▶ Authenticated ──services ready──▶ Ready
//!      │                    │                        │                              │
//!      └────────────────────┴──── close (local or peer), auth failure, deadline ────┴──▶ Closing ──▶ Closed
//! ```
//!
//! (Simplified: before `accept`, a close refuses the upgrade and goes straight to
//! `Closed` with no Close frame; a lost transport goes straight to `Closed` from any
//! state. The generated table below is exact.)
//!
//! `Accepted`, `Authenticated` and `Ready` form the *open* superstate, which handles
//! a close request, a peer Close or a transport loss once for all three. `Accepted`
//! and `Authenticated` form the *handshake* superstate, which owns the readiness
//! deadline. `Closing` has three sub-states, by which Close frames are still owed.
//! The complete relation, generated from the machine by a test (`tests/table.rs`):
//!
#![doc = include_str!("../docs/transitions.md")]
//!
//! ## Guarantees
//!
//! Each is named in the code that upholds it and in the tests that check it
//! (`grep G3` tells one guarantee's whole story; see [`docs/guarantees.md`]).
//!
//! - **G1 accept-first**: nothing is sent before the handshake is accepted; `send`
//!   does not compile on a handle that is not `Ready`.
//! - **G2 ready-gating**: no application message reaches the peer before `Ready`.
//! - **G3 close-gating**: once a close is requested, `send` is refused; no data frame
//!   follows our Close; a message that will not be written is handed back (in
//!   `SendError`, or by `take_unsent`), never dropped by the crate.
//! - **G4 single close**: one Close frame; the first close's code and cause win.
//! - **G5 deadlines**: readiness deadline (1008), credential expiry (1008) and the
//!   close-handshake timeout; a deadline racing its success has one winner, decided
//!   by the time each input carries.
//! - **G6 no lost wakeups**: every task waiting for readiness, closure, room or a
//!   frame is woken by the change it waits for.
//! - **G7 registry consistency**: a [`Registry`] lists a connection until it is
//!   `Closed`; a broadcast reaches exactly the connections `Ready` at its
//!   linearization point; dropping a [`Registration`] unlists its connection.
//! - **G8 startup gating**: before [`Registry::open`], connections are held (bounded)
//!   or refused with 1013, never routed; [`Registry::drain`] closes everyone with
//!   1001 within a bound.
//! - **G9 wire stability**: serialized forms are snapshot-tested.
//!
//! ## Map of the crate
//!
//! The modules are the layers; each imports only from the layers above it in this
//! list, and the root re-exports the everyday path (marked *root*).
//!
//! | layer | module | what is there |
//! |---|---|---|
//! | 1. sans-IO core | [`core`] | [`core::Conn`] (the connection: lifecycle, outbox, pre-ready buffer, inbound hold, overflow policy; records [`core::Effects`]), [`core::Lifecycle`], [`Phase`] *root*, [`core::MachineState`], [`core::Input`], [`core::transition_table`], [`CloseCode`] *root*, [`CloseFrame`] *root*, [`CloseRecord`] *root*, [`core::CloseCause`], [`core::CrateClose`] (the closes the crate raises itself), [`Config`] *root*, [`Message`] *root*, [`Frame`] *root*, [`ConnectionId`] *root*, [`SendError`] *root* |
//! | 2. shared state | (private) | one `Conn` behind one lock, the wakers, the waits; loom's primitives under `cfg(loom)` |
//! | 3. handles | [`handle`] | [`Connection`] *root* and its markers [`Connecting`], [`Accepted`], [`Authenticated`], [`Ready`], [`Closing`] *root*; [`handle::AnyConnection`]; [`Sender`], [`Emitter`], [`Receiver`], [`Observer`], [`Transport`], [`Gone`] *root*; [`handle::WaitError`] |
//! | 4. registry | [`registry`] | [`Registry`], [`Registration`], [`RegistryConfig`] *root*; [`registry::StartupPolicy`], [`registry::BroadcastReport`], [`registry::DeliveryReport`] (names the refused), [`registry::Audience`], [`registry::SendToError`], [`registry::RegistrySnapshot`], [`registry::RegistryError`], … |
//! | 5. driver (feature `tokio`) | `driver` | `Service`, `Handler`, `Authenticator`, `Identity`, `Session`, `DriverConfig` *root*; `driver::Closed` (record + unsent messages), `driver::Admission`, `driver::UpgradeRequest`, `driver::UpgradeVerdict`, `driver::Refusal`, `driver::AtUpgrade`, `driver::Public`, `driver::AuthRequest`, `driver::SocketConfig`, `driver::WireFrame`, `driver::SocketError` (how a socket's read error closes: 1002, 1007, 1009 or a lost transport) |
//! | 6. adapters | `axum` (feature `axum`), `tungstenite` (feature `tungstenite`) | the driver behind an axum route or a raw tokio stream, one shape for both: check the upgrade and authenticate before the `101` (a refusal is an HTTP answer), answer with the subprotocol, run on the crate's own framing (shared payloads written in place, no buffer while idle, size limits at each frame's header, tighter before authentication), return the `Closed` connection |
//! | 6. adapters | `cluster` (feature `redis`) | the registry joined to other nodes over Redis: broadcast, user and group sends reach every node's `Ready` connections in each publisher's order, presence with a TTL, local delivery never waiting on Redis (docs/cluster.md) |
//!
//! The repository's [`docs/architecture.md`] draws the same map file by file.
//!
//! ## Many tasks, one connection
//!
//! A connection's state lives in one place, behind one lock, and every handle points
//! at it: the owner's `Connection<S>`, any number of [`Sender`]s, [`Emitter`]s,
//! [`Observer`]s and [`Receiver`]s, and the driver's [`Transport`]. "Check the phase
//! and enqueue" and "start the close and owe the Close frame" are atomic with respect
//! to each other, so a send racing a close is written before the Close or handed back
//! (G3). Built with `--cfg loom`, that lock is loom's, and the races are checked in
//! `loom_tests/` — and in a user's own loom models ([`docs/loom.md`]).
//!
//! ```
//! use std::time::Instant;
//! use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message};
//!
//! let now = Instant::now();
//! let conn = Connection::new(ConnectionId::new(1), Config::default());
//! let transport = conn.transport(); // for the driver task
//! let conn = conn.accept(now)?;
//! conn.emitter().emit(Message::text("history"))?; // buffered until ready (G2)
//! let conn = conn.authenticate(None, now)?.ready(now)?;
//! let sender = conn.sender(); // cloneable, Send + Sync
//! std::thread::spawn(move || sender.send(Message::text("live"))).join().unwrap()?;
//! assert_eq!(transport.next_frame(now), Some(Frame::Message(Message::text("history"))));
//! assert_eq!(transport.next_frame(now), Some(Frame::Message(Message::text("live"))));
//! let _closing = conn.close(CloseFrame::normal(), now);
//! assert!(matches!(transport.next_frame(now), Some(Frame::Close(_))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Many connections, one registry
//!
//! A [`Registry`] is where a server finds its live connections: by id, by user (all
//! their devices), by group. It lists a connection from [`Registry::register`] (at
//! accept) until `Closed`, broadcasts only to connections that are `Ready`, holds or
//! refuses connections that arrive before [`Registry::open`], and drains everything
//! with 1001 at shutdown. See [`Registry`] and [`docs/registry.md`].
//!
//! [`docs/guarantees.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/guarantees.md
//! [`docs/architecture.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/architecture.md
//! [`docs/loom.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/loom.md
//! [`docs/registry.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/registry.md
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adapters;
pub mod core;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod driver;
pub mod handle;
pub mod registry;
mod shared;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use adapters::axum;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use adapters::cluster;
#[cfg(feature = "tungstenite")]
#[cfg_attr(docsrs, doc(cfg(feature = "tungstenite")))]
pub use adapters::tungstenite;

// The everyday path, at the root; everything else in the module of its layer.
pub use crate::core::{
    CloseCode, CloseFrame, CloseRecord, Config, ConnectionId, Frame, Message, Phase, SendError,
};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use driver::{Authenticator, DriverConfig, Handler, Identity, Service, Session};
pub use handle::{
    Accepted, Authenticated, Closing, Connecting, Connection, Emitter, Gone, Observer, Ready,
    Receiver, Sender, Transport,
};
pub use registry::{Registration, Registry, RegistryConfig};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
