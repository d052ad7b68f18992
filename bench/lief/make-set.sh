#!/usr/bin/env bash
# make-set.sh DEST [N]: fills DEST with at least N (default 1000) PE files,
# copies of the real inputs this machine has, under distinct names. Every
# input is used at least once; with fewer inputs than N they repeat in turn.
# DRIVERS=1 takes drivers only (.sys and .efi: the corpus, the fixtures,
# Wine's .sys), small files that import the hooked APIs, where call-site
# prediction rather than hashing is most of the work. CORPUS=1 takes the
# real third-party drivers of tests/corpus only.
# The files are third-party binaries: keep DEST outside the repository.
set -eu

dest=${1:?usage: make-set.sh DEST [N]}
n=${2:-1000}
root=$(cd "$(dirname "$0")/../.." && pwd)
wine=/usr/lib/x86_64-linux-gnu/wine/x86_64-windows

# Only files that start with "MZ", the same filter as `civctl scan --all-pe`,
# so a README or checksum file in the corpus cannot make the tools differ.
is_pe() { [ "$(head -c 2 "$1" 2>/dev/null)" = MZ ]; }

inputs=()
while IFS= read -r f; do
  is_pe "$f" && inputs+=("$f")
done < <(
  find "$HOME/.cache/civ-corpus" -type f 2>/dev/null | sort
  [ "${CORPUS:-0}" = 1 ] && exit 0
  ls "$root"/target/civ-fixtures/*.sys 2>/dev/null
  if [ "${DRIVERS:-0}" = 1 ]; then
    ls "$wine"/*.sys 2>/dev/null
  else
    ls "$wine"/*.sys "$wine"/*.dll 2>/dev/null
  fi
)
if [ ${#inputs[@]} -eq 0 ]; then
  echo "make-set.sh: no PE inputs found (run tests/corpus/fetch.sh and" \
       "cargo test -p civctl --test fixtures)" >&2
  exit 1
fi

mkdir -p "$dest"
total=$(( n > ${#inputs[@]} ? n : ${#inputs[@]} ))
# Real copies rather than hard links, so the set is as many distinct files
# on disk as it claims, the way a folder of drivers would be.
for (( i = 0; i < total; i++ )); do
  src=${inputs[i % ${#inputs[@]}]}
  cp "$src" "$dest/$(printf '%05d' "$i")-$(basename "$src")"
done
echo "make-set.sh: $total files in $dest from ${#inputs[@]} distinct inputs" >&2
