//! The entry stubs and handlers, called the way a target driver calls a
//! hooked API: through an `extern "win64"` function pointer. Every argument,
//! the return value, the stack alignment the original sees and the caller's
//! address must arrive intact; executable requests are caught with DV's
//! code and arguments, NX requests pass through untouched.
#![cfg(all(target_arch = "x86_64", not(miri), not(loom)))]

use civ_engine::catalog::{CATALOG, Rule};
use civ_engine::check::{mdl, page, pool_flags, pool_type};
use civ_engine::runtime::{self, KernelOps, LOG, UnicodeString};
use civ_engine::settings::Action;
use civ_engine::stubs;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The runtime is global: tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

static PROBE_RSP: AtomicU64 = AtomicU64::new(0);
static PROBE_ARGS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// The fake original: notes RSP at entry, then records its arguments.
#[unsafe(naked)]
extern "win64" fn probe() {
    core::arch::naked_asm!(
        "mov [rip + {rsp}], rsp",
        "jmp {record}",
        rsp = sym PROBE_RSP,
        record = sym probe_record,
    )
}

#[allow(clippy::too_many_arguments)]
extern "win64" fn probe_record(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
) -> u64 {
    for (slot, v) in PROBE_ARGS.iter().zip([a1, a2, a3, a4, a5, a6, a7, a8]) {
        slot.store(v, Ordering::SeqCst);
    }
    0x5EC0_0000_0000 ^ a1
}

/// Calls a stub as a driver would, with `arity` arguments.
#[inline(never)]
fn call_entry(entry: u64, arity: u8, a: [u64; 8]) -> u64 {
    type F1 = extern "win64" fn(u64) -> u64;
    type F2 = extern "win64" fn(u64, u64) -> u64;
    type F3 = extern "win64" fn(u64, u64, u64) -> u64;
    type F4 = extern "win64" fn(u64, u64, u64, u64) -> u64;
    type F5 = extern "win64" fn(u64, u64, u64, u64, u64) -> u64;
    type F6 = extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64;
    type F7 = extern "win64" fn(u64, u64, u64, u64, u64, u64, u64) -> u64;
    type F8 = extern "win64" fn(u64, u64, u64, u64, u64, u64, u64, u64) -> u64;
    let p = entry as usize as *const ();
    // SAFETY: `entry` is a stub, which takes any win64 call up to 8
    // integer arguments and passes it on to the original (the probe).
    unsafe {
        match arity {
            1 => std::mem::transmute::<*const (), F1>(p)(a[0]),
            2 => std::mem::transmute::<*const (), F2>(p)(a[0], a[1]),
            3 => std::mem::transmute::<*const (), F3>(p)(a[0], a[1], a[2]),
            4 => std::mem::transmute::<*const (), F4>(p)(a[0], a[1], a[2], a[3]),
            5 => std::mem::transmute::<*const (), F5>(p)(a[0], a[1], a[2], a[3], a[4]),
            6 => std::mem::transmute::<*const (), F6>(p)(a[0], a[1], a[2], a[3], a[4], a[5]),
            7 => std::mem::transmute::<*const (), F7>(p)(a[0], a[1], a[2], a[3], a[4], a[5], a[6]),
            8 => std::mem::transmute::<*const (), F8>(p)(
                a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
            ),
            _ => unreachable!(),
        }
    }
}

/// The range of `call_entry`'s code, registered as a target so that the
/// log can attribute the calls; and the target's index.
fn register_caller() -> (u8, u64) {
    let base = call_entry as *const () as usize as u64;
    let index = LOG
        .targets()
        .find(|t| t.name_bytes() == b"call_entry.test")
        .map(|t| t.index)
        .unwrap_or_else(|| {
            LOG.register_target(b"call_entry.test", base, 0x4000, 0)
                .unwrap()
                .index
        });
    (index, base)
}

/// A call instruction ends at `ret`: `call r64` (FF D0+r, maybe REX) or
/// `call [rsp+disp8]`-style memory forms.
fn preceded_by_call(ret: u64) -> bool {
    // SAFETY: `ret` is a return address inside `call_entry`'s code, and the
    // bytes before it are that function's code.
    let b = unsafe { std::slice::from_raw_parts((ret - 7) as *const u8, 7) };
    (b[5] == 0xFF && b[6] & 0xF8 == 0xD0)
        || (b[3] == 0xFF && b[4] & 0x38 == 0x10)
        || (b[4] == 0xFF && b[5] & 0x38 == 0x10)
        || b[2] == 0xE8
}

