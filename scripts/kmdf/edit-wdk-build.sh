#!/usr/bin/env bash
# Edits a scratch copy of wdk-build (the crates.io source, given as $1) so
# that it builds on a Linux host, for scripts/kmdf-check.sh. Never run it on
# cargo's registry itself. Four places keep wdk-build Windows-only:
#  1. the `windows` crate (registry access) is an unconditional dependency;
#  2. utils.rs looks the WDK up in the Windows registry;
#  3. utils.rs' set_var/remove_var are a compile_error! off Windows;
#  4. cargo_make.rs makes its makefile symlink with std::os::windows.
# (The crate's sources have CRLF line ends.) Each edit must apply exactly as expected: a new wdk-build that moved
# these places stops the script instead of building something else.
set -euo pipefail
dir=${1:?usage: edit-wdk-build.sh <copy of wdk-build>}
case "$dir" in
  "${CARGO_HOME:-$HOME/.cargo}"/registry/*) echo "edit-wdk-build: refusing to edit cargo's registry ($dir)" >&2; exit 1 ;;
esac

# edit FILE EXPECTED_COUNT PERL_SUBSTITUTION: applies a global substitution
# and checks how many times it matched.
edit() {
  local file="$dir/$1" want=$2 expr=$3 got
  got=$(perl -0777 -i -pe "\$n += ($expr); END { print STDERR \$n + 0 }" "$file" 2>&1 >/dev/null) || true
  if [ "$got" != "$want" ]; then
    echo "edit-wdk-build: $1: expected $want match(es), found ${got:-none} for: $expr" >&2
    echo "edit-wdk-build: this wdk-build differs from the one the edits were written for" >&2
    exit 1
  fi
}

# 1. The windows crate only on Windows.
edit Cargo.toml 1 's/^\[dependencies\.windows\]$/[target.\x27cfg(windows)\x27.dependencies.windows]/mg'
# 2. The registry lookup only on Windows (WDKContentRoot is what the check sets).
edit src/utils.rs 1 's/^use windows::\{/#[cfg(windows)]\nuse windows::{/mg'
edit src/utils.rs 1 's/^fn read_registry_key_string_value\(/#[cfg(windows)]\nfn read_registry_key_string_value(/mg'
edit src/utils.rs 2 's/^(\s*)if let Some\(path\) = read_registry_key_string_value\(/$1#[cfg(windows)]\n$1if let Some(path) = read_registry_key_string_value(/mg'
edit src/utils.rs 1 's/^use std::\{\r?\n    env,\r?\n    ffi::\{CStr, OsStr\},/#[cfg_attr(not(windows), allow(unused_imports))]\n$&/mg'
# 3. set_var/remove_var real on every host (build scripts and cargo-make
# scripts set variables before they start threads).
edit src/utils.rs 2 's/^#\[cfg\(target_os = "windows"\)\]\r?\n(pub fn (?:set|remove)_var)/#[cfg(all())]\n$1/mg'
edit src/utils.rs 2 's/^#\[cfg\(not\(target_os = "windows"\)\)\]\r?\n(pub fn (?:set|remove)_var)/#[cfg(any())]\n$1/mg'
# 4. A Unix symlink where cargo-make's makefile link is made.
edit src/cargo_make.rs 2 's/std::os::windows::fs::symlink_file\(/std::os::unix::fs::symlink(/g'
