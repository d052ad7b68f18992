#!/usr/bin/env bash
# run.sh [N]: civctl's image checks against the same checks in LIEF, over
# one set of N (default 1000) PE files. Fails if the tools disagree on any
# file; the timings are only printed (they vary too much to assert).
set -eu

n=${1:-1000}
repeat=${REPEAT:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$HOME/.cache/civ-bench-venv
civctl=$root/target/release/civctl

if ! "$venv/bin/python" -c 'import lief' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet lief
fi
if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && apt-get install -y -qq time
fi
(cd "$root" && cargo build --quiet --release -p civctl)
if ! ls "$root"/target/civ-fixtures/*.sys >/dev/null 2>&1; then
  # The fixtures are the only inputs with 0x2004/0x2005 findings; without
  # them the agreement check proves little, but the corpus still runs.
  (cd "$root" && cargo test --quiet -p civctl --test fixtures >/dev/null) ||
    echo "run.sh: could not build the fixtures, going on without them" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/make-set.sh" "$tmp/set" "$n"
"$here/make-set.sh" "$tmp/tenth" $(( n / 10 > 0 ? n / 10 : 1 ))
files=$(ls "$tmp/set" | wc -l)
# Both tools should read from the page cache, not the disk, so the first
# timed run is not penalised.
cat "$tmp"/set/* >/dev/null

# civctl's status is 1 when files have findings and 2 when one is not a
# readable PE: both are answers for compare.py; anything else is a crash.
civ() {
  local rc=0
  "$civctl" scan --all-pe --format json "$@" || rc=$?
  [ "$rc" -le 2 ] || { echo "run.sh: civctl failed ($rc)" >&2; exit 1; }
}

# Best of $repeat runs, in seconds: the least disturbed by the machine.
# civctl is timed from outside, so its time includes process start,
# discovery and writing the JSON; LIEF times only its loop (not the start
# of Python nor `import lief`), which if anything favours LIEF.
best_wall() {  # best_wall OUT CMD...: best wall time of CMD >OUT
  local out=$1 best="" t0 t1 s; shift
  for _ in $(seq "$repeat"); do
    t0=$(date +%s%N); "$@" >"$out"; t1=$(date +%s%N)
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
    best=$(awk -v a="$best" -v b="$s" 'BEGIN { print (a == "" || b < a) ? b : a }')
  done
  echo "$best"
}
civ_s=$(best_wall "$tmp/civ.json" civ "$tmp/set")
civ1_s=$(RAYON_NUM_THREADS=1 best_wall "$tmp/civ.json" civ "$tmp/set")

# The floor: finding, reading and hashing every file on every core, and
# nothing else (examples/hash_set.rs), timed the same way. LIEF's time over
# this is the most any scan that hashes every file can reach here.
(cd "$root" && cargo build --quiet --release -p civctl --example hash_set)
floor_s=$(best_wall /dev/null "$root/target/release/examples/hash_set" "$tmp/set")

lief_s=""
for _ in $(seq "$repeat"); do
  "$venv/bin/python" "$here/checks_lief.py" "$tmp/set" >"$tmp/lief.json"
  s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$tmp/lief.json")
  lief_s=$(awk -v a="$lief_s" -v b="$s" 'BEGIN { print (a == "" || b < a) ? b : a }')
done

agree=0
python3 "$here/compare.py" "$tmp/civ.json" "$tmp/lief.json" || agree=1

# The checks alone, on bytes already in memory, one thread each: what the
# two libraries cost per file, without the I/O and hashing both share.
(cd "$root" && cargo build --quiet --release -p civctl --example check_set)
best_json() {  # best_json OUT CMD...: best of $repeat runs by "seconds"
  local out=$1 best=""; shift
  for _ in $(seq "$repeat"); do
    "$@" >"$tmp/run.json"
    s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$tmp/run.json")
    if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$s; cp "$tmp/run.json" "$out"; fi
  done
  echo "$best"
}
mem_civ_s=$(best_json "$tmp/mem-civ.json" "$root/target/release/examples/check_set" "$tmp/set")
mem_lief_s=$(best_json "$tmp/mem-lief.json" "$venv/bin/python" "$here/checks_lief.py" --in-memory "$tmp/set")
python3 "$here/compare.py" "$tmp/mem-civ.json" "$tmp/mem-lief.json" || agree=1

# Call-site prediction alone: how much of the code it decodes.
(cd "$root" && cargo build --quiet --release -p civctl --example predict_set)
"$root/target/release/examples/predict_set" "$tmp/set" >"$tmp/predict.json"
read -r pred_images pred_sites pred_code pred_decoded pred_s < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["images_with_sites"], d["sites"], d["code_bytes"], d["decoded_bytes"], d["seconds"])' "$tmp/predict.json")

# Peak RSS in KiB, for a tenth of the set and for all of it.
rss() {
  /usr/bin/time -v "$civctl" scan --all-pe --format json "$1" 2>&1 >/dev/null |
    awk '/Maximum resident set size/ { print $NF }'
}
rss_tenth=$(rss "$tmp/tenth")
rss_all=$(rss "$tmp/set")

awk -v n="$files" -v c="$civ_s" -v c1="$civ1_s" -v l="$lief_s" -v f="$floor_s" \
    -v r10="$rss_tenth" -v r="$rss_all" -v nt="$(ls "$tmp/tenth" | wc -l)" -v cores="$(nproc)" -v runs="$repeat" \
    -v kib="$(du -sk "$tmp/set" | cut -f1)" -v mc="$mem_civ_s" -v ml="$mem_lief_s" \
    -v pi="$pred_images" -v ps="$pred_sites" -v pc="$pred_code" -v pd="$pred_decoded" -v pt="$pred_s" '
function us(s) { return s / n * 1e6 }
function verdict(x) { return x >= 20 ? "met" : "NOT met" }
BEGIN {
  printf "files                      %d (%d cores, best of %d runs)\n", n, cores, runs
  printf "civctl seconds             %.4f  (%.1f us/file)\n", c, us(c)
  printf "civctl 1 thread seconds    %.4f  (%.1f us/file)\n", c1, us(c1)
  printf "LIEF seconds               %.4f  (%.1f us/file)\n", l, us(l)
  printf "ratio LIEF/civctl          %.1fx  target 20x: %s\n", l / c, verdict(l / c)
  printf "ratio LIEF/civctl 1 thread %.1fx  target 20x: %s\n", l / c1, verdict(l / c1)
  printf "read + SHA-256 only        %.4f  (%.1f us/file, every core, nothing else)\n", f, us(f)
  printf "  ratio LIEF/that          %.1fx  the most a scan that hashes every file can reach here\n", l / f
  printf "checks only, in memory, 1 thread each:\n"
  printf "  civ-engine seconds       %.4f  (%.2f us/file)\n", mc, us(mc)
  printf "  LIEF seconds             %.4f  (%.1f us/file)\n", ml, us(ml)
  printf "  ratio LIEF/civ           %.1fx  target 20x: %s\n", ml / mc, verdict(ml / mc)
  printf "prediction, 1 thread:      %d images with %d call sites, %.4f s\n", pi, ps, pt
  printf "  bytes decoded            %d of %d bytes of code in those images (%.0f%%)\n", pd, pc, pc ? pd * 100 / pc : 0
  printf "civctl peak RSS            %d KiB at %d files, %d KiB at %d files\n", r10, nt, r, n
  printf "civctl RSS growth          %.2f KiB per file (mean file size %.0f KiB)\n", (r - r10) / (n - nt), kib / n
}'
exit "$agree"
