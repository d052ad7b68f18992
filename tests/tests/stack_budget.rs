//! civ.sys's stack budget (issue 10): x64 kernel stacks are 24 KiB, and
//! DriverEntry, the load-image notification and IRP dispatch run deep in
//! the kernel's own frames, the entry stubs on the stack of the driver
//! they check. Measured on the built WDM image from its own unwind data
//! (.pdata/.xdata), no frame of civ's may be over 2 KiB, and no chain of
//! civ's frames over 6 KiB from any entry point (DriverEntry, the
//! callbacks and dispatch routines whose address civ hands the kernel,
//! the entry stubs, and anything else nothing calls directly). Chains
//! follow direct calls, tail jumps and the indirect calls whose targets
//! are known statically; a kernel routine ends a chain.

use civ_fixtures::unwind::Analysis;
use civ_fixtures::unwind::calls::{Callee, Transfer};
use civ_fixtures::unwind::stack::Budget;
use civ_fixtures::unwind::walk;
use std::fmt::Write as _;
use std::process::Command;

/// Largest frame allowed (Code Analysis warns at 1 KiB in kernel code).
const MAX_FRAME: u32 = 2048;
/// Deepest chain of civ's own frames allowed from an entry point.
const MAX_CHAIN: u32 = 6144;
/// Offenders listed in a failure.
const SHOWN: usize = 12;

#[test]
fn civ_sys_frames_and_chains_are_within_the_stack_budget() {
    let a = Analysis::of_civ_sys();
    let budget = Budget::measure(&a.image, &a.code, &a.calls);
    let frames = budget.frames_over(MAX_FRAME);
    let chains = budget.chains_over(MAX_CHAIN);
    if frames.is_empty() && chains.is_empty() {
        return;
    }
    let mut report = format!(
        "civ.sys is over its stack budget (frames <= {MAX_FRAME} bytes, chains of civ's \
         frames <= {MAX_CHAIN} bytes from each entry point)\n"
    );
    if !frames.is_empty() {
        let _ = writeln!(report, "frames over {MAX_FRAME} bytes:");
        for (f, bytes) in frames.iter().take(SHOWN) {
            let _ = writeln!(report, "  {bytes:>6}  {}", a.name(*f));
        }
    }
    if !chains.is_empty() {
        let _ = writeln!(
            report,
            "entry points whose deepest chain is over {MAX_CHAIN} bytes (each function with \
             its frame):"
        );
        for (root, _) in chains.iter().take(SHOWN) {
            let _ = writeln!(report, "  {}", budget.describe(*root, |r| a.name(r)));
        }
    }
    let _ = writeln!(report, "not seen by the analysis:");
    for u in &budget.unseen {
        let _ = writeln!(report, "  - {u}");
    }
    if let Some(note) = &a.names_note {
        let _ = writeln!(report, "names: {note}");
    }
    panic!("{report}");
}

#[test]
fn every_entry_stub_is_an_entry_point_whose_chain_reaches_the_engine() {
    // The stubs are the pointers civ writes into targets' IATs: found as
    // the relocated pointers of the ENTRIES table, named in the PDB.
    let a = Analysis::of_civ_sys();
    let budget = Budget::measure(&a.image, &a.code, &a.calls);
    let stubs: Vec<u32> = budget
        .roots
        .keys()
        .copied()
        .filter(|f| a.name(*f).starts_with("civ_engine::stubs::entry_"))
        .collect();
    assert_eq!(
        stubs.len(),
        civ_engine::catalog::CATALOG.len(),
        "a stub per catalog row among the entry points ({:?})",
        a.names_note
    );
    for stub in stubs {
        let chain = &budget.chains[&stub];
        // The stub's own frames, then dispatch's and what it calls.
        assert!(
            chain.links.len() >= 3 && chain.bytes > 48,
            "{}",
            budget.describe(stub, |r| a.name(r))
        );
    }
}

