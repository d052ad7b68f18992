#!/usr/bin/env bash
# Runs all of civ's tests: installs what they need, then the workspace's
# unit, property and integration tests (fixture drivers built from source,
# the real-driver corpus, SARIF schema validation).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
cargo test --workspace --all-targets --locked
