#!/usr/bin/env python3
"""compare.py CIV_JSON LIEF_JSON: exits 1, listing them, if civctl and
checks_lief.py disagree on any file's codes, hash or readability."""
import json
import os
import sys

# "relocs" has no LIEF counterpart here: the brief compares the DV codes only.
CODES = {"0x2003", "0x2004", "0x2005"}


def civ_results(report):
    for f in report["files"]:
        yield os.path.abspath(f["path"]), {
            "codes": sorted({x["code"] for x in f["findings"]} & CODES),
            "sha256": f["sha256"],
            "error": "error" in f,
        }
    for e in report["errors"]:
        yield os.path.abspath(e.get("path", "?")), {"error": True}


def lief_results(report):
    for r in report["results"]:
        yield r["path"], {"codes": r["codes"], "sha256": r["sha256"], "error": "error" in r}


def main(civ_path, lief_path):
    with open(civ_path) as f:
        civ = dict(civ_results(json.load(f)))
    with open(lief_path) as f:
        lief = dict(lief_results(json.load(f)))
    bad = []
    for path in sorted(civ.keys() | lief.keys()):
        c, l = civ.get(path), lief.get(path)
        if c != l:
            bad.append(f"  {path}: civctl {c}, lief {l}")
    if bad:
        print(f"DISAGREE on {len(bad)} of {len(civ.keys() | lief.keys())} files:", *bad, sep="\n")
        sys.exit(1)
    print(f"agree: civctl and LIEF report the same codes and sha256 on all {len(civ)} files")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip())
    main(*sys.argv[1:])
