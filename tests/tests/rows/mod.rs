//! What a `call_<API>.sys` fixture (tests/fixtures/rust/target_call.rs)
//! must leave in civ.sys's log after its NX call then its executable one,
//! whichever loader ran it: shared by the Wine 8 and Wine 10 tests.
#![allow(dead_code)]

use civ_engine::catalog::CATALOG;
use civ_engine::code::Counter;
use civ_engine::protocol::{SitesReply, TargetRecord};
use civ_fixtures::unwind::image::Image;
use civ_fixtures::wine;
use std::path::Path;

const TAG: u64 = u32::from_le_bytes(*b"fxCI") as u64;

/// What a fixture's executable call must leave: the API civ sees (a lookup
/// through MmGetSystemRoutineAddress ends in ExAllocatePoolWithTag), the
/// counter, arg3 and arg4 (the fixtures' arguments).
pub fn expected(api: &str) -> (&'static str, Counter, u64, u64) {
    let row = |name: &str| {
        CATALOG
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.name)
            .expect("a catalog API")
    };
    match api {
        "ExAllocatePool" | "ExAllocatePoolWithQuota" => (row(api), Counter::ExecutePoolType, 0, 0),
        "ExAllocatePoolWithTag" | "ExAllocatePoolWithQuotaTag" => {
            (row(api), Counter::ExecutePoolType, 0, TAG)
        }
        // POOL_FLAG_NON_PAGED_EXECUTE: arg3 is the flags.
        "ExAllocatePool2" => (row(api), Counter::ExecutePoolType, 0x80, TAG),
        "ExInitializeNPagedLookasideList" => (row(api), Counter::ExecutePoolType, 0, TAG),
        "MmGetSystemRoutineAddress" => ("ExAllocatePoolWithTag", Counter::ExecutePoolType, 0, TAG),
        // PAGE_EXECUTE_READ.
        "MmProtectMdlSystemAddress" => (row(api), Counter::ExecutePageProtection, 0x20, 0),
        // NormalPagePriority without MdlMappingNoExecute.
        "MmMapLockedPagesSpecifyCache" => (row(api), Counter::ExecutePageMapping, 0x10, 0),
        // tests/fixtures/c/pool_c.c.
        "pool_c" => (
            "ExAllocatePoolWithTag",
            Counter::ExecutePoolType,
            0,
            0x4943_5866,
        ),
        other => panic!("no expectation for {other}"),
    }
}

/// A call instruction ends at `offset` in the image file at `path`.
pub fn assert_follows_call(path: &Path, offset: u64, what: &str) {
    let bytes = std::fs::read(path).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let rva = u32::try_from(offset).unwrap_or_else(|_| panic!("{what}: offset {offset:#x}"));
    assert!(
        wine::follows_call(&image, rva),
        "{what}: no call instruction ends at offset {rva:#x}"
    );
}

/// Checks one fixture's target record and site: one slot hooked, its first
/// load, exactly the executable call counted, the site's API, arg3, arg4
/// and one hit, the caller at a call instruction, the call stack starting
/// there (and, with `caller_in_fixture`, going on to the call of that
/// function, in the fixture), and one debug line. `out` is Wine's output.
/// Returns the target's record.
pub fn check<'a>(
    out: &str,
    targets: &'a [TargetRecord],
    sites: &SitesReply<'_>,
    (api, file, path): (&str, &str, &Path),
    caller_in_fixture: bool,
) -> &'a TargetRecord {
    let (index, t) = targets
        .iter()
        .enumerate()
        .find(|(_, t)| t.name() == file)
        .unwrap_or_else(|| panic!("{file} not a target:\n{out}"));
    let (seen_api, counter, arg3, arg4) = expected(api);
    assert_eq!((t.hooked_slots, t.conflicts, t.load), (1, 0, 1), "{file}");
    for c in Counter::ALL {
        assert_eq!(
            t.counter(c),
            u64::from(c == counter),
            "{file}: {} (the NX call must not count)",
            c.label()
        );
    }
    let api_index = CATALOG.iter().position(|h| h.name == seen_api).unwrap();
    let site = sites
        .sites
        .iter()
        .find(|s| usize::from(s.target) == index)
        .unwrap_or_else(|| panic!("{file}: no site"));
    assert_eq!(
        (
            site.counter,
            usize::from(site.api),
            site.arg3,
            site.arg4,
            site.hits
        ),
        (counter, api_index, arg3, arg4, 1),
        "{file}"
    );
    assert!(site.offset < t.size, "{file}");
    assert_follows_call(path, site.offset, file);
    let stack = site.stack();
    assert_eq!(
        stack.first().copied(),
        Some(t.base + site.offset),
        "{file}: the stack starts at the call site: {stack:x?}"
    );
    if caller_in_fixture {
        let caller = *stack
            .get(1)
            .unwrap_or_else(|| panic!("{file}: no caller frame: {stack:x?}"));
        assert!(
            (t.base..t.base + t.size).contains(&caller) && caller != stack[0],
            "{file}: caller {caller:#x} not another place in the fixture"
        );
        assert_follows_call(path, caller - t.base, &format!("{file}'s caller"));
    }
    let line = format!(
        "violation {} {seen_api} from {file}+{:#x} (load 1): arg3 {arg3:#x}",
        counter.tag(),
        site.offset
    );
    assert_eq!(
        out.matches(&line).count(),
        1,
        "{file}: no single debug line '{line}':\n{out}"
    );
    t
}

/// Checks the bug check a fixture's executable call raised in bug-check
/// mode: 0xC4 with DV's code, Arg2 the caller (at a call instruction in
/// the fixture, as civ's log line placed it), arg3 and arg4.
pub fn check_bug_check(
    out: &str,
    hooked: &[wine::Hooked],
    bug_check: [u64; 5],
    (api, file, path): (&str, &str, &Path),
) {
    let (_, counter, arg3, arg4) = expected(api);
    let h = hooked
        .iter()
        .find(|h| h.name == file)
        .unwrap_or_else(|| panic!("{file} not hooked:\n{out}"));
    let [code, a1, caller, a3, a4] = bug_check;
    assert_eq!(
        (code, a1, a3, a4),
        (0xC4, u64::from(counter.code().unwrap().value()), arg3, arg4),
        "{file}"
    );
    assert!(
        (h.base..h.base + h.size).contains(&caller),
        "{file}: caller {caller:#x} outside the image"
    );
    assert_follows_call(path, caller - h.base, file);
}
