//! The IAT planner on real linker output and on the real x64 drivers of
//! the corpus, mapped here as the loader maps them and "bound" with fake
//! kernel addresses: the planned slots are exactly the imports civ hooks,
//! installing writes only those slots, only where they hold the kernel's
//! routine, and only after civ has pinned itself.

use civ_engine::catalog::CATALOG;
use civ_engine::iat::{self, PlanError, SlotWriter};
use civ_engine::pe::{ImportName, Layout, PeImage};
mod common;
use civ_fixtures::{Fixture, corpus_dir, corpus_expected, map_image};
use common::VecWriter;
use std::collections::BTreeSet;

/// The made-up kernel address a name is bound to.
fn kernel(name: &str) -> u64 {
    let h = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    0xFFFF_F800_1000_0000 | ((h & 0xFF_FFFF) << 4)
}

/// The kernel's routine for a catalog row, as civ resolves it at start.
fn original(row: usize) -> u64 {
    kernel(CATALOG[row].name)
}

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
    for (rva, name) in &slots {
        let at = *rva as usize;
        mapped[at..at + 8].copy_from_slice(&kernel(name).to_le_bytes());
    }
    (mapped, slots)
}

const ENTRY_BASE: u64 = 0xFFFF_F805_0000_0000;
fn entry(row: usize) -> Option<u64> {
    Some(ENTRY_BASE + row as u64 * 0x20)
}

fn slot_value(mapped: &[u8], rva: u32) -> u64 {
    u64::from_le_bytes(mapped[rva as usize..rva as usize + 8].try_into().unwrap())
}

/// Plans and installs; checks what changed; returns the checked API names
/// (rows with a DV code) the plan covered.
fn hook_and_check(file: &[u8]) -> BTreeSet<String> {
    let (mut mapped, names) = mapped_and_bound(file);
    let before = mapped.clone();
    let plan = {
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
        assert_eq!(name, CATALOG[usize::from(s.hook)].name);
    }
    // And every catalog import got a slot.
    let catalog_imports = names
        .iter()
        .filter(|(_, n)| CATALOG.iter().any(|h| h.name == n))
        .count();
    assert_eq!(plan.slots().len(), catalog_imports);

    let mut pins = 0;
    let report = iat::install(&plan, &mut VecWriter(&mut mapped), entry, original, || {
        pins += 1;
        true
    });
    assert_eq!(report.hooked as usize, plan.slots().len());
    assert_eq!(
        (
            report.conflicts,
            report.failed,
            report.already,
            report.refused
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        pins,
        usize::from(!plan.slots().is_empty()),
        "pinned once, before writing"
    );
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
        assert_eq!(
            slot_value(&mapped, s.rva),
            entry(usize::from(s.hook)).unwrap()
        );
    }
    // Installing again over hooked slots finds them already hooked.
    let again = iat::install(
        &plan,
        &mut VecWriter(&mut mapped.clone()),
        entry,
        original,
        || panic!("nothing to write, nothing to pin"),
    );
    assert_eq!(again.already as usize, plan.slots().len());
    plan.slots()
        .iter()
        .map(|s| &CATALOG[usize::from(s.hook)])
        .filter(|h| h.code().is_some())
        .map(|h| h.name.to_string())
        .collect()
}

#[test]
fn fixture_driver_is_hooked_exactly_at_its_checked_imports() {
    let checked = hook_and_check(&Fixture::Clean.bytes());
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
        let checked = hook_and_check(&file);
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
fn a_slot_not_holding_the_kernels_routine_is_a_conflict_and_left_alone() {
    let (mut mapped, _) = mapped_and_bound(&Fixture::Clean.bytes());
    let plan = iat::plan(&PeImage::parse(&mapped, Layout::Mapped).unwrap()).unwrap();
    // Every slot holds another hooker's address; then none was resolved.
    let before = mapped.clone();
    for kernel in [|_| 0xDEAD_0000, |_| 0] {
        let r = iat::install(&plan, &mut VecWriter(&mut mapped), entry, kernel, || {
            panic!("a conflict writes nothing, so pins nothing")
        });
        assert_eq!(r.conflicts as usize, plan.slots().len());
        assert_eq!(r.hooked, 0);
        assert!(mapped == before);
    }
    // One slot rewritten by someone else before civ came: only it is left.
    let first = plan.slots()[0];
    mapped[first.rva as usize..first.rva as usize + 8].copy_from_slice(&0x5555u64.to_le_bytes());
    let r = iat::install(&plan, &mut VecWriter(&mut mapped), entry, original, || true);
    assert_eq!(
        (r.conflicts, r.hooked as usize),
        (1, plan.slots().len() - 1)
    );
    assert_eq!(slot_value(&mapped, first.rva), 0x5555);
}

#[test]
fn a_failed_write_or_an_unreadable_slot_is_counted() {
    struct Refuse(bool);
    impl SlotWriter for Refuse {
        type Error = ();
        fn write(&mut self, _: u32, _: u64) -> Result<(), ()> {
            Err(())
        }
        fn read(&mut self, _: u32) -> Option<u64> {
            self.0.then_some(kernel("ExAllocatePoolWithTag"))
        }
    }
    let (mapped, _) = mapped_and_bound(&Fixture::Clean.bytes());
    let plan = iat::plan(&PeImage::parse(&mapped, Layout::Mapped).unwrap()).unwrap();
    let r = iat::install(&plan, &mut Refuse(false), entry, original, || true);
    assert_eq!(r.failed as usize, plan.slots().len());
    // Readable but not writable: the pool slot fails, the others conflict.
    let r = iat::install(&plan, &mut Refuse(true), entry, original, || true);
    assert_eq!(
        (r.failed, r.conflicts as usize, r.hooked),
        (1, plan.slots().len() - 1, 0)
    );
}

#[test]
fn nothing_is_written_while_civ_is_stopping() {
    let (mut mapped, _) = mapped_and_bound(&Fixture::Clean.bytes());
    let before = mapped.clone();
    let plan = iat::plan(&PeImage::parse(&mapped, Layout::Mapped).unwrap()).unwrap();
    let mut asked = 0;
    let r = iat::install(&plan, &mut VecWriter(&mut mapped), entry, original, || {
        asked += 1;
        false
    });
    assert_eq!(
        (r.refused as usize, r.hooked, asked),
        (plan.slots().len(), 0, 1)
    );
    assert!(mapped == before);
}

#[test]
fn an_iat_in_a_pageable_or_discardable_section_is_refused() {
    let (mapped, _) = mapped_and_bound(&Fixture::Clean.bytes());
    let pe = PeImage::parse(&mapped, Layout::Mapped).unwrap();
    let rva = iat::plan(&pe).unwrap().slots()[0].rva;
    let section = pe.section_containing(rva).unwrap();
    let header = section.header_offset;
    // Renamed PAGE..., or marked discardable like INIT.
    let mut paged = mapped.clone();
    paged[header..header + 8].copy_from_slice(b"PAGEDATA");
    let mut discardable = mapped.clone();
    let flags = header + 36;
    let c = u32::from_le_bytes(discardable[flags..flags + 4].try_into().unwrap()) | 0x0200_0000;
    discardable[flags..flags + 4].copy_from_slice(&c.to_le_bytes());
    for image in [paged, discardable] {
        let pe = PeImage::parse(&image, Layout::Mapped).unwrap();
        assert_eq!(iat::plan(&pe).unwrap_err(), PlanError::PageableIat);
    }
}
