//! civ.sys passes its own checks: an HVCI driver checker that could not
//! load under HVCI would be of no use. The WDM build has no W+X section, no
//! section off a page, no IAT in code, no straddling relocation, and
//! imports only ntoskrnl.exe.

use civ_engine::image::check_image;
use civ_engine::pe::{Layout, PeImage};

#[test]
fn civ_sys_is_hvci_clean_and_imports_only_ntoskrnl() {
    let bytes = std::fs::read(civ_fixtures::wine::civ_sys()).expect("civ.sys");
    let pe = PeImage::parse(&bytes, Layout::File).expect("civ.sys parses");
    assert!(pe.is_64());
    let mut findings = Vec::new();
    check_image(&pe, |f| findings.push(format!("{f:?}"))).expect("checks run");
    assert!(
        findings.is_empty(),
        "civ.sys has image findings: {findings:#?}"
    );
    let mut modules = Vec::new();
    pe.for_each_import_module(|m| {
        modules.push(String::from_utf8_lossy(m.module).to_ascii_lowercase())
    })
    .expect("imports");
    assert_eq!(modules, ["ntoskrnl.exe"]);
}

/// IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS.
const DEBUG_TYPE_EX_DLLCHARACTERISTICS: u32 = 20;
/// IMAGE_DLLCHARACTERISTICS_EX_CET_COMPAT.
const EX_CET_COMPAT: u32 = 1;

/// Kernel-mode hardware-enforced stack protection loads only drivers
/// marked CET-compatible: civ.sys carries the extended DLL characteristics
/// debug entry with CET_COMPAT (linked /CETCOMPAT).
#[test]
fn civ_sys_is_marked_cet_compatible() {
    let bytes = std::fs::read(civ_fixtures::wine::civ_sys()).expect("civ.sys");
    let pe = PeImage::parse(&bytes, Layout::File).expect("civ.sys parses");
    let (rva, size) = pe.data_directory(6).expect("civ.sys has a debug directory");
    let table = pe
        .bytes_at(rva, size as usize, "debug directory")
        .expect("in the file");
    // IMAGE_DEBUG_DIRECTORY: 28 bytes; Type at 12, SizeOfData at 16,
    // PointerToRawData at 24.
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let flags = table
        .chunks_exact(28)
        .find(|e| u32_at(e, 12) == DEBUG_TYPE_EX_DLLCHARACTERISTICS)
        .map(|e| u32_at(&bytes, u32_at(e, 24) as usize))
        .expect("an extended DLL characteristics entry");
    assert_eq!(flags & EX_CET_COMPAT, EX_CET_COMPAT, "flags {flags:#x}");
}
