// Uninhabited markers (backing G1-G3): the type states are empty enums, so no value
// of a marker can be made; a state is reached only through the transitions.
fn main() {
    let _ = ws_lifecycle::Ready;
}
