#!/usr/bin/env bash
# A Debian 13 (trixie) chroot with Debian's own Wine 10, for the tests that
# run civ.sys on a newer Wine than the host's (Debian 12's Wine 8 lacks
# ExAllocatePool2 and others). Made once with debootstrap from the Debian
# mirror and cached in $CIV_WINE10 (default ~/.cache/civ-wine10); needs root.
#
#   scripts/wine10.sh                 make the chroot unless cached; print its path
#   scripts/wine10.sh exec DIR -- CMD run CMD in the chroot, with DIR (a host
#                                     folder, e.g. a Wine prefix) bind-mounted
#                                     at the same path
#
# `exec` enters a private mount namespace (unshare), so its mounts (/proc,
# /dev, DIR) vanish with the last process in it: nothing is left mounted.
set -euo pipefail
# debootstrap and chroot live in sbin, which a CI shell's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

cache=${CIV_WINE10:-$HOME/.cache/civ-wine10}
mirror=${CIV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root="$cache/root"
ready="$cache/ready"

fail() { echo "wine10.sh: $*" >&2; exit 1; }
partial=''
# A build that stops half way leaves nothing behind but its logs.
trap '[ -z "$partial" ] || rm -rf "$partial"' EXIT

need_root() {
  [ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap, chroot and mount need it)"
  command -v unshare >/dev/null || fail "unshare (util-linux) is missing"
}

# Runs a command in chroot $1 with /proc, /dev and, if given, a host folder
# mounted, in a private mount namespace.
enter() {
  local dir=$1 bind=$2
  shift 2
  unshare --mount --propagation private -- /bin/sh -eu -c '
    dir=$1; bind=$2; shift 2
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
    if [ -n "$bind" ]; then
      mkdir -p "$dir$bind"
      mount --bind "$bind" "$dir$bind"
    fi
    exec chroot "$dir" /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin HOME=/root "$@"
  ' enter "$dir" "$bind" "$@"
}

build() {
  command -v debootstrap >/dev/null ||
    fail "debootstrap is missing (scripts/setup.sh installs it: apt-get install debootstrap)"
  mkdir -p "$cache"
  local tmp="$cache/root.partial"
  rm -rf "$tmp"
  partial=$tmp
  local start=$SECONDS
  echo "wine10.sh: debootstrap trixie from $mirror into $tmp" >&2
  # In a private mount namespace too: what debootstrap mounts in the new
  # root (/proc, /sys, maybe /dev) cannot outlive it, so removing a
  # half-made root never reaches the host's.
  if ! unshare --mount --propagation private -- \
    debootstrap --variant=minbase trixie "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/debootstrap.log" >&2
    fail "debootstrap trixie from $mirror failed (log: $cache/debootstrap.log)"
  fi
  cp /etc/resolv.conf "$tmp/etc/resolv.conf"
  echo "wine10.sh: base system in $((SECONDS - start)) s; apt-get install wine64 wine (Debian's Wine 10)" >&2
  if ! enter "$tmp" "" /bin/sh -c '
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends wine64 wine &&
      apt-get clean && rm -rf /var/lib/apt/lists/*' >"$cache/apt.log" 2>&1; then
    tail -n 20 "$cache/apt.log" >&2
    fail "installing Wine in the chroot failed (log: $cache/apt.log)"
  fi
  local version
  version=$(enter "$tmp" "" env WINEDEBUG=-all wine --version 2>&1) ||
    fail "wine --version failed in the chroot: $version"
  case $version in
    wine-10.*) ;;
    *) fail "the chroot's Wine is '$version', not Wine 10" ;;
  esac
  rm -rf "$root"
  mv "$tmp" "$root"
  partial=''
  echo "$version" >"$ready"
  echo "wine10.sh: $version ready in $root ($((SECONDS - start)) s)" >&2
}

case ${1:-} in
  "")
    need_root
    mkdir -p "$cache"
    # One build at a time; a second caller waits and then finds it cached.
    exec 9>"$cache/lock"
    flock 9
    [ -s "$ready" ] && [ -x "$root/usr/bin/wine" ] || build
    echo "$root"
    ;;
  exec)
    need_root
    [ $# -ge 4 ] && [ "$3" = "--" ] || fail "usage: wine10.sh exec DIR -- COMMAND [ARGS...]"
    [ -s "$ready" ] || fail "no Wine 10 chroot in $cache: run scripts/wine10.sh (scripts/setup.sh does)"
    bind=$(cd "$2" && pwd -P) || fail "no folder $2"
    shift 3
    enter "$root" "$bind" "$@"
    ;;
  *)
    fail "usage: wine10.sh | wine10.sh exec DIR -- COMMAND [ARGS...]"
    ;;
esac
