//! Finding the call sites of hooked imports, and the value of each
//! argument at each.
//!
//! In an x64 image with `.pdata`, only the functions that matter are
//! decoded: a byte scan finds every field pointing at a hooked IAT slot,
//! then at each import thunk (`jmp [slot]` that something references),
//! and each function holding one is analyzed whole ([`super::flow`]).
//! Elsewhere (x86, or no `.pdata`) the executable sections are swept
//! linearly once ([`super::sweep`]) for candidates, call targets (the
//! function starts) and jump tables, and the region from the function
//! start before each candidate is analyzed.

use super::Via;
use super::functions::Region;
use super::image::Image;
use super::refs::{self, Addressing};
use super::sweep::{self, Kind, is_near};
use super::track::{ARG_REGS, Env, Origin, State, absolute_rva};
use super::value::Val;
use civ_engine::catalog::{CATALOG, Hook};
use iced_x86::{FlowControl, OpKind};
use std::collections::BTreeSet;

/// A call site and what is known of its arguments there.
#[derive(Clone, Debug)]
pub struct RawSite {
    /// RVA of the call (or tail jump).
    pub rva: u32,
    /// Its length.
    pub len: u8,
    /// The start of its block.
    pub block_start: u32,
    /// The region (function) it is in.
    pub region: Region,
    /// The catalog row.
    pub hook: &'static Hook,
    /// How it reaches the import.
    pub via: Via,
    /// The thunk, for [`Via::Thunk`].
    pub thunk: Option<u32>,
    /// Each argument's value.
    pub args: Vec<Val>,
    /// Who last wrote each argument.
    pub origins: Vec<Origin>,
}

/// The value of argument `n` in a state just before a call (`tail`: a
/// jump, with the return address already on the stack) to `hook` (or to
/// one of the driver's functions, whose x86 arguments all take 4 bytes).
pub fn argument(state: &State, hook: Option<&Hook>, n: usize, tail: bool) -> (Val, Origin) {
    if state.is_wide() {
        if let Some(&r) = ARG_REGS.get(n) {
            return (state.reg_val(r), state.reg_origin(r));
        }
        let at = if tail { 8 } else { 0 } + 8 * n as i64;
        let (mut v, mut o) = state.stack_at(at, 8);
        // A 32-bit argument stored as a dword: its term, and its writer.
        let (low, low_origin) = state.stack_at(at, 4);
        if v.sym == super::value::Sym::None {
            v.sym = low.sym;
        }
        if low.known.value(0xFFFF_FFFF).is_some() || low.sym != super::value::Sym::None {
            o = low_origin;
        }
        (v, o)
    } else {
        let at = if tail { 4 } else { 0 } + x86_offset(hook, n);
        state.stack_at(at, x86_size(hook, n))
    }
}

/// The arguments passed in 8 bytes on x86 (ULONG64 flags, PHYSICAL_ADDRESS),
/// by API: the rest take 4. This is the APIs' C signatures, not DV's rules.
const X86_EIGHT_BYTE_ARGS: [(&str, &[usize]); 4] = [
    ("ExAllocatePool2", &[0]),
    ("ExAllocatePool3", &[0]),
    ("MmMapIoSpaceEx", &[0]),
    ("MmAllocateContiguousNodeMemory", &[1, 2, 3]),
];

/// The size of argument n of an API on the x86 stack.
fn x86_size(hook: Option<&Hook>, n: usize) -> usize {
    let wide = hook.is_some_and(|h| {
        X86_EIGHT_BYTE_ARGS
            .iter()
            .any(|(name, args)| *name == h.name && args.contains(&n))
    });
    if wide { 8 } else { 4 }
}

/// Where argument n of an API is on the x86 stack at its call.
fn x86_offset(hook: Option<&Hook>, n: usize) -> i64 {
    (0..n).map(|k| x86_size(hook, k) as i64).sum()
}

/// The image's call sites of hooked imports, in address order.
pub fn find(img: &mut Image<'_>) -> Vec<RawSite> {
    if img.is_arm64() {
        let a = super::arm64::analyze(img);
        img.decoded += a.decoded;
        let sites = a.sites.clone();
        img.arm = Some(a);
        return sites;
    }
    let regions = if img.wide && !img.functions.is_empty() {
        regions_by_scan(img)
    } else {
        regions_by_sweep(img)
    };
    let mut out = Vec::new();
    for region in regions {
        sites_in(img, &region, &mut out);
    }
    out.sort_by_key(|s| s.rva);
    out.dedup_by_key(|s| s.rva);
    out
}

/// x64 with `.pdata`: the regions holding a reference to a hooked slot or
/// to one of its thunks.
fn regions_by_scan(img: &mut Image<'_>) -> BTreeSet<Region> {
    let slots: Vec<u32> = img.imports.slots.iter().map(|s| s.0).collect();
    let mut fields = Vec::new();
    let mut thunk_candidates = Vec::new();
    for s in &img.sections {
        for r in refs::find(s, &slots, &[0], Addressing::RipRelative) {
            let at = r.field.wrapping_sub(2);
            let is_jmp = s.from(at).get(..2).is_some_and(|b| b == [0xFF, 0x25]);
            if is_jmp && img.functions.range_of(at).is_none() {
                thunk_candidates.push((at, r.target));
            }
            fields.push(r.field);
        }
    }
    thunk_candidates.sort_unstable();
    thunk_candidates.dedup();
    if !thunk_candidates.is_empty() {
        let targets: Vec<u32> = thunk_candidates.iter().map(|t| t.0).collect();
        let mut called = BTreeSet::new();
        for s in &img.sections {
            for r in refs::find(s, &targets, &[0], Addressing::RipRelative) {
                called.insert(r.target);
                fields.push(r.field);
            }
        }
        for (thunk, slot) in thunk_candidates {
            if called.contains(&thunk)
                && let Some(t) = img.imports.iat_slot(slot)
            {
                img.imports.thunks.push((thunk, t));
            }
        }
        img.imports.thunks.sort_unstable();
    }
    img.handlers = super::exception_handlers(img.pe, &img.sections);
    fields
        .into_iter()
        .filter_map(|f| img.region_of(f))
        .collect()
}

