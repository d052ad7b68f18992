#!/usr/bin/env python3
"""Writes the malformed PE images that engine/tests/malformed.rs reads.

A minimal valid driver image is built by hand (no linker), so every offset
is known and each broken variant is one or two patches of it. Run it from
anywhere; it rewrites the *.bin files next to it. Keep expected.txt in step.

The base image (file alignment 0x200, section alignment 0x1000):

    file    RVA     what
    0x000   0x0000  DOS header, e_lfanew = 0x40; NT headers; section table
    0x200   0x1000  .text   RX (VirtualSize 0x1000: it covers the whole page)
    0x400   0x2000  .rdata  R   IAT, import descriptors, ILT, hint/names
    0x600   0x3000  .data   RW
    0x800   0x4000  .reloc  R   one block: a fixup at 0x1010, one at 0x1FFE

Imports: ntoskrnl.exe!ExAllocatePoolWithTag (hooked by civ), ExFreePoolWithTag,
HAL.dll!KeStallExecutionProcessor and HAL.dll ordinal 7. Its one finding is
the fixup at 0x1FFE, which straddles a page (unsupported relocs).
"""
import os
import struct

FILE_ALIGN, SECTION_ALIGN = 0x200, 0x1000
SIZE_OF_HEADERS, SIZE_OF_IMAGE = 0x200, 0x5000
# name, RVA, VirtualSize, file offset, characteristics
SECTIONS = [
    (b".text", 0x1000, 0x1000, 0x200, 0x60000020),
    (b".rdata", 0x2000, 0x200, 0x400, 0x40000040),
    (b".data", 0x3000, 0x200, 0x600, 0xC0000040),
    (b".reloc", 0x4000, 0x200, 0x800, 0x42000040),
]
FILE_SIZE = 0xA00

# Header offsets (the same for PE32 and PE32+ unless a function takes `plus`).
E_LFANEW = 0x3C
NT = 0x40
NUMBER_OF_SECTIONS = NT + 6
SIZE_OF_OPTIONAL_HEADER = NT + 20
OPT = NT + 24
OPT_SIZE_OF_HEADERS = OPT + 60

# Where things are in .rdata and .reloc (RVAs).
IAT, DESCRIPTORS, ILT, NAMES = 0x2000, 0x2040, 0x2080, 0x20C0
SPARE = 0x2180  # free until the end of .rdata's raw data, for the variants
RDATA_END = 0x2200
RELOCS = 0x4000
DIR_IMPORT, DIR_BASERELOC, DIR_IAT = 1, 5, 12


def number_of_rva_and_sizes(plus=True):
    return OPT + (108 if plus else 92)


def directory(i, plus=True):
    return OPT + (112 if plus else 96) + 8 * i


def section_header(i, plus=True):
    return OPT + (0xF0 if plus else 0xE0) + 40 * i


def file_offset(rva):
    """File offset of an RVA in the base image's sections."""
    for _, va, vsize, raw, _ in SECTIONS:
        if va <= rva < va + vsize:
            return raw + rva - va
    raise ValueError(hex(rva))


def put(b, fmt, at, *values):
    struct.pack_into("<" + fmt, b, at, *values)


