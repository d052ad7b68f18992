//! `civctl scan` says when an image has import call optimization: the
//! clean fixture, given a load configuration whose dynamic value
//! relocation table has import-control-transfer entries (in a section the
//! test appends, as MSVC's retpoline builds carry them), is flagged in the
//! human report and the JSON; without them it is not.

mod common;
use civ_fixtures::Fixture;
use common::{civctl, scan_json};
use std::path::Path;

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}
fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}
fn put32(b: &mut [u8], at: usize, v: usize) {
    b[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
}
fn align(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

/// The clean fixture (PE32+, file layout) with a `.dvrt` section appended
/// holding a load configuration and a version 1 DVRT whose one entry has
/// `symbol` and a 12-byte fixup block.
fn with_dvrt(symbol: u64) -> Vec<u8> {
    let mut b = Fixture::Clean.bytes();
    let nt = u32_at(&b, 0x3C);
    let sections = u16_at(&b, nt + 6);
    let opt = nt + 24;
    let table = opt + u16_at(&b, nt + 20);
    let (section_alignment, file_alignment) = (u32_at(&b, opt + 32), u32_at(&b, opt + 36));
    let header_room = u32_at(&b, opt + 60);
    let last = table + (sections - 1) * 40;
    assert!(
        table + (sections + 1) * 40 <= header_room,
        "no room for a header"
    );
    let va = align(
        u32_at(&b, last + 12) + u32_at(&b, last + 8).max(u32_at(&b, last + 16)),
        section_alignment,
    );
    let raw_at = align(b.len(), file_alignment);
    let raw_size = align(0x300, file_alignment);
    // The section's data: the load configuration (Size 0x140) naming the
    // DVRT by section number (1-based) and offset, then the DVRT at 0x200.
    let mut data = vec![0u8; raw_size];
    put32(&mut data, 0, 0x140);
    put32(&mut data, 0xE0, 0x200);
    data[0xE4..0xE6].copy_from_slice(&((sections + 1) as u16).to_le_bytes());
    let mut dvrt = 1u32.to_le_bytes().to_vec();
    dvrt.extend(24u32.to_le_bytes());
    dvrt.extend(symbol.to_le_bytes());
    dvrt.extend(12u32.to_le_bytes());
    dvrt.extend([0u8; 12]);
    data[0x200..0x200 + dvrt.len()].copy_from_slice(&dvrt);
    b.resize(raw_at, 0);
    b.extend(&data);
    let header = table + sections * 40;
    b[header..header + 8].copy_from_slice(b".dvrt\0\0\0");
    put32(&mut b, header + 8, 0x300);
    put32(&mut b, header + 12, va);
    put32(&mut b, header + 16, raw_size);
    put32(&mut b, header + 20, raw_at);
    // IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ.
    put32(&mut b, header + 36, 0x4000_0040);
    b[nt + 6..nt + 8].copy_from_slice(&((sections + 1) as u16).to_le_bytes());
    put32(&mut b, opt + 56, align(va + 0x300, section_alignment));
    // Data directory 10: the load configuration.
    put32(&mut b, opt + 112 + 10 * 8, va);
    put32(&mut b, opt + 112 + 10 * 8 + 4, 0x140);
    b
}

fn scan(dir: &Path, name: &str, bytes: &[u8]) -> (serde_json::Value, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let (_, json) = scan_json(&[&path], &[]);
    let (_, human, _) = civctl(["scan".as_ref(), path.as_os_str()]);
    (json["files"][0].clone(), human)
}

#[test]
fn scan_flags_import_call_optimization() {
    let dir = tempfile::tempdir().unwrap();
    let (file, human) = scan(dir.path(), "retpoline.sys", &with_dvrt(3));
    assert_eq!(file.get("error"), None, "{file}");
    assert_eq!(file["import_call_optimization"], true, "{file}");
    assert!(
        human.contains(
            "import call optimization: the kernel may bind its calls of imports directly"
        ),
        "{human}"
    );
    // Other dynamic relocations (here guard RF prologues) are not it, and
    // the image is otherwise the clean fixture: no finding either way.
    let (file, human) = scan(dir.path(), "other.sys", &with_dvrt(1));
    assert_eq!(file["import_call_optimization"], false, "{file}");
    assert!(!human.contains("import call optimization"), "{human}");
    assert!(file["findings"].as_array().unwrap().is_empty(), "{file}");
    let (file, _) = scan(dir.path(), "clean.sys", &Fixture::Clean.bytes());
    assert_eq!(file["import_call_optimization"], false);
}
