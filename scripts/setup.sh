#!/usr/bin/env bash
# Installs what civ's build and tests need on a fresh Debian machine with
# rustup: the Windows targets, C toolchains, Wine (the host's, and Debian
# 13's Wine 10 in a chroot), and the test data (real driver corpus, SARIF
# schema). Idempotent: each step is skipped when done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# Fixture drivers are linked for the MSVC targets with rust-lld (x64, and
# ARM64 for the ARM64 prediction fixtures); civctl.exe is cross-compiled
# for the GNU target (linked by mingw-w64's gcc, below) and run under Wine.
installed=$(rustup target list --installed)
for t in x86_64-pc-windows-msvc aarch64-pc-windows-msvc x86_64-pc-windows-gnu; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt
# Miri (over the engine's unsafe code) and cargo-fuzz need nightly.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly component list --installed | grep -q '^miri' || rustup +nightly component add miri rust-src

# C fixture drivers: clang, lld-link and llvm-dlltool (CodeView, so a PDB),
# and mingw-w64 gcc (no PDB). Debian's packages, installed only if missing.
need=()
command -v clang >/dev/null || need+=(clang)
command -v lld-link >/dev/null || need+=(lld)
command -v llvm-dlltool >/dev/null || need+=(llvm)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
# Wine (Debian's 8.0) runs civ.sys and the fixture drivers end to end.
command -v wine >/dev/null || need+=(wine64 wine)
command -v wineboot >/dev/null || need+=(wine64 wine)
# Debian 13's Wine 10 (more of the catalog's APIs) runs in a chroot that
# scripts/wine10.sh makes with debootstrap.
[ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null || need+=(debootstrap)
# civctl audit's tests: hivexsh writes the offline SYSTEM hives; osslsigncode
# and openssl check the Authenticode hashes and certificates independently.
command -v hivexsh >/dev/null || need+=(libhivex-bin)
command -v osslsigncode >/dev/null || need+=(osslsigncode)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

"$root/scripts/fetch-test-data.sh"

# The Wine 10 chroot, cached in ~/.cache/civ-wine10 (a few minutes the first
# time, then instant). It needs root; without it tests/tests/wine10_rows.rs
# fails and says why, and the other tests still run.
if [ "$(id -u)" -eq 0 ]; then
  "$root/scripts/wine10.sh" >/dev/null ||
    echo "setup.sh: warning: no Wine 10 chroot (above); tests/tests/wine10_rows.rs will fail" >&2
else
  echo "setup.sh: warning: not root, so no Wine 10 chroot; tests/tests/wine10_rows.rs will fail" >&2
fi
