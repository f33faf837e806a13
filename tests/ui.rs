//! Compile-time checks of the type-state API (trybuild UI tests).

/// The type-state handles make the wrong order fail to compile.
///
/// - **G1 accept-first**: `send` does not exist on `Connection<Connecting>`,
///   `Connection<Accepted>` or `Connection<Authenticated>` (**G2** ready-gating for
///   the last), and a transition consumes the handle, so a stale handle cannot be
///   used.
/// - **G3 close-gating**: `send` does not exist on `Connection<Closing>`, and `close`
///   consumes the `Connection<Ready>`, so nothing can be sent through it afterwards.
/// - The markers are sealed and uninhabited: no other type state can be added and no
///   marker value can be made.
///
/// `tests/ui/pass` holds the positive case: the full path to `Ready`, then `send`.
#[test]
fn type_state_ui_g1() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