/// x86, or no `.pdata`: one linear sweep.
fn regions_by_sweep(img: &mut Image<'_>) -> BTreeSet<Region> {
    let slots: Vec<u32> = img.imports.slots.iter().map(|s| s.0).collect();
    let bitness = if img.wide { 64 } else { 32 };
    let handlers = super::exception_handlers(img.pe, &img.sections);
    let read = |rva: u32| img.read_u32(rva);
    let sw = sweep::sweep(
        &img.sections,
        bitness,
        img.imports.image_base,
        &slots,
        &handlers,
        &read,
    );
    img.decoded += sw.bytes;
    img.handlers = handlers;
    // A `jmp [IAT]` that some call or jump targets is an import thunk.
    let mut targets: Vec<u32> = sw
        .candidates
        .iter()
        .filter(|c| matches!(c.kind, Kind::CallDirect | Kind::JmpDirect))
        .map(|c| c.target)
        .collect();
    targets.sort_unstable();
    targets.dedup();
    for c in sw.candidates.iter().filter(|c| c.kind == Kind::JmpIat) {
        if targets.binary_search(&c.rva).is_ok()
            && let Some(t) = img.imports.iat_slot(c.target)
        {
            img.imports.thunks.push((c.rva, t));
        }
    }
    img.imports.thunks.sort_unstable();
    let mut starts: Vec<u32> = sw.call_targets.clone();
    starts.extend(img.sections.iter().map(|s| s.rva));
    starts.extend(img.functions.ranges().iter().map(|r| r.begin));
    // A thunk is code of its own.
    starts.extend(img.imports.thunks.iter().map(|t| t.0));
    starts.sort_unstable();
    starts.dedup();
    img.starts = starts;
    let mut regions = BTreeSet::new();
    for c in &sw.candidates {
        let relevant = match c.kind {
            Kind::CallIat | Kind::JmpIat | Kind::CallReg | Kind::JmpReg => true,
            Kind::CallDirect | Kind::JmpDirect => img.imports.thunk(c.target).is_some(),
        };
        if relevant && let Some(r) = img.region_of(c.rva) {
            regions.insert(r);
        }
    }
    regions
}

/// The sites of one region.
fn sites_in(img: &mut Image<'_>, region: &Region, out: &mut Vec<RawSite>) {
    let base = img.imports.image_base;
    img.ensure(region);
    let img = &*img;
    let Some(flow) = img.analyzed(region) else {
        return;
    };
    let env = &img.imports;
    for (k, i) in flow.insns().iter().enumerate() {
        let rva = i.ip32();
        let call = matches!(
            i.flow_control(),
            FlowControl::Call | FlowControl::IndirectCall
        );
        let (via, thunk, fixed) = match i.flow_control() {
            FlowControl::IndirectCall | FlowControl::IndirectBranch
                if i.op0_kind() == OpKind::Memory =>
            {
                let Some(t) = absolute_rva(i, base).and_then(|s| env.iat_slot(s)) else {
                    continue;
                };
                if !call
                    && (env.thunk(rva).is_some()
                        || (flow.after_stop(k) && !flow.is_jcc_target(rva)))
                {
                    // An import thunk, or a `jmp [IAT]` nothing falls or
                    // branches into (a thunk nothing calls).
                    continue;
                }
                (if call { Via::Iat } else { Via::TailJump }, None, Some(t))
            }
            FlowControl::IndirectCall | FlowControl::IndirectBranch
                if i.op0_kind() == OpKind::Register =>
            {
                (if call { Via::Register } else { Via::TailJump }, None, None)
            }
            FlowControl::Call | FlowControl::UnconditionalBranch if is_near(i) => {
                let target = i.near_branch_target() as u32;
                match thunk_of(img, target) {
                    Some((thunk, t)) => (
                        if call { Via::Thunk } else { Via::TailJump },
                        Some(thunk),
                        Some(t),
                    ),
                    None => continue,
                }
            }
            _ => continue,
        };
        let Some((state, block_start)) = flow.state_before(rva, env) else {
            continue;
        };
        let target = match fixed {
            Some(t) => t,
            None => match state.func(i.op0_register()) {
                Some(f) => f.target,
                None => continue,
            },
        };
        let Some(hook) = CATALOG.get(target) else {
            continue;
        };
        let tail = via == Via::TailJump;
        let (args, origins) = (0..usize::from(hook.arity))
            .map(|n| argument(&state, Some(hook), n, tail))
            .unzip();
        out.push(RawSite {
            rva,
            len: i.len() as u8,
            block_start,
            region: region.clone(),
            hook,
            via,
            thunk,
            args,
            origins,
        });
    }
}

/// The thunk a direct call or jump reaches, through up to three `jmp
/// rel32` stubs (incremental linking).
fn thunk_of(img: &Image<'_>, mut target: u32) -> Option<(u32, usize)> {
    for _ in 0..4 {
        if let Some(t) = img.imports.thunk(target) {
            return Some((target, t));
        }
        let s = img.section_of(target)?;
        let b = s.from(target);
        // jmp rel32
        if b.first() != Some(&0xE9) {
            return None;
        }
        let d = i32::from_le_bytes([*b.get(1)?, *b.get(2)?, *b.get(3)?, *b.get(4)?]);
        target = target.wrapping_add(5).wrapping_add(d as u32);
    }
    None
}
