//! Fuzzes civ-engine's PE reader: every input is parsed in both layouts and,
//! where it parses, every public reading function runs on it. The reader
//! must never panic (overflow checks and debug assertions are on) and never
//! hang (run.sh passes -timeout). A file-layout image that parses is also
//! mapped as the loader would, so the mapped layout sees realistic images.
#![no_main]

use civ_engine::image::{check_image, for_each_hooked_import, iat_location};
use civ_engine::pe::{Layout, PeError, PeImage};
use libfuzzer_sys::fuzz_target;
use std::hint::black_box;

/// Mapped copies larger than this are skipped, to keep executions fast.
const MAX_MAPPED: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    for layout in [Layout::File, Layout::Mapped] {
        match PeImage::parse(data, layout) {
            Err(e) => message(e),
            Ok(image) => {
                read_all(&image, data);
                if layout == Layout::File
                    && let Some(mapped) = map(&image)
                    && let Ok(m) = PeImage::parse(&mapped, Layout::Mapped)
                {
                    read_all(&m, data);
                }
            }
        }
    }
});

/// Every error must render to a message (and rendering must not panic).
fn message(e: PeError) {
    assert!(!e.to_string().is_empty());
}

fn read_all(image: &PeImage<'_>, input: &[u8]) {
    let _ = (
        image.data(),
        image.layout(),
        image.is_64(),
        image.machine(),
        image.image_base(),
    );
    let _ = (
        image.section_alignment(),
        image.file_alignment(),
        image.size_of_image(),
        image.size_of_headers(),
    );
    // RVAs worth probing: section bounds, directories, and a few u32s from
    // the input's tail (where the fuzzer can steer them without breaking
    // the headers).
    let mut rvas = vec![0, image.size_of_image(), u32::MAX];
    for s in image.sections() {
        let _ = (
            s.index,
            s.header_offset,
            s.name(),
            s.raw_name(),
            s.virtual_size(),
            s.raw_size(),
        );
        let _ = (
            s.raw_offset(),
            s.characteristics(),
            s.is_executable(),
            s.is_writable(),
        );
        let _ = image.section_containing(s.rva()) == Some(s);
        rvas.extend([
            s.rva(),
            s.rva().wrapping_add(s.extent()),
            s.rva().wrapping_add(s.extent()).wrapping_sub(1),
        ]);
        let _ = s.contains(s.rva());
    }
    rvas.extend(
        (0..16)
            .filter_map(|i| image.data_directory(i))
            .flat_map(|(rva, size)| [rva, rva.wrapping_add(size)]),
    );
    let tail = input.len().saturating_sub(16);
    rvas.extend(
        input[tail..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
    for rva in rvas {
        let _ = image.section_containing(rva);
        for len in [0, 1, 8, 0x1000] {
            let _ = image.bytes_at(rva, len, "fuzz").map_err(message);
        }
        let _ = image.bytes_from(rva, "fuzz").map_err(message);
    }

    let _ = iat_location(image).map_err(message);
    let _ = check_image(image, |f| {
        black_box(f);
    })
    .map_err(message);
    let _ = image
        .for_each_import_module(|m| {
            black_box(m);
        })
        .map_err(message);
    let _ = image
        .for_each_import(|i| {
            black_box(i);
        })
        .map_err(message);
    let _ = image
        .for_each_base_relocation(|rva, typ| {
            black_box((rva, typ));
        })
        .map_err(message);
    let _ = for_each_hooked_import(image, |h, i| {
        black_box((h, i));
    })
    .map_err(message);
    // The driver's IAT planner reads mapped x64 images the same way.
    let _ = black_box(civ_engine::iat::plan(image));
}

/// The image as the loader lays it out: the headers at 0 and each section's
/// raw data at its RVA, in SizeOfImage bytes.
fn map(image: &PeImage<'_>) -> Option<Vec<u8>> {
    let data = image.data();
    if image.size_of_image() > MAX_MAPPED {
        return None;
    }
    let mut mapped = vec![0u8; image.size_of_image() as usize];
    let n = (image.size_of_headers() as usize)
        .min(data.len())
        .min(mapped.len());
    mapped[..n].copy_from_slice(&data[..n]);
    for s in image.sections() {
        let dst = s.rva() as usize;
        let len = (s.raw_size().min(s.extent()) as usize).min(mapped.len().saturating_sub(dst));
        if len > 0 {
            let src = data.get(s.raw_offset() as usize..)?.get(..len)?;
            mapped[dst..dst + len].copy_from_slice(src);
        }
    }
    Some(mapped)
}
