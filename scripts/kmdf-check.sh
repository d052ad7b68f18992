#!/usr/bin/env bash
# Type-checks, lints and links civ.sys's KMDF shell on Linux, the way
# `cargo make` compiles it on Windows: wdk-sys' own build script generates
# its bindings, here from the open-source KMDF 1.33 headers
# (microsoft/Windows-Driver-Frameworks, MIT) and Debian's mingw-w64 DDK
# headers laid out like a WDK; then
#  - `cargo check` and `cargo clippy -D warnings` of
#    `-p civ --features kmdf --target x86_64-pc-windows-msvc`;
#  - the ignored test kmdf_civ_sys_links_to_the_kernel_only
#    (tests/tests/kmdf_build.rs): the real KMDF civ.sys linked against
#    stand-ins for the WDK's libraries must import only from ntoskrnl.exe,
#    HAL.dll and WDFLDR.SYS, with RtlCopyUnicodeString from ntoskrnl.exe.
#
# wdk-build refuses to build off Windows, so the script copies the locked
# wdk-build from cargo's registry into a scratch folder outside the
# repository and edits the copy there (scripts/kmdf/edit-wdk-build.sh); the
# workspace is copied next to it and built with a [patch] pointing at it.
# Nothing here is written into the repository.
#
# Environment:
#   CIV_KMDF_HEADERS  a local copy of the KMDF headers: the folder holding
#                     wdf.h, or a checkout of Windows-Driver-Frameworks.
#                     Without it they are cloned from GitHub; if GitHub
#                     cannot be reached (CI reaches package registries only)
#                     the script says so and exits 0.
#   CIV_KMDF_STRICT=1 fail instead of skipping when the headers are missing.
#   CIV_KMDF_SCRATCH  the scratch folder (default ${TMPDIR:-/tmp}/civ-kmdf-check).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here="$root/scripts/kmdf"
scratch=${CIV_KMDF_SCRATCH:-${TMPDIR:-/tmp}/civ-kmdf-check}
target=x86_64-pc-windows-msvc
kmdf_version=1.33
# Any 10.x folder name will do: wdk-build picks the highest under Lib/.
sdk_version=10.0.26100.0
wdf_repo=https://github.com/microsoft/Windows-Driver-Frameworks

say() { echo "kmdf-check: $*"; }
die() { echo "kmdf-check: error: $*" >&2; exit 1; }

mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
case "$scratch/" in
  "$root"/*) die "CIV_KMDF_SCRATCH ($scratch) must be outside the repository" ;;
esac

# 1. The KMDF headers.
headers=
if [ -n "${CIV_KMDF_HEADERS:-}" ]; then
  for d in "$CIV_KMDF_HEADERS" "$CIV_KMDF_HEADERS/src/publicinc/wdf/kmdf/$kmdf_version" \
    "$CIV_KMDF_HEADERS/wdf/kmdf/$kmdf_version" "$CIV_KMDF_HEADERS/$kmdf_version"; do
    if [ -f "$d/wdf.h" ]; then headers=$d; break; fi
  done
  [ -n "$headers" ] || die "CIV_KMDF_HEADERS=$CIV_KMDF_HEADERS holds no KMDF $kmdf_version wdf.h"
else
  clone="$scratch/Windows-Driver-Frameworks"
  if [ ! -f "$clone/src/publicinc/wdf/kmdf/$kmdf_version/wdf.h" ]; then
    if ! timeout 30 git ls-remote "$wdf_repo" HEAD >/dev/null 2>&1; then
      msg="GitHub ($wdf_repo) cannot be reached and CIV_KMDF_HEADERS is not set"
      [ "${CIV_KMDF_STRICT:-0}" = 1 ] && die "$msg"
      say "$msg: skipping the KMDF type-check (it needs the KMDF headers)."
      exit 0
    fi
    rm -rf "$clone"
    say "cloning the KMDF headers from $wdf_repo"
    git clone --quiet --depth 1 --filter=blob:none --sparse "$wdf_repo" "$clone"
    git -C "$clone" sparse-checkout set "src/publicinc/wdf/kmdf/$kmdf_version"
  fi
  headers="$clone/src/publicinc/wdf/kmdf/$kmdf_version"
fi
say "KMDF headers: $headers"

# 2. Tools: clang and libclang (bindgen), llvm-lib (wdk-sys' wdf.c and the
# stand-in libraries), llvm-dlltool and lld-link (the stand-in link),
# mingw-w64's headers (the DDK part of the WDK) and import libraries (the
# stand-ins' export lists). Debian's packages.
need=()
command -v clang >/dev/null || need+=(clang)
command -v llvm-lib >/dev/null || need+=(llvm)
command -v lld-link >/dev/null || need+=(lld)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || need+=(libclang1)
[ -f /usr/x86_64-w64-mingw32/include/ddk/ntddk.h ] || need+=(mingw-w64-x86-64-dev)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
mingw=/usr/x86_64-w64-mingw32/include

# 3. The workspace, copied (tracked and new files, as they are now) so that
# the [patch] below and the Cargo.lock it rewrites stay out of the
# repository. Its target/ is kept between runs.
ws="$scratch/workspace"
mkdir -p "$ws"
find "$ws" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
(cd "$root" && git ls-files -z -co --exclude-standard |
  tar --null --ignore-failed-read -cf - -T - 2>/dev/null) | tar -xf - -C "$ws"

# 4. wdk-build as the lock pins it, from cargo's registry, edited to build
# on Linux, and patched in through the copy's cargo config (so that the
# nested builds of the link test use it too).
manifest=$(cd "$ws" && cargo metadata --format-version 1 --locked |
  grep -o '"manifest_path":"[^"]*/wdk-build-[0-9][^"/]*/Cargo.toml"' | head -1 |
  sed 's/^"manifest_path":"//; s/"$//') ||
  die "cargo metadata failed (is crates.io reachable?)"
