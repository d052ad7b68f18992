#!/usr/bin/env python3
"""civ's image checks 0x2003/0x2004/0x2005, written with LIEF, for comparison
with `civctl scan`. Prints JSON: files, seconds, per_file_us and, per file,
the sha256 and the set of codes.

Usage: checks_lief.py [--in-memory] FILE_OR_DIR...
  --in-memory  read every file first and time only LIEF's parse and the checks
"""
import hashlib
import json
import os
import sys
import time

import lief

MEM_EXECUTE = 0x20000000
MEM_WRITE = 0x80000000
PAGE = 0x1000
DIR_IAT = 12


def contains(section, rva):
    # Same extent as civ's engine (pe.rs Section::extent): VirtualSize, or
    # SizeOfRawData when VirtualSize is 0, so both tools pick the same section.
    extent = section.virtual_size or section.sizeof_raw_data
    return section.virtual_address <= rva < section.virtual_address + extent


def section_at(binary, rva):
    return next((s for s in binary.sections if contains(s, rva)), None)


def executable(section):
    return section is not None and section.characteristics & MEM_EXECUTE


def codes_of(binary):
    codes = set()
    if any(s.characteristics & MEM_EXECUTE and s.characteristics & MEM_WRITE
           for s in binary.sections):
        codes.add("0x2003")
    if binary.optional_header.section_alignment < PAGE or any(
            s.virtual_address % PAGE for s in binary.sections):
        codes.add("0x2004")
    iat = binary.data_directories[DIR_IAT].rva if len(binary.data_directories) > DIR_IAT else 0
    # civctl also looks at each import descriptor's FirstThunk, which catches
    # an IAT in code when the IAT directory is missing (fixture
    # iat_text_nodir.sys); without it the two tools would not compare equal.
    thunks = [i.import_address_table_rva for i in binary.imports]
    if any(executable(section_at(binary, rva)) for rva in ([iat] if iat else []) + thunks):
        codes.add("0x2005")
    return codes


def check(path, data):
    result = {"path": os.path.abspath(path)}
    binary = lief.PE.parse(data)
    if binary is None:
        result["error"] = "not a PE image LIEF can parse"
        result["codes"] = []
    else:
        result["codes"] = sorted(codes_of(binary))
    return result


def scan(path):
    with open(path, "rb") as f:
        data = f.read()
    result = check(path, data)
    result["sha256"] = hashlib.sha256(data).hexdigest()
    return result


def files_in(args):
    for arg in args:
        if os.path.isdir(arg):
            for root, _, names in sorted(os.walk(arg)):
                yield from (os.path.join(root, n) for n in sorted(names))
        else:
            yield arg


def main(args):
    if not args:
        sys.exit(__doc__.strip())
    # Malformed images make LIEF log warnings per file; printing them would
    # be timed too and is not part of the checks.
    lief.logging.disable()
    in_memory = args[0] == "--in-memory"
    paths = list(files_in(args[1:] if in_memory else args))
    if in_memory:
        # The checks alone: files read before the clock starts, hashes after
        # it stops, as userctl/examples/check_set.rs does for civ.
        blobs = []
        for p in paths:
            with open(p, "rb") as f:
                blobs.append(f.read())
        start = time.perf_counter()
        results = [check(p, d) for p, d in zip(paths, blobs)]
        seconds = time.perf_counter() - start
        for r, d in zip(results, blobs):
            r["sha256"] = hashlib.sha256(d).hexdigest()
    else:
        start = time.perf_counter()
        results = [scan(p) for p in paths]
        seconds = time.perf_counter() - start
    json.dump({
        "tool": "lief " + lief.__version__,
        "files": len(results),
        "seconds": seconds,
        "per_file_us": seconds / max(len(results), 1) * 1e6,
        "results": results,
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
