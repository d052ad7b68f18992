#!/usr/bin/env bash
# Installs what civ's build and tests need on a fresh Debian machine with
# rustup: the Windows targets, and the test data (real driver corpus, SARIF
# schema). Idempotent: each step is skipped when already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# Fixture drivers are linked for the MSVC target with rust-lld.
installed=$(rustup target list --installed)
for t in x86_64-pc-windows-msvc; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

"$root/scripts/fetch-test-data.sh"