[ -n "$manifest" ] || die "cargo metadata lists no wdk-build: driver/Cargo.toml must name it as a build-dependency"
wdk_build="$scratch/wdk-build"
rm -rf "$wdk_build"
cp -r "$(dirname "$manifest")" "$wdk_build"
chmod -R u+w "$wdk_build"
"$here/edit-wdk-build.sh" "$wdk_build"
printf '\n[patch.crates-io]\nwdk-build = { path = "%s" }\n' "$wdk_build" >>"$ws/.cargo/config.toml"
say "wdk-build: $(dirname "$manifest") (edited copy in $wdk_build)"

# 5. A folder laid out like a WDK, for wdk-build's include and library
# paths: Include/<sdk>/km = mingw's DDK, Include/<sdk>/shared = mingw's
# headers, Include/wdf/kmdf/1.33 = the KMDF headers.
wdk="$scratch/wdk"
rm -rf "$wdk"
inc="$wdk/Include/$sdk_version"
mkdir -p "$inc/km/crt" "$inc/km/ufx/1.1" "$wdk/Include/wdf/kmdf" \
  "$wdk/Lib/$sdk_version/km/x64" "$wdk/Lib/wdf/kmdf/x64/$kmdf_version"
ln -s "$mingw"/ddk/* "$inc/km/"
ln -s "$mingw" "$inc/shared"
cp -r "$headers" "$wdk/Include/wdf/kmdf/$kmdf_version"
# wdf.h includes some headers by other capitalisations than their files'
# (Windows does not care): link each such name to its file.
kmdf_inc="$wdk/Include/wdf/kmdf/$kmdf_version"
grep -ho '#include "[^"]*"' "$kmdf_inc"/*.h | sed 's/#include "//; s/"$//' | sort -u |
  while read -r name; do
    [ -e "$kmdf_inc/$name" ] && continue
    file=$(cd "$kmdf_inc" && ls | grep -ix -- "$name" | head -1) || true
    [ -n "$file" ] && ln -s "$file" "$kmdf_inc/$name"
  done

# 6. Build settings. bindgen parses the headers with libclang for the MSVC
# target; mingw's headers want a GNU C compiler (`-fgnuc-version`), and
# mingw-w64 10 lacks ExAllocatePool2, which wdk-alloc calls (the shim).
# wdk-sys compiles wdf.c with cc: clang and llvm-lib stand in for cl and
# lib.
resource_dir=$(clang -print-resource-dir)
export WDKContentRoot="$wdk"
export BINDGEN_EXTRA_CLANG_ARGS="-fgnuc-version=4.2.1 -resource-dir=$resource_dir -include $here/pool2-shim.h"
export CC_x86_64_pc_windows_msvc=clang
export AR_x86_64_pc_windows_msvc=llvm-lib
export CFLAGS_x86_64_pc_windows_msvc="-fms-extensions -fms-compatibility -fgnuc-version=4.2.1 -w"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
cargo_args=(-p civ --features kmdf --target "$target" --config 'profile.dev.panic="abort"')

cd "$ws"
say "cargo check ${cargo_args[*]}"
cargo check "${cargo_args[@]}"
say "cargo clippy ${cargo_args[*]} -- -D warnings"
cargo clippy "${cargo_args[@]}" -- -D warnings
say "the KMDF shell type-checks and lints clean"

# 7. The real KMDF image, linked against stand-ins for the WDK's libraries.
link_test=kmdf_civ_sys_links_to_the_kernel_only
say "cargo test -p civ-fixtures --test kmdf_build -- --ignored --exact $link_test"
cargo test -p civ-fixtures --test kmdf_build -- --ignored --exact "$link_test" --nocapture
say "the KMDF civ.sys links to ntoskrnl.exe, HAL.dll and WDFLDR.SYS only"
