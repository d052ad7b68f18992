#!/usr/bin/env bash
# Runs all of civ's tests: installs what they need (scripts/setup.sh), then
#  - the workspace's unit, property and integration tests: the engine, the
#    fixture drivers built from source, the real-driver corpus, SARIF schema
#    validation, and civ.sys end to end under Wine;
#  - the loom model of the violation log;
#  - Miri over the engine's unit tests (its unsafe code and atomics).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"

echo "== cargo test (workspace, Wine end to end included)"
cargo test --workspace --all-targets --locked

echo "== loom: the violation log under every interleaving"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$root/target/loom" \
  cargo test --locked -p civ-engine --test loom_log --release

echo "== miri: the engine's unit tests"
CARGO_TARGET_DIR="$root/target/miri" cargo +nightly miri test --locked -p civ-engine --lib