def build(plus=True):
    """The valid image: PE32+ (x64) or PE32 (x86)."""
    b = bytearray(FILE_SIZE)
    width = 8 if plus else 4
    thunk = "Q" if plus else "I"
    ordinal_flag = 1 << (63 if plus else 31)

    put(b, "2s", 0, b"MZ")
    put(b, "I", E_LFANEW, NT)
    put(b, "4s", NT, b"PE\0\0")
    put(b, "HHIIIHH", NT + 4, 0x8664 if plus else 0x14C, len(SECTIONS), 0, 0, 0,
        0xF0 if plus else 0xE0, 0x22 if plus else 0x102)
    # Optional header up to SizeOfImage; PE32 has BaseOfData and a 4-byte
    # ImageBase where PE32+ has an 8-byte ImageBase, so the rest lines up.
    put(b, "HBBIIIII", OPT, 0x20B if plus else 0x10B, 14, 0, 0x200, 0x600, 0, 0x1000, 0x1000)
    if plus:
        put(b, "Q", OPT + 24, 0x1_4000_0000)
    else:
        put(b, "II", OPT + 24, 0x2000, 0x10000)
    put(b, "IIHHHHHHIIIIHH", OPT + 32, SECTION_ALIGN, FILE_ALIGN, 10, 0, 0, 0, 10, 0, 0,
        SIZE_OF_IMAGE, SIZE_OF_HEADERS, 0, 1, 0x0140)  # native subsystem, NX, dynamic base
    stack_heap = "QQQQ" if plus else "IIII"
    put(b, stack_heap + "II", OPT + 72, 0x40000, 0x1000, 0x100000, 0x1000, 0, 16)
    for i, (rva, size) in {DIR_IMPORT: (DESCRIPTORS, 3 * 20), DIR_BASERELOC: (RELOCS, 12),
                           DIR_IAT: (IAT, 6 * width)}.items():
        put(b, "II", directory(i, plus), rva, size)
    for i, (name, va, vsize, raw, flags) in enumerate(SECTIONS):
        put(b, "8sIIIIIIHHI", section_header(i, plus), name, vsize, va, 0x200, raw, 0, 0, 0, 0, flags)

    put(b, "B", file_offset(0x1000), 0xC3)  # ret

    # Hint/name entries and module names, each 2-aligned.
    names, at = {}, NAMES
    for key, data in [("alloc", struct.pack("<H", 0) + b"ExAllocatePoolWithTag\0"),
                      ("free", struct.pack("<H", 0) + b"ExFreePoolWithTag\0"),
                      ("stall", struct.pack("<H", 0) + b"KeStallExecutionProcessor\0"),
                      ("nt", b"ntoskrnl.exe\0"), ("hal", b"HAL.dll\0")]:
        names[key] = at
        b[file_offset(at):file_offset(at) + len(data)] = data
        at += (len(data) + 1) & ~1
    assert at <= SPARE
    modules = [("nt", [names["alloc"], names["free"]]), ("hal", [names["stall"], ordinal_flag | 7])]
    for m, (module, thunks) in enumerate(modules):
        first = 3 * width * m  # each list: two thunks and a NUL
        for table in (IAT, ILT):
            put(b, thunk * 2, file_offset(table + first), *thunks)
        put(b, "IIIII", file_offset(DESCRIPTORS + 20 * m), ILT + first, 0, 0, names[module], IAT + first)

    # One block for page 0x1000: DIR64 (x64) or HIGHLOW (x86) fixups at
    # 0x010 and 0xFFE; the second straddles into the next page.
    typ = 10 if plus else 3
    put(b, "IIHH", file_offset(RELOCS), 0x1000, 12, typ << 12 | 0x010, typ << 12 | 0xFFE)
    return b


def patched(*patches):
    """The PE32+ base with (struct format, offset, value) patches applied."""
    b = build()
    for fmt, at, value in patches:
        put(b, fmt, at, value)
    return b


