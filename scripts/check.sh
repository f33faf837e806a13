#!/usr/bin/env bash
# The whole suite, as CI runs it (.ci/run calls this script and nothing else).
#
#   scripts/check.sh
#
# Steps: formatting, clippy (-D warnings, all targets and features, and the loom
# build), every test (unit, integration, trybuild UI, bounded-exhaustive, proptest,
# threads, doctests), the Autobahn TestSuite's quick subset against the echo example
# on both adapters (needs Python 2.7 through pyenv, and the suite, which .ci/run
# installs), the loom models (release, own target dir, preemption bound 3), the SPIN
# model check (every LTL property, then every deliberately broken variant must be
# caught; needs spin and gcc, which .ci/run installs), the API docs with warnings
# denied, the library on the minimum Rust version (1.85.0, which .ci/run installs)
# and the packaged crate.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    local name=$1
    shift
    echo "==> $name: $*"
    local start=$SECONDS
    "$@"
    echo "==> $name: ok ($((SECONDS - start)) s)"
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets --all-features -- -D warnings
# The core without the driver: builds, and pulls in no tokio (the loom build, which
# tokio does not support, relies on it).
step core-without-tokio bash -c 'cargo build --no-default-features &&
    ! cargo tree -e normal --no-default-features | grep -q tokio'
step clippy-loom env RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target-loom \
    cargo clippy --release --no-default-features --test loom -- -D warnings
step test cargo test --all-features
# RFC 6455 conformance on the wire: the Autobahn TestSuite's quick subset against
# examples/echo.rs on each adapter (docs/conformance.md; the full run is
# `bash scripts/autobahn.sh`).
step autobahn bash scripts/autobahn.sh --quick
step loom env RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
    CARGO_TARGET_DIR=target-loom cargo test --release --no-default-features --test loom
step model bash model/check.sh
step model-broken bash model/check.sh --broken
step doc env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
# The core alone, as a dependent without features builds its docs: no link into a
# feature-gated layer.
step doc-core env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
# The declared minimum Rust version (`rust-version` in Cargo.toml), with no and with
# every feature (.ci/run installs the 1.85.0 toolchain when missing; its own target
# directory, as the loom build has).
step msrv env CARGO_TARGET_DIR=target-msrv bash -c 'cargo +1.85.0 check --lib --quiet &&
    cargo +1.85.0 check --lib --all-features --quiet'
# The published crate: only the source and what `include_str!` needs, and it builds.
step package cargo package --allow-dirty --quiet
echo "==> all checks passed"
