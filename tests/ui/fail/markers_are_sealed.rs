// Sealed markers (backing G1-G3): `TypeState` cannot be implemented outside
// ws-lifecycle, so no user-defined state can reach `send` or skip a step.
use ws_lifecycle::handle::TypeState;

struct MyState;

impl TypeState for MyState {
    const NAME: &'static str = "MyState";
}

fn main() {}
