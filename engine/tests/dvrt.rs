//! Import call optimization is detected from the dynamic value relocation
//! table, reached both ways the load configuration can name it, in both
//! table versions; other dynamic relocations, old load configurations and
//! damaged tables say "no" or give an error, never a panic.

use civ_engine::dvrt::{DIR_LOAD_CONFIG, has_import_call_transfers};
use civ_engine::pe::{Layout, PeError, PeImage};
use civ_fixtures::{Fixture, corpus_dir, corpus_expected, map_image};
use core::mem::offset_of;
use object::pe::ImageLoadConfigDirectory64;

/// Where the test puts the load configuration and the table, past the
/// mapped image.
const SPARE: usize = 0x1000;

/// How the load configuration names the table.
#[derive(Clone, Copy)]
enum Via {
    /// DynamicValueRelocTableSection / Offset.
    Section,
    /// The older DynamicValueRelocTable address.
    Address,
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// The clean fixture, mapped, with a load configuration (`config_size` as
/// its Size) naming `table` as its DVRT.
fn image_with(table: &[u8], via: Via, config_size: u32) -> Vec<u8> {
    let mut b = map_image(&Fixture::Clean.bytes());
    let config_at = b.len();
    let table_at = config_at + 0x200;
    b.resize(table_at + table.len() + SPARE, 0);
    put(&mut b, table_at, table);
    let pe = PeImage::parse(&b, Layout::Mapped).unwrap();
    let (image_base, last) = (
        pe.image_base(),
        pe.sections().last().map(|s| (s.index, s.rva())).unwrap(),
    );
    // Data directory 10 of the PE32+ optional header.
    let nt = u32::from_le_bytes(b[0x3C..0x40].try_into().unwrap()) as usize;
    let dir = nt + 24 + 112 + DIR_LOAD_CONFIG * 8;
    put(&mut b, dir, &(config_at as u32).to_le_bytes());
    put(&mut b, dir + 4, &0x140u32.to_le_bytes());
    put(&mut b, config_at, &config_size.to_le_bytes());
    match via {
        Via::Section => {
            let offset = (table_at - last.1 as usize) as u32;
            put(
                &mut b,
                config_at
                    + offset_of!(ImageLoadConfigDirectory64, dynamic_value_reloc_table_offset),
                &offset.to_le_bytes(),
            );
            put(
                &mut b,
                config_at
                    + offset_of!(
                        ImageLoadConfigDirectory64,
                        dynamic_value_reloc_table_section
                    ),
                &(last.0 as u16 + 1).to_le_bytes(),
            );
        }
        Via::Address => put(
            &mut b,
            config_at + offset_of!(ImageLoadConfigDirectory64, dynamic_value_reloc_table),
            &(image_base + table_at as u64).to_le_bytes(),
        ),
    }
    b
}

/// A version 1 table: (symbol, base relocation bytes) entries.
fn v1(entries: &[(u64, u32)]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(symbol, size) in entries {
        body.extend(symbol.to_le_bytes());
        body.extend(size.to_le_bytes());
        body.extend(vec![0u8; size as usize]);
    }
    let mut t = 1u32.to_le_bytes().to_vec();
    t.extend((body.len() as u32).to_le_bytes());
    t.extend(body);
    t
}

/// A version 2 table: (symbol, fixup bytes) entries with 24-byte headers.
fn v2(entries: &[(u64, u32)]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(symbol, fixups) in entries {
        body.extend(24u32.to_le_bytes());
        body.extend(fixups.to_le_bytes());
        body.extend(symbol.to_le_bytes());
        body.extend([0u8; 8]); // symbol group, flags
        body.extend(vec![0u8; fixups as usize]);
    }
    let mut t = 2u32.to_le_bytes().to_vec();
    t.extend((body.len() as u32).to_le_bytes());
    t.extend(body);
    t
}

fn detect(image: &[u8]) -> Result<bool, PeError> {
    has_import_call_transfers(&PeImage::parse(image, Layout::Mapped).unwrap())
}

const FULL: u32 = 0x140;

#[test]
fn import_control_transfers_are_found_either_way_in_either_version() {
    for via in [Via::Section, Via::Address] {
        let image = image_with(&v1(&[(3, 12)]), via, FULL);
        assert_eq!(detect(&image), Ok(true));
        let image = image_with(&v1(&[(1, 8), (4, 16), (3, 12)]), via, FULL);
        assert_eq!(detect(&image), Ok(true), "after other entries");
        let image = image_with(&v2(&[(5, 4), (3, 8)]), via, FULL);
        assert_eq!(detect(&image), Ok(true), "version 2");
        let image = image_with(&v1(&[(8, 12)]), via, FULL);
        assert_eq!(
            detect(&image),
            Ok(true),
            "ARM64's kernel import call transfer"
        );
    }
}

#[test]
fn other_dynamic_relocations_and_old_configurations_are_not_it() {
    assert_eq!(detect(&map_image(&Fixture::Clean.bytes())), Ok(false));
    for table in [
        v1(&[(1, 8), (4, 16)]),
        v1(&[(3, 0)]),
        v2(&[(4, 8)]),
        v1(&[]),
    ] {
        assert_eq!(detect(&image_with(&table, Via::Section, FULL)), Ok(false));
    }
    // A load configuration from before the DVRT fields existed.
    let old = image_with(&v1(&[(3, 12)]), Via::Section, 0x40);
    assert_eq!(detect(&old), Ok(false));
    // An unknown table version.
    let mut odd = v1(&[(3, 12)]);
    odd[0] = 9;
    assert_eq!(detect(&image_with(&odd, Via::Section, FULL)), Ok(false));
}

#[test]
fn damaged_tables_are_errors_not_panics() {
    // A table that claims more than the image holds.
    let mut long = v1(&[(3, 12)]);
    long[4..8].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    assert!(matches!(
        detect(&image_with(&long, Via::Section, FULL)),
        Err(PeError::BadRva { .. })
    ));
    // An entry cut short inside the table.
    let mut cut = v1(&[(1, 0)]);
    cut[4..8].copy_from_slice(&10u32.to_le_bytes());
    cut.truncate(8 + 10);
    let image = image_with(&cut, Via::Section, FULL);
    assert!(detect(&image).is_err());
    // A section index past the table of sections, an address below the base.
    let mut b = image_with(&v1(&[(3, 12)]), Via::Section, FULL);
    let config_at = map_image(&Fixture::Clean.bytes()).len();
    let at = config_at
        + offset_of!(
            ImageLoadConfigDirectory64,
            dynamic_value_reloc_table_section
        );
    b[at..at + 2].copy_from_slice(&999u16.to_le_bytes());
    assert_eq!(detect(&b), Ok(false));
    let mut b = image_with(&v1(&[(3, 12)]), Via::Address, FULL);
    let at = config_at + offset_of!(ImageLoadConfigDirectory64, dynamic_value_reloc_table);
    b[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
    assert_eq!(detect(&b), Ok(false));
    // Thousands of empty entries end at the entry budget.
    let many = v2(&vec![(4, 0); 5000]);
    assert_eq!(detect(&image_with(&many, Via::Section, FULL)), Ok(false));
}

#[test]
fn the_corpus_drivers_predate_import_call_optimization() {
    let corpus = corpus_dir();
    for row in corpus_expected() {
        let file = std::fs::read(corpus.join(&row.path)).unwrap();
        let mapped = map_image(&file);
        let pe = PeImage::parse(&mapped, Layout::Mapped).unwrap();
        assert_eq!(has_import_call_transfers(&pe), Ok(false), "{}", row.path);
    }
}