def variants():
    base = build()
    ilt0 = file_offset(ILT)
    rdata_hdr, data_hdr, reloc_hdr = section_header(1), section_header(2), section_header(3)

    def swap_rdata_and_data():
        b = build()
        r, d = bytes(b[rdata_hdr:rdata_hdr + 40]), bytes(b[data_hdr:data_hdr + 40])
        b[rdata_hdr:rdata_hdr + 40], b[data_hdr:data_hdr + 40] = d, r
        return b

    def hal_ilt_to_end_of_rdata():
        # The HAL descriptor's OriginalFirstThunk moved to SPARE, and every
        # slot from there to the end of the section names a valid function.
        b = patched(("I", file_offset(DESCRIPTORS + 20), SPARE))
        for at in range(SPARE, RDATA_END, 8):
            put(b, "Q", file_offset(at), NAMES)
        return b

    def name_without_nul():
        # The first import's hint/name at SPARE: a hint, then 'A' up to the
        # end of the section's raw data.
        b = patched(("Q", ilt0, SPARE))
        start = file_offset(SPARE) + 2
        b[start:start + RDATA_END - SPARE - 2] = b"A" * (RDATA_END - SPARE - 2)
        return b

    return {
        "valid_pe32plus.bin": base,
        "valid_pe32.bin": build(plus=False),
        "empty.bin": b"",
        "mz_only.bin": b"MZ",
        "not_mz.bin": b"ZM" + base[2:],
        "dos_header_truncated.bin": base[:0x30],
        "e_lfanew_past_end.bin": patched(("I", E_LFANEW, FILE_SIZE + 0x100)),
        "e_lfanew_ffffffff.bin": patched(("I", E_LFANEW, 0xFFFFFFFF)),
        "bad_pe_signature.bin": patched(("4s", NT, b"PX\0\0")),
        "file_header_truncated.bin": base[:NT + 4 + 10],
        "optional_header_truncated.bin": base[:OPT + 100],
        "bad_optional_magic.bin": patched(("H", OPT, 0x107)),  # ROM image
        "size_of_optional_header_too_small.bin": patched(("H", SIZE_OF_OPTIONAL_HEADER, 0x10)),
        "size_of_optional_header_too_large.bin": patched(("H", SIZE_OF_OPTIONAL_HEADER, 0xFFFF)),
        "number_of_rva_and_sizes_huge.bin": patched(("I", number_of_rva_and_sizes(), 0xFFFFFFFF)),
        "number_of_sections_ffff.bin": patched(("H", NUMBER_OF_SECTIONS, 0xFFFF)),
        "number_of_sections_zero.bin": patched(("H", NUMBER_OF_SECTIONS, 0)),
        "size_of_headers_covers_sections.bin": patched(("I", OPT_SIZE_OF_HEADERS, 0x3000)),
        "section_rva_overflow.bin": patched(("I", reloc_hdr + 12, 0xFFFFF000), ("I", reloc_hdr + 8, 0x2000)),
        "sections_overlap.bin": patched(("I", data_hdr + 12, 0x2100)),
        "sections_out_of_order.bin": swap_rdata_and_data(),
        "section_raw_past_end.bin": patched(("I", reloc_hdr + 20, 0x10000)),
        "section_raw_offset_overflow.bin": patched(("I", reloc_hdr + 20, 0xFFFFFF00)),
        "import_dir_outside_image.bin": patched(("I", directory(DIR_IMPORT), 0x00F00000)),
        "import_module_name_rva_outside_image.bin": patched(("I", file_offset(DESCRIPTORS + 12), 0x00F00000)),
        "import_thunks_unterminated.bin": hal_ilt_to_end_of_rdata(),
        "import_hint_name_rva_7fffffff.bin": patched(("Q", ilt0, 0x7FFFFFFF)),
        # PE32+: bits 62..31 of a name thunk must be zero; bit 31 set puts the
        # hint/name at 0x8000_20C0, outside the image, whatever the loader masks.
        "import_thunk_bit31_pe32plus.bin": patched(("Q", ilt0, 0x80000000 | NAMES)),
        "import_name_without_nul.bin": name_without_nul(),
        "reloc_block_size_zero.bin": patched(("I", file_offset(RELOCS) + 4, 0)),
        "reloc_block_larger_than_directory.bin": patched(("I", file_offset(RELOCS) + 4, 0x100)),
        "reloc_dir_outside_image.bin": patched(("I", directory(DIR_BASERELOC), 0x00F00000)),
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for name in os.listdir(here):
        if name.endswith(".bin"):
            os.remove(os.path.join(here, name))
    for name, data in variants().items():
        assert len(data) < 8192, name
        with open(os.path.join(here, name), "wb") as f:
            f.write(bytes(data))


if __name__ == "__main__":
    main()
