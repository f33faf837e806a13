//! What every handle on the shared state has in common: construction from the shared
//! `Arc`, the connection's id and lock-free phase, and a `Debug` that shows both.

/// Implements the common part of a handle struct with one field, `shared`.
macro_rules! shared_handle {
    ($name:ident) => {
        impl $name {
            pub(crate) fn new(shared: $crate::shared::sync::Arc<$crate::shared::Shared>) -> $name {
                $name { shared }
            }

            /// The connection's id.
            pub fn id(&self) -> $crate::core::ConnectionId {
                self.shared.id()
            }

            /// The connection's phase, read without a lock (published under the lock
            /// after every change of state).
            pub fn phase(&self) -> $crate::core::Phase {
                self.shared.phase()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("id", &self.shared.id())
                    .field("phase", &self.shared.phase())
                    .finish()
            }
        }
    };
}

pub(crate) use shared_handle;
