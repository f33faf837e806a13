#!/usr/bin/env bash
# The whole suite, as CI runs it (.ci/run calls this script and nothing else).
#
#   scripts/check.sh
#
# Steps: formatting, clippy (-D warnings, all targets and features), every test
# (unit, integration, trybuild UI, bounded-exhaustive, proptest, doctests), and the
# API docs with warnings denied. Later layers add loom and the SPIN model check here.
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
step test cargo test --all-features
step doc env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
echo "==> all checks passed"