/// The analysis on a fixture driver whose shape its source states
/// (tests/fixtures/rust/unwind_probe.rs), named by its PDB.
#[test]
fn the_analysis_follows_tables_tail_calls_and_recursion_in_a_fixture_driver() {
    let a = Analysis::of(&civ_fixtures::unwind::probe_fixture()).expect("the fixture");
    assert_eq!(a.names_note, None, "the fixture's PDB names every function");
    let find = |name: &str| -> u32 {
        let full = format!("unwind_probe::{name}");
        a.code
            .functions
            .keys()
            .copied()
            .find(|&f| a.name(f) == full)
            .unwrap_or_else(|| panic!("no function {full}"))
    };
    let (entry, small, large, tail) = (
        find("driver_entry"),
        find("small_frame"),
        find("large_frame"),
        find("tail"),
    );
    let budget = Budget::measure(&a.image, &a.code, &a.calls);
    // The 3,000-byte buffer is in large_frame's frame, read from its
    // unwind codes.
    let frame = budget.frames[&large];
    assert!(
        (3000..3200).contains(&frame),
        "large_frame's frame: {frame}"
    );
    // DriverEntry calls large_frame and small_frame only through the
    // table HANDLERS is set to point to, and the kernel's routine through
    // the global it stores it in.
    let indirect: Vec<&Callee> = a
        .calls
        .sites
        .iter()
        .filter(|s| s.function == entry && s.indirect)
        .flat_map(|s| &s.callees)
        .collect();
    for expected in [Callee::Own(large), Callee::Own(small)] {
        assert!(
            indirect.contains(&&expected),
            "{expected:?} in {indirect:?}"
        );
    }
    assert!(
        indirect.iter().any(|c| matches!(c, Callee::RunTime(_))),
        "{indirect:?}"
    );
    assert!(
        indirect.contains(&&Callee::Import(
            "ntoskrnl.exe!MmGetSystemRoutineAddress".into()
        )),
        "{indirect:?}"
    );
    // So the deepest chain from DriverEntry is its frame on large_frame's.
    let chain = &budget.chains[&entry];
    assert_eq!(
        chain.links.iter().map(|l| l.function).collect::<Vec<_>>(),
        [entry, large],
        "{}",
        budget.describe(entry, |r| a.name(r))
    );
    assert_eq!(chain.bytes, budget.frames[&entry] + frame);
    // `tail` ends in a jump to small_frame, which takes its frame's place.
    assert!(
        a.calls.sites.iter().any(|s| s.function == tail
            && s.transfer == Transfer::TailJump
            && s.callees == [Callee::Own(small)]),
        "tail's jump"
    );
    assert_eq!(
        budget.chains[&tail].bytes,
        budget.frames[&small].max(budget.frames[&tail])
    );
    // ping and pong call each other (the compiler may fold one into the
    // other): a cycle.
    assert!(
        budget
            .recursion
            .iter()
            .flatten()
            .any(|f| a.name(*f).starts_with("unwind_probe::p")),
        "{:?}",
        budget.recursion
    );
    // The compiler's unwind data is right at every instruction.
    let report = walk::check(&a.image, &a.code);
    assert!(
        report.checked > 50 && report.mismatches.is_empty(),
        "{report:?}"
    );
}

/// Each RUNTIME_FUNCTION's stack bytes as `llvm-readobj --unwind` shows
/// its codes: begin RVA and the sum of its pushes and allocations.
fn readobj_frames(path: &std::path::Path, image_base: u64) -> Vec<(u32, u32)> {
    let out = Command::new("llvm-readobj")
        .arg("--unwind")
        .arg(path)
        .output()
        .expect("llvm-readobj (apt-get install llvm; scripts/setup.sh does)");
    assert!(out.status.success(), "llvm-readobj failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames: Vec<(u32, u32)> = Vec::new();
    let number = |s: &str| -> u32 {
        let s = s.trim().trim_end_matches(')');
        match s.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).expect("hex"),
            None => s.parse().expect("decimal"),
        }
    };
    for line in text.lines().map(str::trim) {
        if let Some(addr) = line.strip_prefix("StartAddress: (") {
            let va = u64::from_str_radix(addr.trim_end_matches(')').trim_start_matches("0x"), 16)
                .expect("address");
            frames.push(((va - image_base) as u32, 0));
        } else if let Some((_, op)) = line.split_once(": ")
            && let Some(last) = frames.last_mut()
        {
            if op.starts_with("PUSH_NONVOL") {
                last.1 += 8;
            } else if let Some(size) = op
                .strip_prefix("ALLOC_LARGE size=")
                .or_else(|| op.strip_prefix("ALLOC_SMALL size="))
            {
                last.1 += number(size);
            } else if op.starts_with("PUSH_MACHFRAME") {
                last.1 += if op.contains("error") { 48 } else { 40 };
            }
        }
    }
    frames
}

#[test]
fn the_unwind_parser_agrees_with_llvm_readobj_on_civ_sys() {
    let path = civ_fixtures::wine::civ_sys();
    let a = Analysis::of(&path).expect("civ.sys");
    let expected = readobj_frames(&path, a.image.image_base);
    let ours: Vec<(u32, u32)> = a
        .image
        .runtime_functions
        .iter()
        .map(|rf| {
            let chain = a.image.unwind(*rf).expect("unwind info parses");
            (rf.begin, chain.infos[0].stack_bytes())
        })
        .collect();
    assert!(ours.len() > 10, "civ.sys has unwind data");
    assert_eq!(ours, expected);
}
