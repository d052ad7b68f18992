#!/usr/bin/env bash
# Fetches what civ's tests read but the repository must not hold:
#  - the real third-party driver corpus (tests/corpus/fetch.sh) into
#    $CIV_CORPUS (default ~/.cache/civ-corpus);
#  - the OASIS SARIF 2.1.0 schema, from the npm package @microsoft/jest-sarif,
#    into $CIV_SARIF_SCHEMA (default ~/.cache/civ-sarif/sarif-2.1.0-rtm.5.json).
# Idempotent: what is already there is not fetched again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tests/corpus/fetch.sh" "${CIV_CORPUS:-$HOME/.cache/civ-corpus}"

schema=${CIV_SARIF_SCHEMA:-$HOME/.cache/civ-sarif/sarif-2.1.0-rtm.5.json}
if [ ! -s "$schema" ]; then
  command -v npm >/dev/null || { echo "npm is needed to fetch the SARIF schema" >&2; exit 1; }
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null)
  tar -xzf "$tmp"/microsoft-jest-sarif-*.tgz -C "$tmp" package/lib/schemas/sarif-2.1.0-rtm.5.json
  mkdir -p "$(dirname "$schema")"
  cp "$tmp/package/lib/schemas/sarif-2.1.0-rtm.5.json" "$schema"
  echo "SARIF schema in $schema"
fi
