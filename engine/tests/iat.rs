//! The IAT planner on real linker output and on the real x64 drivers of
//! the corpus, mapped here as the loader maps them and "bound" with fake
//! kernel addresses: the planned slots are exactly the imports civ hooks,
//! installing writes only those slots, and restoring gives the image back
//! byte for byte.

use civ_engine::catalog::CATALOG;
use civ_engine::iat::{self, PlanError, SlotWriter};
use civ_engine::pe::{ImportName, Layout, PeImage};
mod common;
use civ_fixtures::{Fixture, corpus_dir, corpus_expected, map_image};
use common::VecWriter;
use std::collections::BTreeSet;

/// A mapped image whose IAT slots hold made-up kernel addresses, one per
/// import name, as the loader leaves them; and the names by slot.
fn mapped_and_bound(file: &[u8]) -> (Vec<u8>, Vec<(u32, String)>) {
    let mut mapped = map_image(file);
    let mut slots = Vec::new();
    {
        let pe = PeImage::parse(&mapped, Layout::Mapped).expect("mapped image parses");
        pe.for_each_import(|imp| {
            let name = match imp.name {
                ImportName::Name(n) => String::from_utf8_lossy(n).into_owned(),
                ImportName::Ordinal(o) => format!("#{o}"),
            };
            slots.push((imp.iat_rva, name));
        })
        .expect("imports");
    }
    for (i, (rva, _)) in slots.iter().enumerate() {
        let at = *rva as usize;
        let fake = 0xFFFF_F800_1000_0000u64 + (i as u64) * 0x40;
        mapped[at..at + 8].copy_from_slice(&fake.to_le_bytes());
    }
    (mapped, slots)
}

const ENTRY_BASE: u64 = 0xFFFF_F805_0000_0000;
fn entry(row: usize) -> Option<u64> {
    Some(ENTRY_BASE + row as u64 * 0x20)
}

/// Plans, installs, checks what changed, restores; returns the checked
/// API names (rows with a DV code) the plan covered.
fn round_trip(file: &[u8]) -> BTreeSet<String> {
    let (mut mapped, names) = mapped_and_bound(file);
    let before = mapped.clone();
    let mut plan = {
        let pe = PeImage::parse(&mapped, Layout::Mapped).unwrap();
        iat::plan(&pe).expect("plan")
    };
    // Every planned slot is an import of that catalog API.
    for s in plan.slots() {
        let name = &names
            .iter()
            .find(|(rva, _)| *rva == s.rva)
            .expect("a real import slot")
            .1;
        assert_eq!(name, CATALOG[s.hook].name);
    }
    // And every catalog import got a slot.
    let catalog_imports = names
        .iter()
        .filter(|(_, n)| CATALOG.iter().any(|h| h.name == n))
        .count();
    assert_eq!(plan.slots().len(), catalog_imports);

    let mut originals = [0u64; CATALOG.len()];
    let report = iat::install(&mut plan, &mut VecWriter(&mut mapped), entry, |row, v| {
        if originals[row] == 0 {
            originals[row] = v;
        }
        originals[row]
    });
    assert_eq!(report.hooked as usize, plan.slots().len());
    assert_eq!((report.conflicts, report.failed, report.already), (0, 0, 0));
    // Only the planned slots changed, each to its row's entry.
    for (i, (a, b)) in before.iter().zip(&mapped).enumerate() {
        if a != b {
            let slot = plan
                .slots()
                .iter()
                .find(|s| (s.rva as usize..s.rva as usize + 8).contains(&i));
            assert!(
                slot.is_some(),
                "byte {i:#x} changed outside every planned slot"
            );
        }
    }
    for s in plan.slots() {
        let at = s.rva as usize;
        assert_eq!(
            u64::from_le_bytes(mapped[at..at + 8].try_into().unwrap()),
            entry(s.hook).unwrap()
        );
        assert_eq!(originals[s.hook], s.value);
    }
    // Installing again over hooked slots finds them already hooked.
    {
        let pe = PeImage::parse(&mapped, Layout::Mapped).unwrap();
        let mut again = iat::plan(&pe).unwrap();
        let r = iat::install(
            &mut again,
            &mut VecWriter(&mut mapped.clone()),
            entry,
            |row, _| originals[row],
        );
        assert_eq!(r.already as usize, plan.slots().len());
    }
    let (restored, failed) = iat::restore(&mut plan, &mut VecWriter(&mut mapped), entry);
    assert_eq!((restored as usize, failed), (plan.slots().len(), 0));
    assert!(
        mapped == before,
        "restore did not give the image back byte for byte"
    );
    plan.slots()
        .iter()
        .filter(|s| CATALOG[s.hook].code().is_some())
        .map(|s| CATALOG[s.hook].name.to_string())
        .collect()
}

