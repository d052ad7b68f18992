//! The PE walks must stay cheap on hostile images. The import walk's caps
//! (4096 descriptors, 65536 thunks per list) multiply: 4096 descriptors may
//! share one 65536-entry thunk list, so an image of under 1 MiB yields 2^28
//! imports; and in file layout every RVA is resolved by a linear scan of up
//! to 65535 sections. civctl scanning such a file, or civ.sys planning its
//! IAT at load, would hang for hours. The image is built here (it is far too
//! large for tests/malformed/) on the headers of make.py's valid image.

use civ_engine::image::{check_image, for_each_hooked_import, iat_location};
use civ_engine::pe::{Layout, PeImage};
use std::sync::mpsc;
use std::time::Duration;

const OPT: usize = 0x58; // optional header: e_lfanew 0x40 + 24
const DIRS: usize = OPT + 112; // PE32+ data directories
const TABLE: usize = OPT + 0xF0; // section table
const SECTIONS: usize = 0xFFFF; // all empty but the last
const VA: u32 = 0x40_0000; // the last section, past the 2.6 MB of headers
const THUNKS: u32 = 0x2_0000; // offset of the shared thunk list in it
const DESCRIPTORS: u32 = 4096;
const THUNK_COUNT: u32 = 65536;

fn put(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// 65534 empty sections (valid: extent 0, in order), then one holding 4096
/// descriptors that share a 65536-entry thunk list, each thunk naming the
/// same function. Returns the file layout and the mapped layout.
fn hostile_image() -> (Vec<u8>, Vec<u8>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/malformed/valid_pe32plus.bin"
    );
    let base = std::fs::read(path).expect("run tests/malformed/make.py");
    let raw = (TABLE + 40 * SECTIONS + 0x1FF) & !0x1FF;
    let size = THUNKS + 8 * (THUNK_COUNT + 1);
    let mut b = vec![0u8; raw + size as usize];
    b[..TABLE].copy_from_slice(&base[..TABLE]);
    b[0x46..0x48].copy_from_slice(&(SECTIONS as u16).to_le_bytes());
    put(&mut b, OPT + 56, VA + size); // SizeOfImage
    put(&mut b, OPT + 60, raw as u32); // SizeOfHeaders
    b[DIRS..DIRS + 128].fill(0);
    put(&mut b, DIRS + 8, VA); // import directory
    put(&mut b, DIRS + 12, 20 * (DESCRIPTORS + 1));
    for i in 0..SECTIONS {
        let h = TABLE + 40 * i;
        b[h..h + 8].copy_from_slice(b".e\0\0\0\0\0\0");
        put(&mut b, h + 12, VA);
        put(&mut b, h + 36, 0x4000_0040); // initialised data, read
    }
    let last = TABLE + 40 * (SECTIONS - 1);
    put(&mut b, last + 8, size); // VirtualSize
    put(&mut b, last + 16, size); // SizeOfRawData
    put(&mut b, last + 20, raw as u32); // PointerToRawData

    let name = 20 * (DESCRIPTORS + 1); // the module name, then the hint/name
    let at = raw + name as usize;
    b[at..at + 12].copy_from_slice(b"ntoskrnl.exe");
    b[at + 18..at + 39].copy_from_slice(b"ExAllocatePoolWithTag"); // after a 2-byte hint
    for d in 0..DESCRIPTORS as usize {
        let at = raw + 20 * d;
        put(&mut b, at, VA + THUNKS); // OriginalFirstThunk
        put(&mut b, at + 12, VA + name);
        put(&mut b, at + 16, VA + THUNKS); // FirstThunk
    }
    for t in 0..THUNK_COUNT as usize {
        put(&mut b, raw + THUNKS as usize + 8 * t, VA + name + 16);
    }

    let mut mapped = vec![0u8; VA as usize];
    mapped[..raw].copy_from_slice(&b[..raw]);
    mapped.extend_from_slice(&b[raw..]);
    (b, mapped)
}

/// Runs every walk over the image on its own thread, so that a hang fails
/// the test instead of stalling it. Bounded walks (one thunk budget for the
/// whole import table, a binary search of the sorted sections) take well
/// under a second here, even unoptimised.
fn walks_finish(data: Vec<u8>, layout: Layout) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let image = PeImage::parse(&data, layout).expect("a valid layout");
        let mut modules = 0;
        let _ = image.for_each_import_module(|_| modules += 1);
        let _ = tx.send(format!("{modules} modules"));
        let _ = (iat_location(&image), check_image(&image, |_| {}));
        let _ = tx.send("check_image".into());
        let mut imports = 0u64;
        let result = image.for_each_import(|_| imports += 1);
        let _ = tx.send(format!("{imports} imports: {result:?}"));
        let _ = for_each_hooked_import(&image, |_, _| {});
        let _ = tx.send("hooked imports".into());
        let _ = civ_engine::iat::plan(&image);
        let _ = tx.send("done".into());
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut done = vec![];
    while done.last().is_none_or(|s| s != "done") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(step) => done.push(step),
            Err(_) => panic!("{layout:?} walks not done in 20 s; finished only {done:?}"),
        }
    }
}

#[test]
fn walks_over_shared_thunk_lists_are_bounded_in_file_layout() {
    walks_finish(hostile_image().0, Layout::File);
}

#[test]
fn walks_over_shared_thunk_lists_are_bounded_in_mapped_layout() {
    walks_finish(hostile_image().1, Layout::Mapped);
}
