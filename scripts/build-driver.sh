#!/usr/bin/env bash
# The portable WDM civ.sys, built here with rust-lld (no WDK): target/civ.sys.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx x86_64-pc-windows-msvc || rustup target add x86_64-pc-windows-msvc
cargo wdm
cp target/x86_64-pc-windows-msvc/release/civ.dll target/civ.sys
echo "target/civ.sys"