/// For each checked row: arguments of an executable call and the bug
/// check's arg3/arg4, and of the NX twin.
fn case(name: &str) -> ([u64; 8], u64, u64, [u64; 8]) {
    let tag = 0x7476_6943u64;
    let hi = 0xA5A5_0000_0000_0000u64; // garbage above a 32-bit argument
    let nx = u64::from(pool_type::NON_PAGED_POOL_NX);
    let s = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    let with = |pairs: &[(usize, u64)]| {
        let mut a = s;
        for &(i, v) in pairs {
            a[i] = v;
        }
        a
    };
    match name {
        "ExAllocatePool" | "ExAllocatePoolWithQuota" => (with(&[(0, hi)]), 0, 0, with(&[(0, nx)])),
        "ExAllocatePoolWithTag"
        | "ExAllocatePoolWithQuotaTag"
        | "ExAllocatePoolWithTagPriority" => (
            with(&[(0, 4), (2, tag)]),
            4,
            tag,
            with(&[(0, nx | 4), (2, tag)]),
        ),
        "ExAllocatePool2" | "ExAllocatePool3" => (
            with(&[(0, pool_flags::NON_PAGED_EXECUTE), (2, tag)]),
            0x80,
            tag,
            with(&[(0, pool_flags::NON_PAGED), (2, tag)]),
        ),
        "ExInitializeNPagedLookasideList" => (
            with(&[(3, 0), (5, tag)]),
            0,
            tag,
            with(&[(3, 0x200), (5, tag)]),
        ),
        "ExInitializeLookasideListEx" => (
            with(&[(3, 0), (6, tag)]),
            0,
            tag,
            with(&[(3, nx), (6, tag)]),
        ),
        "MmMapIoSpaceEx" => (
            with(&[(2, 0x40)]),
            0x40,
            0,
            with(&[(2, u64::from(page::READWRITE))]),
        ),
        "MmAllocateContiguousNodeMemory" => (with(&[(4, 0x20)]), 0x20, 0, with(&[(4, 4)])),
        "MmProtectMdlSystemAddress" => (with(&[(1, hi | 0x10)]), 0x10, 0, with(&[(1, 2)])),
        "MmMapLockedPagesSpecifyCache" => (
            with(&[(1, 0), (5, u64::from(mdl::NORMAL_PAGE_PRIORITY))]),
            16,
            0,
            with(&[
                (1, 0),
                (
                    5,
                    u64::from(mdl::NORMAL_PAGE_PRIORITY | mdl::MDL_MAPPING_NO_EXECUTE),
                ),
            ]),
        ),
        "MmMapLockedPages" => (with(&[(1, 0)]), 32, 0, with(&[(1, 1)])),
        other => panic!("no case for {other}"),
    }
}

fn install_probe_for_every_row() {
    runtime::clear_originals();
    for i in 0..CATALOG.len() {
        runtime::set_original(i, probe as *const () as usize as u64);
        assert_eq!(runtime::original(i), probe as *const () as usize as u64);
    }
}

fn assert_passed_through(arity: u8, args: &[u64; 8], ret: u64, what: &str) {
    assert_eq!(ret, 0x5EC0_0000_0000 ^ args[0], "{what}: return value");
    for i in 0..usize::from(arity) {
        assert_eq!(
            PROBE_ARGS[i].load(Ordering::SeqCst),
            args[i],
            "{what}: argument {}",
            i + 1
        );
    }
    // At a function's entry RSP ≡ 8 (mod 16): the stub kept the alignment.
    assert_eq!(
        PROBE_RSP.load(Ordering::SeqCst) % 16,
        8,
        "{what}: stack alignment"
    );
}