#[test]
fn fixture_driver_round_trip() {
    let checked = round_trip(&Fixture::Clean.bytes());
    assert_eq!(
        checked,
        BTreeSet::from([
            "ExAllocatePoolWithTag".into(),
            "MmMapLockedPagesSpecifyCache".into()
        ])
    );
}

#[test]
fn corpus_x64_drivers_plan_exactly_their_hooked_imports() {
    let corpus = corpus_dir();
    let mut seen = 0;
    for row in corpus_expected()
        .iter()
        .filter(|r| r.machine == "AMD64" && r.path.ends_with(".sys"))
    {
        let file = std::fs::read(corpus.join(&row.path)).unwrap();
        let checked = round_trip(&file);
        let expected: BTreeSet<String> = row.hooked.iter().cloned().collect();
        assert_eq!(checked, expected, "{}", row.path);
        seen += 1;
    }
    assert!(seen >= 3);
}

#[test]
fn pe32_and_file_layout_are_refused() {
    let corpus = corpus_dir();
    let x86 = std::fs::read(corpus.join("vigembus-1.17/x86/ViGEmBus.sys")).unwrap();
    let mapped = map_image(&x86);
    let pe = PeImage::parse(&mapped, Layout::Mapped).unwrap();
    assert_eq!(iat::plan(&pe).unwrap_err(), PlanError::NotPe32Plus);
    let file = Fixture::Clean.bytes();
    let pe = PeImage::parse(&file, Layout::File).unwrap();
    assert_eq!(iat::plan(&pe).unwrap_err(), PlanError::NotMapped);
}

#[test]
fn a_slot_pointing_elsewhere_is_a_conflict_and_left_alone() {
    let (mut mapped, _) = mapped_and_bound(&Fixture::Clean.bytes());
    let before = mapped.clone();
    let mut plan = iat::plan(&PeImage::parse(&mapped, Layout::Mapped).unwrap()).unwrap();
    // Another original is already recorded for every row.
    let r = iat::install(&mut plan, &mut VecWriter(&mut mapped), entry, |_, _| {
        0xDEAD_0000
    });
    assert_eq!(r.conflicts as usize, plan.slots().len());
    assert_eq!(r.hooked, 0);
    assert!(mapped == before);
    assert!(plan.slots().iter().all(|s| !s.hooked));
    assert_eq!(
        iat::restore(&mut plan, &mut VecWriter(&mut mapped), entry),
        (0, 0)
    );
}

#[test]
fn a_failed_write_is_counted_and_not_restored() {
    struct Refuse;
    impl SlotWriter for Refuse {
        type Error = ();
        fn write(&mut self, _: u32, _: u64) -> Result<(), ()> {
            Err(())
        }
        fn read(&mut self, _: u32) -> Option<u64> {
            None
        }
    }
    let (mapped, _) = mapped_and_bound(&Fixture::Clean.bytes());
    let mut plan = iat::plan(&PeImage::parse(&mapped, Layout::Mapped).unwrap()).unwrap();
    let r = iat::install(&mut plan, &mut Refuse, entry, |_, v| v);
    assert_eq!(r.failed as usize, plan.slots().len());
    assert_eq!(iat::restore(&mut plan, &mut Refuse, entry), (0, 0));
}

#[test]
fn restore_leaves_a_slot_that_changed_since_alone() {
    let (mut mapped, _) = mapped_and_bound(&Fixture::Clean.bytes());
    let mut plan = iat::plan(&PeImage::parse(&mapped, Layout::Mapped).unwrap()).unwrap();
    let r = iat::install(&mut plan, &mut VecWriter(&mut mapped), entry, |_, v| v);
    assert!(r.hooked >= 2);
    // Someone else rewrote the first slot after civ did.
    let first = plan.slots()[0];
    mapped[first.rva as usize..first.rva as usize + 8].copy_from_slice(&0x5555u64.to_le_bytes());
    let (restored, failed) = iat::restore(&mut plan, &mut VecWriter(&mut mapped), entry);
    assert_eq!((restored, failed), (r.hooked - 1, 1));
    assert_eq!(
        u64::from_le_bytes(
            mapped[first.rva as usize..first.rva as usize + 8]
                .try_into()
                .unwrap()
        ),
        0x5555
    );
    assert!(plan.slots()[0].hooked, "an unrestored slot stays marked");
}
