//! Layer 1, the sans-IO core: no locks, no wakers, no sockets, no runtime. Time is an
//! input (`now`), the next deadline an output (`poll_timeout`).
//!
//! - the lifecycle: [`Phase`], [`MachineState`], [`Input`], the machine (statig,
//!   private) and its [`transition_table`], [`Lifecycle`];
//! - closes: [`CloseCode`], [`CloseFrame`], [`CloseRecord`] and the one table of
//!   the closes the crate raises itself;
//! - the connection proper: the lifecycle plus its outbox, pre-ready buffer and
//!   inbound hold, whose operations return what changed.

mod close;
mod closes;
mod config;
mod conn;
mod effects;
mod id;
mod input;
mod lifecycle;
mod machine;
mod message;
pub(crate) mod names;
mod outbox;
mod phase;
mod record;
mod rejected;
mod state;
mod table;

pub use close::{CloseClass, CloseCode, CloseFrame, InvalidCloseFrame};
pub use closes::CrateClose;
pub use config::{Config, OverflowPolicy};
pub use conn::{Conn, InboundError, SendError, SendErrorKind};
pub use effects::Effects;
pub use id::ConnectionId;
pub use input::{Input, InputKind, TransportLoss};
pub use lifecycle::{Lifecycle, SendRefused, Step};
pub use message::{Frame, Message};
pub use phase::{Phase, UnknownPhase};
pub use record::{CloseCause, CloseEnd, CloseRecord};
pub use rejected::{RejectReason, Rejected};
pub use state::MachineState;
pub use table::{Outcome, TableRow, transition_table};

pub(crate) use outbox::Outbox;