#[test]
fn every_row_log_mode_catches_executable_and_passes_nx_through() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_probe_for_every_row();
    runtime::set_action(Action::Log);
    let (target, base) = register_caller();
    for (i, hook) in CATALOG
        .iter()
        .enumerate()
        .filter(|(_, h)| h.code().is_some())
    {
        let entry = stubs::entry(i).unwrap();
        let (bad, arg3, arg4, good) = case(hook.name);

        let before = LOG.recorded();
        let ret = call_entry(entry, hook.arity, good);
        assert_passed_through(hook.arity, &good, ret, hook.name);
        assert_eq!(LOG.recorded(), before, "{}: NX call recorded", hook.name);

        let seq = LOG.next_seq();
        let ret = call_entry(entry, hook.arity, bad);
        assert_passed_through(hook.arity, &bad, ret, hook.name);
        assert_eq!(
            LOG.recorded(),
            before + 1,
            "{}: violation not recorded",
            hook.name
        );
        let mut got = None;
        LOG.events_since(seq, 1, |e| got = Some(e));
        let e = got.expect("event").event;
        assert_eq!(e.counter, hook.code().unwrap().counter(), "{}", hook.name);
        assert_eq!(
            (e.api as usize, e.arg3, e.arg4),
            (i, arg3, arg4),
            "{}",
            hook.name
        );
        assert_eq!(
            e.target, target,
            "{}: caller not attributed to the calling function",
            hook.name
        );
        assert!(e.offset < 0x4000, "{}", hook.name);
        assert!(
            preceded_by_call(base + e.offset),
            "{}: caller {:#x} is not a return address",
            hook.name,
            base + e.offset
        );
    }
}

static BUGCHECK: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
unsafe extern "system" fn fake_bug_check(code: u32, a1: u64, a2: u64, a3: u64, a4: u64) {
    for (slot, v) in BUGCHECK.iter().zip([u64::from(code), a1, a2, a3, a4]) {
        slot.store(v, Ordering::SeqCst);
    }
}
unsafe extern "system" fn fake_now() -> u64 {
    42
}
static PINS: AtomicU64 = AtomicU64::new(0);
unsafe extern "system" fn fake_pin() {
    PINS.fetch_add(1, Ordering::SeqCst);
}
static REPORTS: AtomicU64 = AtomicU64::new(0);
unsafe extern "system" fn fake_report(_: &civ_engine::log::Event) {
    REPORTS.fetch_add(1, Ordering::SeqCst);
}
/// What the fake stack walk returns: two made-up return addresses.
const FAKE_STACK: [u64; 2] = [0xFFFF_F801_0000_1234, 0xFFFF_F801_0000_5678];
static CAPTURES: AtomicU64 = AtomicU64::new(0);
unsafe extern "system" fn fake_capture(frames: *mut u64, max: u32) -> u32 {
    CAPTURES.fetch_add(1, Ordering::SeqCst);
    assert!(max as usize >= FAKE_STACK.len());
    // SAFETY: the engine passes a buffer of `max` frames.
    unsafe { std::ptr::copy_nonoverlapping(FAKE_STACK.as_ptr(), frames, FAKE_STACK.len()) };
    FAKE_STACK.len() as u32
}
unsafe extern "system" fn fake_unpin() {
    PINS.fetch_sub(1, Ordering::SeqCst);
}
static OPS: KernelOps = KernelOps {
    bug_check: fake_bug_check,
    now: fake_now,
    report: fake_report,
    pin: fake_pin,
    unpin: fake_unpin,
    capture_stack: fake_capture,
};

#[test]
fn bugcheck_mode_raises_c4_with_dv_arguments() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_probe_for_every_row();
    runtime::set_kernel_ops(&OPS);
    runtime::set_action(Action::BugCheck);
    let (_, base) = register_caller();
    for (i, hook) in CATALOG
        .iter()
        .enumerate()
        .filter(|(_, h)| h.code().is_some())
    {
        let (bad, arg3, arg4, good) = case(hook.name);
        BUGCHECK[0].store(0, Ordering::SeqCst);
        call_entry(stubs::entry(i).unwrap(), hook.arity, good);
        assert_eq!(
            BUGCHECK[0].load(Ordering::SeqCst),
            0,
            "{}: bug check on an NX call",
            hook.name
        );
        let seq = LOG.next_seq();
        call_entry(stubs::entry(i).unwrap(), hook.arity, bad);
        let got: Vec<u64> = BUGCHECK.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        // A site is reported at its first hit only.
        let reports = REPORTS.load(Ordering::SeqCst);
        call_entry(stubs::entry(i).unwrap(), hook.arity, bad);
        assert_eq!(
            REPORTS.load(Ordering::SeqCst),
            reports,
            "{}: a repeat hit was reported",
            hook.name
        );
        assert!(reports > 0, "no site was ever reported");
        let site = LOG
            .sites()
            .find(|s| usize::from(s.event.api) == i && s.event.arg3 == arg3)
            .expect("the site");
        assert_eq!(
            site.stack(),
            FAKE_STACK,
            "{}: the first hit's stack",
            hook.name
        );
        let mut ev = None;
        LOG.events_since(seq, 1, |e| ev = Some(e));
        let ev = ev.expect("recorded before the bug check");
        assert_eq!(ev.time, 42);
        let caller = base + ev.event.offset;
        assert_eq!(
            got,
            [
                0xC4,
                u64::from(hook.code().unwrap().value()),
                caller,
                arg3,
                arg4
            ],
            "{}",
            hook.name
        );
    }
    runtime::set_action(Action::Log);
}

