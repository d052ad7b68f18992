#!/usr/bin/env bash
# Fuzzes civ-engine's PE reader, then its IOCTL protocol, for SECONDS
# (default 60) of fuzzing time each:
#   fuzz/run.sh [SECONDS]
# Seeds fuzz/corpus/pe_reader (gitignored) from the checked-in malformed
# images, the built fixture drivers and the downloaded driver corpus, when
# present. Exits non-zero if libFuzzer finds a crash, an out-of-memory or an
# input slower than 10 s (a hang); the input is saved under fuzz/artifacts/.
set -euo pipefail
seconds=${1:-60}
fuzz=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz")
cd "$fuzz"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=$fuzz/corpus/pe_reader
mkdir -p "$corpus"
# Named by content, so reseeding never duplicates an input.
seed() {
    local f
    for f in "$@"; do
        [ -f "$f" ] && cp "$f" "$corpus/$(sha1sum <"$f" | cut -c1-40)"
    done
    return 0
}
seed "$root"/engine/tests/malformed/*.bin "$root"/target/civ-fixtures/*.sys
if [ -d "${HOME}/.cache/civ-corpus" ]; then
    mapfile -t found < <(find "${HOME}/.cache/civ-corpus" -type f -size -4M)
    seed "${found[@]}"
fi

cargo +nightly fuzz run pe_reader -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
# The IOCTL protocol, seeded with nothing: its messages are small.
mkdir -p "$fuzz/corpus/protocol"
cargo +nightly fuzz run protocol "$fuzz/corpus/protocol" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