static LOOKUP_CALLS: AtomicU64 = AtomicU64::new(0);
/// A fake MmGetSystemRoutineAddress: a made-up address per name length.
extern "win64" fn fake_lookup(name: *const UnicodeString) -> u64 {
    LOOKUP_CALLS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the tests pass valid UNICODE_STRINGs.
    let len = unsafe { (*name).length };
    if len == 0 {
        0
    } else {
        0xFFFF_F800_0000_0000 + u64::from(len)
    }
}

fn unicode(s: &str) -> (Vec<u16>, UnicodeString) {
    let buf: Vec<u16> = s.encode_utf16().collect();
    let us = UnicodeString {
        length: (buf.len() * 2) as u16,
        maximum_length: (buf.len() * 2) as u16,
        buffer: buf.as_ptr(),
    };
    (buf, us)
}

#[test]
fn routine_lookup_answers_checked_apis_with_civs_entry() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    runtime::clear_originals();
    let lookup = CATALOG
        .iter()
        .position(|h| matches!(h.rule, Rule::RoutineLookup))
        .unwrap();
    runtime::set_original(lookup, fake_lookup as *const () as usize as u64);
    runtime::set_kernel_ops(&OPS);
    let entry = stubs::entry(lookup).unwrap();
    let pins_before = PINS.load(Ordering::SeqCst) + u64::from(!runtime::pinned());
    let tag = CATALOG
        .iter()
        .position(|h| h.name == "ExAllocatePoolWithTag")
        .unwrap();
    // The kernel's routine, as civ resolved it at start.
    runtime::set_original(tag, 0xFFFF_F800_0000_0000 + 42);

    let (_b, name) = unicode("ExAllocatePoolWithTag");
    let got = call_entry(entry, 1, [&name as *const _ as u64, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        got,
        stubs::entry(tag).unwrap(),
        "a checked API resolves to civ's entry"
    );
    // A target now holds civ's entry: civ is pinned, and says so once.
    assert!(runtime::pinned());
    assert_eq!(PINS.load(Ordering::SeqCst), pins_before);
    let _ = call_entry(entry, 1, [&name as *const _ as u64, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(PINS.load(Ordering::SeqCst), pins_before, "pin is told once");

    for other in [
        "KeDelayExecutionThread",
        "exallocatepoolwithtag",
        "ExAllocatePoolWithTagX",
    ] {
        let (_b, name) = unicode(other);
        let got = call_entry(entry, 1, [&name as *const _ as u64, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            got,
            0xFFFF_F800_0000_0000 + name.length as u64,
            "{other} is passed through"
        );
    }
    let (_b, empty) = unicode("");
    assert_eq!(
        call_entry(entry, 1, [&empty as *const _ as u64, 0, 0, 0, 0, 0, 0, 0]),
        0
    );
    // The kernel answers with something other than the routine civ
    // resolved at start (another hooker): its answer is returned, and so
    // when civ found no routine at all.
    for resolved in [0x1234, 0] {
        runtime::set_original(tag, resolved);
        let (_b, name) = unicode("ExAllocatePoolWithTag");
        let got = call_entry(entry, 1, [&name as *const _ as u64, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(got, 0xFFFF_F800_0000_0000 + 42);
    }
}

#[test]
fn every_arity_from_one_to_eight_passes_arguments_intact() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_probe_for_every_row();
    runtime::set_action(Action::Log);
    // The catalog's checked rows span arities 2..=8 (1 is the routine
    // lookup); the stub itself is arity-agnostic, so one row's stub called
    // with 1..=8 arguments proves each arity reaches the original intact.
    let mut arities: Vec<u8> = CATALOG
        .iter()
        .filter(|h| h.code().is_some())
        .map(|h| h.arity)
        .collect();
    arities.sort();
    arities.dedup();
    assert_eq!(arities, [2, 3, 4, 5, 6, 7, 8]);
    let nx_row = CATALOG
        .iter()
        .position(|h| h.name == "ExAllocatePool2")
        .unwrap();
    for arity in 1..=8u8 {
        // Distinct values per arity; the first stays an NX request.
        let mut args =
            [0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7].map(|v| v ^ (u64::from(arity) << 40));
        args[0] = pool_flags::NON_PAGED;
        let before = LOG.recorded();
        let ret = call_entry(stubs::entry(nx_row).unwrap(), arity, args);
        assert_passed_through(arity, &args, ret, &format!("arity {arity}"));
        assert_eq!(LOG.recorded(), before);
    }
}

/// The values a row's checked argument(s) take in the consistency test:
/// (argument index, value) lists, each list one call.
fn domain(rule: Rule) -> Vec<Vec<(usize, u64)>> {
    let garbage = [0u64, 0xFFFF_FFFF_0000_0000, 0x8000_0000_0000_0000];
    let mut v = Vec::new();
    match rule {
        Rule::PoolType { pool_type, .. } => {
            for x in 0..=0x7FFu64 {
                for g in garbage {
                    v.push(vec![(pool_type.index as usize, x | g)]);
                }
            }
        }
        Rule::NPagedLookasideFlags { flags, .. } => {
            for x in 0..=0x7FFu64 {
                v.push(vec![(flags.index as usize, x | 0xAB00_0000_0000)]);
            }
        }
        Rule::PoolFlags { flags, .. } => {
            for x in 0..=0x3FFu64 {
                for hi in [0u64, 1 << 32, 1 << 63] {
                    v.push(vec![(flags.index as usize, x | hi)]);
                }
            }
        }
        Rule::Protection { protect } => {
            for x in 0..=0xFFFu64 {
                v.push(vec![(protect.index as usize, x | 0x5A00_0000_0000_0000)]);
            }
        }
        Rule::MdlMapping {
            access_mode,
            priority,
        } => {
            for mode in [0u64, 1, 2, 0xFF, 0x100, 0xFFFF_FF00] {
                for base in [0u64, 16, 32] {
                    for flags in 0..8u64 {
                        for g in garbage {
                            v.push(vec![
                                (access_mode.index as usize, mode),
                                (priority.index as usize, base | (flags << 29) | g),
                            ]);
                        }
                    }
                }
            }
        }
        Rule::MdlMappingLegacy { access_mode } => {
            for mode in [0u64, 1, 2, 0xFF, 0x100, 0xFFFF_FF00, 0xFFFF_FFFF_FFFF_FF01] {
                v.push(vec![(access_mode.index as usize, mode)]);
            }
        }
        Rule::RoutineLookup => {}
    }
    v
}

#[test]
fn the_stubs_fast_path_lets_through_exactly_what_the_predicate_passes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_probe_for_every_row();
    runtime::set_action(Action::Log);
    for (i, hook) in CATALOG
        .iter()
        .enumerate()
        .filter(|(_, h)| h.code().is_some())
    {
        let entry = stubs::entry(i).unwrap();
        let calls = domain(hook.rule);
        assert!(!calls.is_empty(), "{}", hook.name);
        for call in calls {
            let mut args = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
            for &(index, value) in &call {
                args[index] = value;
            }
            let violation = hook.check(&args[..usize::from(hook.arity)], 0).is_some();
            let before = LOG.recorded();
            let ret = call_entry(entry, hook.arity, args);
            assert_passed_through(hook.arity, &args, ret, hook.name);
            assert_eq!(
                LOG.recorded() - before,
                u64::from(violation),
                "{} with {call:x?}",
                hook.name
            );
        }
    }
}
