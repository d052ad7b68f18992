//! ARM64 images: the same prediction over A64 code, decoded with
//! yaxpeax-arm. Functions come from the ARM64 `.pdata` (begin and length);
//! every function of an image that calls a hooked import is analyzed with
//! a data-flow pass over its blocks (the fixed-width code makes decoding
//! the whole of it cheap), so the stores to the driver's globals and the
//! driver's own calls are known for the globals' facts and the wrappers'
//! callers.
//!
//! Call sites: `blr xN` / `br xN` with xN loaded from a hooked IAT slot
//! (`adrp xN, page` ; `ldr xN, [xN, #off]`), and `bl` / `b` to an import
//! thunk (`adrp x16` ; `ldr x16, [x16, #off]` ; `br x16`). Arguments are in
//! x0–x7 (the catalog's APIs have at most six). Values: `movz`/`movk`/
//! `movn`, `orr`/`and`/`eor` with an immediate or a register, `mov`,
//! `add`/`sub`, loads of the driver's globals through `adrp`; anything
//! else an instruction writes is forgotten. The stack is not followed.

use super::Via;
use super::functions::Region;
use super::globals::{Facts, Store, VersionTest};
use super::image::Image;
use super::sites::RawSite;
use super::track::{Env, Origin};
use super::value::{Known, Sym, Val, width_mask};
use civ_engine::catalog::CATALOG;
use std::collections::{BTreeSet, HashMap};
use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction, Opcode, Operand, ShiftStyle, SizeCode};

/// IMAGE_FILE_MACHINE_ARM64.
pub const MACHINE_ARM64: u16 = 0xAA64;
/// Steps of each block, on average, at most (see flow.rs).
const MAX_ROUNDS: usize = 64;
/// Functions larger than this are not analyzed.
const MAX_FUNCTION_BYTES: u32 = 1 << 20;

/// One decoded instruction.
#[derive(Clone, Debug)]
pub struct Insn {
    /// Its RVA.
    pub rva: u32,
    /// The instruction (`None`: undecodable).
    pub i: Option<Instruction>,
}

/// The state of one path.
#[derive(Clone, Debug, PartialEq)]
struct State {
    regs: [Val; 31],
    origin: [Origin; 31],
    /// The image address (RVA) a register holds (`adrp`, `add`).
    addr: [Option<u32>; 31],
    /// The import slot a register was loaded from.
    slot: [Option<u32>; 31],
    /// Constants this path stored to globals, still there.
    stores: Vec<(u32, usize, u64)>,
}

impl State {
    fn new(entry: Option<u32>) -> State {
        let mut s = State {
            regs: [Val::UNKNOWN; 31],
            origin: [Origin::BeforeBlock; 31],
            addr: [None; 31],
            slot: [None; 31],
            stores: Vec::new(),
        };
        if let Some(entry) = entry {
            for n in 0..8u8 {
                s.regs[usize::from(n)].sym = Sym::Param { n, entry };
            }
        }
        s
    }

    /// Does register n hold the constant this path stored to the one
    /// global `sym` reads (see track.rs)?
    fn holds_global(&self, n: usize, sym: Sym) -> bool {
        super::value::holds_global(&self.stores, self.regs[n].known, sym)
    }

    fn meet(&mut self, o: &State, block: u32) -> bool {
        let before = self.clone();
        for n in 0..31 {
            let (a, b) = (self.regs[n].sym, o.regs[n].sym);
            let sym = if a == b {
                a
            } else if b != Sym::None && self.holds_global(n, b) {
                b
            } else if a != Sym::None && o.holds_global(n, a) {
                a
            } else {
                Sym::None
            };
            let mut merged = self.regs[n].meet(o.regs[n]);
            merged.sym = sym;
            if merged != self.regs[n] || self.origin[n] != o.origin[n] {
                self.origin[n] = if self.origin[n] == o.origin[n] {
                    self.origin[n]
                } else {
                    Origin::Merge(block)
                };
            }
            self.regs[n] = merged;
            if self.addr[n] != o.addr[n] {
                self.addr[n] = None;
            }
            if self.slot[n] != o.slot[n] {
                self.slot[n] = None;
            }
        }
        self.stores.retain(|s| o.stores.contains(s));
        *self != before
    }

    fn forget(&mut self, n: usize, origin: Origin) {
        if let Some(r) = self.regs.get_mut(n) {
            *r = Val::UNKNOWN;
            self.origin[n] = origin;
            self.addr[n] = None;
            self.slot[n] = None;
        }
    }
}

/// A general-purpose register operand: (number, 64-bit). The zero
/// register and sp are not.
fn reg(op: &Operand) -> Option<(usize, bool)> {
    match *op {
        Operand::Register(size, n) | Operand::RegisterOrSP(size, n) if n < 31 => {
            Some((usize::from(n), size == SizeCode::X))
        }
        _ => None,
    }
}

fn width(x: bool) -> usize {
    if x { 8 } else { 4 }
}

/// What an operand reads.
fn read(s: &State, op: &Operand) -> Val {
    match *op {
        Operand::Register(_, 31) => Val::constant(0),
        Operand::Register(size, n) => {
            let Some(v) = s.regs.get(usize::from(n)).copied() else {
                return Val::UNKNOWN;
            };
            if size == SizeCode::W {
                let m = width_mask(4);
                Val {
                    known: Known {
                        bits: v.known.bits & m,
                        mask: v.known.mask & m,
                    },
                    sym: v.sym,
                }
            } else {
                v
            }
        }
        Operand::RegShift(ShiftStyle::LSL, 0, size, n) => read(s, &Operand::Register(size, n)),
        Operand::Immediate(i) => Val::constant(u64::from(i)),
        Operand::Imm64(i) => Val::constant(i),
        Operand::Imm16(i) => Val::constant(u64::from(i)),
        Operand::ImmShift(i, sh) => Val::constant(u64::from(i) << sh),
        _ => Val::UNKNOWN,
    }
}

fn write(s: &mut State, d: usize, x: bool, v: Val, at: u32) {
    if d >= 31 {
        return;
    }
    let v = if x {
        v
    } else {
        Val {
            known: Known {
                bits: v.known.bits & 0xFFFF_FFFF,
                mask: v.known.mask | 0xFFFF_FFFF_0000_0000,
            },
            sym: v.sym,
        }
    };
    s.regs[d] = v;
    s.origin[d] = Origin::At(at);
    s.addr[d] = None;
    s.slot[d] = None;
}

/// The RVA a `[xN, #imm]` operand addresses, when xN holds an image
/// address.
fn mem_target(s: &State, op: &Operand) -> Option<u32> {
    match *op {
        Operand::RegPreIndex(n, imm, false) => {
            let base = s.addr.get(usize::from(n)).copied().flatten()?;
            Some(base.wrapping_add(imm as u32))
        }
        _ => None,
    }
}

fn is_mem(op: &Operand) -> bool {
    matches!(
        op,
        Operand::RegPreIndex(..)
            | Operand::RegPostIndex(..)
            | Operand::RegPostIndexReg(..)
            | Operand::RegRegOffset(..)
    )
}

/// The size of a load or store: from the opcode's width and the
/// register's.
fn access_size(op: Opcode, x: bool) -> usize {
    match op {
        Opcode::LDRB | Opcode::STRB | Opcode::LDURB | Opcode::STURB => 1,
        Opcode::LDRH | Opcode::STRH | Opcode::LDURH | Opcode::STURH => 2,
        _ => width(x),
    }
}

/// A store to a global somewhere in the image.
#[derive(Clone, Debug)]
struct GlobalStore {
    at: u32,
    rva: u32,
    size: usize,
    value: Option<u64>,
    function: u32,
}

/// A direct call or jump to code of the image, with x0–x7 there.
#[derive(Clone, Debug)]
struct Call {
    at: u32,
    target: u32,
    args: [Val; 8],
}

/// What the analysis of an ARM64 image found.
#[derive(Debug, Default)]
pub struct Analysis {
    /// The call sites.
    pub sites: Vec<RawSite>,
    stores: Vec<GlobalStore>,
    calls: Vec<Call>,
    /// Image addresses formed (`add`, `adr`), by RVA: taken addresses.
    taken: Vec<(u32, u32)>,
    /// Calls to imports by name: (RVA, import name).
    import_calls: Vec<(u32, String)>,
    /// Comparisons with an immediate: (RVA, immediate, text).
    compares: Vec<(u32, u64, String)>,
    /// Conditional branches.
    branches: Vec<u32>,
    /// Bytes decoded.
    pub decoded: usize,
}

/// The ARM64 functions from `.pdata` (begin, end), sorted.
fn functions(img: &Image<'_>) -> Vec<(u32, u32)> {
    let pe = img.pe;
    let Some((rva, size)) = pe.data_directory(super::functions::DIR_EXCEPTION) else {
        return Vec::new();
    };
    let Ok(bytes) = pe.bytes_from(rva, "exception directory") else {
        return Vec::new();
    };
    let bytes = bytes.get(..size as usize).unwrap_or(bytes);
    let mut out: Vec<(u32, u32)> = bytes
        .chunks_exact(8)
        .take(super::functions::MAX_FUNCTIONS)
        .filter_map(|e| {
            let begin = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let unwind = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            // Packed unwind data holds the length (in words) in bits 2-12;
            // otherwise the .xdata header's bits 0-17 do.
            let words = if unwind & 3 != 0 {
                (unwind >> 2) & 0x7FF
            } else {
                let h = pe.bytes_at(unwind, 4, "unwind info").ok()?;
                u32::from_le_bytes([h[0], h[1], h[2], h[3]]) & 0x3FFFF
            };
            let len = words.checked_mul(4)?;
            (begin != 0 && len > 0 && len <= MAX_FUNCTION_BYTES).then(|| (begin, begin + len))
        })
        .collect();
    out.sort_unstable();
    out.dedup_by_key(|f| f.0);
    out
}

/// Decodes `[begin, end)` of the code.
fn decode(img: &Image<'_>, begin: u32, end: u32) -> Vec<Insn> {
    let Some(s) = img.section_of(begin) else {
        return Vec::new();
    };
    let bytes = s.from(begin);
    let bytes = bytes.get(..(end - begin) as usize).unwrap_or(bytes);
    let d = InstDecoder::default();
    bytes
        .chunks_exact(4)
        .enumerate()
        .map(|(k, w)| {
            let mut r = U8Reader::new(w);
            Insn {
                rva: begin + 4 * k as u32,
                i: d.decode(&mut r).ok(),
            }
        })
        .collect()
}

/// The target of a branch (B, BL, B.cond, CBZ/CBNZ, TBZ/TBNZ).
fn branch_target(x: &Insn) -> Option<u32> {
    let i = x.i.as_ref()?;
    let off = i.operands.iter().find_map(|o| match o {
        Operand::PCOffset(off) => Some(*off),
        _ => None,
    })?;
    match i.opcode {
        Opcode::B
        | Opcode::BL
        | Opcode::Bcc(_)
        | Opcode::CBZ
        | Opcode::CBNZ
        | Opcode::TBZ
        | Opcode::TBNZ => Some((i64::from(x.rva) + off) as u32),
        _ => None,
    }
}

fn is_conditional(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::Bcc(_) | Opcode::CBZ | Opcode::CBNZ | Opcode::TBZ | Opcode::TBNZ
    )
}

/// Control cannot fall past it.
fn stops(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::B | Opcode::BR | Opcode::RET | Opcode::BRK | Opcode::UDF
    )
}

/// The instruction at an RVA, as text.
pub fn text(img: &Image<'_>, rva: u32) -> Option<String> {
    let x = decode(img, rva, rva + 4).into_iter().next()?;
    x.i.map(|i| i.to_string())
}

/// Analyzes an ARM64 image's code.
pub fn analyze(img: &mut Image<'_>) -> Analysis {
    let mut out = Analysis::default();
    let mut regions: Vec<Region> = functions(img)
        .into_iter()
        .filter(|f| img.section_of(f.0).is_some())
        .map(|(b, e)| Region {
            entry: b,
            ranges: vec![(b, e)],
            exact: true,
        })
        .collect();
    // Code outside every function (leaf functions without unwind data,
    // thunks, or all of it without .pdata): the gaps, of unknown bounds.
    let mut gaps = Vec::new();
    for s in &img.sections {
        let (lo, hi) = (s.rva, s.rva + s.bytes.len() as u32);
        let mut at = lo;
        for r in regions.iter().filter(|r| r.entry >= lo && r.entry < hi) {
            if r.entry > at {
                gaps.push((at, r.entry));
            }
            at = at.max(r.ranges[0].1);
        }
        if at < hi {
            gaps.push((at, hi));
        }
    }
    regions.extend(gaps.into_iter().map(|(b, e)| Region {
        entry: b,
        ranges: vec![(b, e)],
        exact: false,
    }));
    // Import thunks: adrp x16 ; ldr x16, [x16, #off] ; br x16 at the same
    // place, anywhere in the code.
    let mut thunks = Vec::new();
    let slots: HashMap<u32, usize> = img.imports.slots.iter().copied().collect();
    for s in img.sections.clone() {
        let insns = decode(img, s.rva, s.rva + s.bytes.len() as u32);
        for w in insns.windows(3) {
            let (Some(a), Some(l), Some(b)) = (&w[0].i, &w[1].i, &w[2].i) else {
                continue;
            };
            if a.opcode != Opcode::ADRP || l.opcode != Opcode::LDR || b.opcode != Opcode::BR {
                continue;
            }
            let (Operand::PCOffset(page), Operand::RegPreIndex(_, off, false)) =
                (a.operands[1], l.operands[1])
            else {
                continue;
            };
            let slot = ((i64::from(w[0].rva) & !0xFFF) + page) as u32 + off as u32;
            if let Some(&t) = slots.get(&slot) {
                thunks.push((w[0].rva, t));
            }
        }
    }
    thunks.sort_unstable();
    img.imports.thunks = thunks;
    for region in regions {
        analyze_region(img, &region, &mut out);
    }
    out.sites.sort_by_key(|s| s.rva);
    out.sites.dedup_by_key(|s| s.rva);
    out
}

fn analyze_region(img: &Image<'_>, region: &Region, out: &mut Analysis) {
    let (begin, end) = region.ranges[0];
    let insns = decode(img, begin, end);
    out.decoded += insns.len() * 4;
    if insns.is_empty() {
        return;
    }
    let index = |rva: u32| -> Option<usize> {
        rva.checked_sub(begin)
            .map(|d| (d / 4) as usize)
            .filter(|&k| k < insns.len() && rva % 4 == begin % 4)
    };
    // Blocks.
    let n = insns.len();
    let mut leader = vec![false; n];
    leader[0] = true;
    let mut jcc_target = vec![false; n];
    let mut after_stop = vec![false; n];
    after_stop[0] = true;
    for (k, x) in insns.iter().enumerate() {
        let Some(i) = &x.i else {
            if k + 1 < n {
                leader[k + 1] = true;
                after_stop[k + 1] = true;
            }
            continue;
        };
        if i.opcode != Opcode::BL
            && let Some(t) = branch_target(x).and_then(index)
        {
            leader[t] = true;
            if is_conditional(i.opcode) {
                jcc_target[t] = true;
            }
        }
        if (stops(i.opcode) || is_conditional(i.opcode)) && k + 1 < n {
            leader[k + 1] = true;
            after_stop[k + 1] = stops(i.opcode);
        }
    }
    let starts: Vec<usize> = (0..n).filter(|&k| leader[k]).collect();
    let block_of = |k: usize| starts.partition_point(|&s| s <= k) - 1;
    let nb = starts.len();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); nb];
    let mut preds = vec![0usize; nb];
    for (b, out) in succs.iter_mut().enumerate() {
        let last = starts.get(b + 1).copied().unwrap_or(n) - 1;
        let x = &insns[last];
        let op = x.i.as_ref().map(|i| i.opcode);
        if let Some(op) = op
            && !stops(op)
            && last + 1 < n
        {
            out.push(b + 1);
        }
        if let Some(op) = op
            && op != Opcode::BL
            && let Some(t) = branch_target(x).and_then(index)
        {
            out.push(block_of(t));
        }
        out.sort_unstable();
        out.dedup();
        for &t in out.iter() {
            preds[t] += 1;
        }
    }
    let mut ins: Vec<Option<State>> = vec![None; nb];
    let mut fixed = vec![false; nb];
    for b in 0..nb {
        let k = starts[b];
        let rva = insns[k].rva;
        let unknown_entry = preds[b] == 0 || (!region.exact && after_stop[k] && !jcc_target[k]);
        if rva == region.entry {
            ins[b] = Some(State::new(Some(rva)));
            fixed[b] = preds[b] == 0;
        } else if unknown_entry {
            fixed[b] = true;
            // Leaf code nothing reaches is a function of its own.
            ins[b] = Some(State::new((!region.exact).then_some(rva)));
        }
    }
    let env = &img.imports;
    let mut pending: BTreeSet<usize> = (0..nb).filter(|&b| ins[b].is_some()).collect();
    let mut budget = MAX_ROUNDS.saturating_mul(nb);
    while let Some(b) = pending.pop_first() {
        budget = budget.saturating_sub(1);
        if budget == 0 {
            return;
        }
        let Some(mut s) = ins[b].clone() else {
            continue;
        };
        let last = starts.get(b + 1).copied().unwrap_or(n);
        for x in &insns[starts[b]..last] {
            step(&mut s, x, img, None);
        }
        for &t in &succs[b] {
            if fixed[t] {
                continue;
            }
            let rva = insns[starts[t]].rva;
            let changed = match &mut ins[t] {
                Some(st) => st.meet(&s, rva),
                slot @ None => {
                    *slot = Some(s.clone());
                    true
                }
            };
            if changed {
                pending.insert(t);
            }
        }
    }
    // Settled: replay each block once, recording what is seen.
    for b in 0..nb {
        let Some(mut s) = ins[b].clone() else {
            continue;
        };
        let last = starts.get(b + 1).copied().unwrap_or(n);
        let block_start = insns[starts[b]].rva;
        for x in &insns[starts[b]..last] {
            record(&s, x, img, region, block_start, out, env);
            step(&mut s, x, img, Some((&mut *out, region.entry)));
        }
    }
}

/// Notes a call site, a call to the driver's code, an import call, a
/// comparison or a branch at instruction `x`, in state `s` before it.
fn record(
    s: &State,
    x: &Insn,
    img: &Image<'_>,
    region: &Region,
    block_start: u32,
    out: &mut Analysis,
    env: &super::image::Imports,
) {
    let Some(i) = &x.i else { return };
    let hooked = |slot: u32| env.iat_slot(slot);
    let (via, thunk, target) = match i.opcode {
        Opcode::BLR | Opcode::BR => {
            let Some((r, _)) = reg(&i.operands[0]) else {
                return;
            };
            let Some(slot) = s.slot[r] else { return };
            if i.opcode == Opcode::BLR
                && let Some(name) = img.import_name(slot)
            {
                out.import_calls.push((x.rva, name.to_string()));
            }
            let Some(t) = hooked(slot) else { return };
            // The thunk's own `br x16` is not a call site.
            if i.opcode == Opcode::BR
                && env
                    .thunks
                    .iter()
                    .any(|&(th, _)| th <= x.rva && x.rva <= th + 8)
            {
                return;
            }
            (
                if i.opcode == Opcode::BLR {
                    Via::Iat
                } else {
                    Via::TailJump
                },
                None,
                t,
            )
        }
        Opcode::BL | Opcode::B => {
            let Some(t) = branch_target(x) else { return };
            match env.thunk(t) {
                Some(h) => (
                    if i.opcode == Opcode::BL {
                        Via::Thunk
                    } else {
                        Via::TailJump
                    },
                    Some(t),
                    h,
                ),
                None => {
                    // A call (or a tail jump out of the function) to the
                    // driver's own code.
                    if i.opcode == Opcode::BL || !region.contains(t) {
                        let mut args = [Val::UNKNOWN; 8];
                        for (k, a) in args.iter_mut().enumerate() {
                            *a = s.regs[k];
                        }
                        out.calls.push(Call {
                            at: x.rva,
                            target: t,
                            args,
                        });
                    }
                    return;
                }
            }
        }
        Opcode::SUBS | Opcode::ADDS => {
            if let (Operand::Register(_, 31), Some(v)) =
                (i.operands[0], read(s, &i.operands[2]).known.value(!0))
            {
                out.compares.push((x.rva, v, i.to_string()));
            }
            return;
        }
        op if is_conditional(op) => {
            out.branches.push(x.rva);
            return;
        }
        _ => return,
    };
    let Some(hook) = CATALOG.get(target) else {
        return;
    };
    let mut args = Vec::new();
    let mut origins = Vec::new();
    for k in 0..usize::from(hook.arity).min(8) {
        args.push(s.regs[k]);
        origins.push(s.origin[k]);
    }
    out.sites.push(RawSite {
        rva: x.rva,
        len: 4,
        block_start,
        region: region.clone(),
        hook,
        via,
        thunk,
        args,
        origins,
    });
}

/// The transfer function; with `out`, stores to globals and taken
/// addresses are recorded (once, in the final replay).
fn step(s: &mut State, x: &Insn, img: &Image<'_>, mut out: Option<(&mut Analysis, u32)>) {
    let at = x.rva;
    let Some(i) = &x.i else { return };
    let ops = &i.operands;
    match i.opcode {
        Opcode::MOVZ | Opcode::MOVN => {
            if let (Some((d, wide)), Operand::ImmShift(imm, sh)) = (reg(&ops[0]), ops[1]) {
                let v = u64::from(imm) << sh;
                let v = if i.opcode == Opcode::MOVN {
                    !v & width_mask(width(wide))
                } else {
                    v
                };
                write(s, d, wide, Val::constant(v), at);
            }
        }
        Opcode::MOVK => {
            if let (Some((d, wide)), Operand::ImmShift(imm, sh)) = (reg(&ops[0]), ops[1]) {
                let field = 0xFFFFu64 << sh;
                let old = s.regs[d].known;
                let k = Known {
                    bits: (old.bits & !field) | (u64::from(imm) << sh),
                    mask: old.mask | field,
                };
                let origin = s.origin[d];
                write(s, d, wide, Val::known(k), at);
                // The value is made by its movz and movk together.
                if old.mask != 0 {
                    s.origin[d] = origin;
                }
            }
        }
        Opcode::ORR | Opcode::AND | Opcode::EOR => {
            if let Some((d, wide)) = reg(&ops[0]) {
                let (a, b) = (read(s, &ops[1]), read(s, &ops[2]));
                let v = match i.opcode {
                    Opcode::ORR => a.logic(b, true, width(wide)),
                    Opcode::AND => a.logic(b, false, width(wide)),
                    _ => Val::known(a.known.xor(b.known)),
                };
                // mov xd, xm (orr xd, xzr, xm) keeps where xm came from.
                let copy = matches!(ops[1], Operand::Register(_, 31));
                let src = match ops[2] {
                    Operand::RegShift(ShiftStyle::LSL, 0, size, n) => {
                        reg(&Operand::Register(size, n))
                    }
                    ref op => reg(op),
                }
                .map(|(r, _)| (s.origin[r], s.addr[r], s.slot[r]));
                write(s, d, wide, v, at);
                if copy && let Some((o, a, sl)) = src {
                    s.origin[d] = o;
                    if wide {
                        s.addr[d] = a;
                        s.slot[d] = sl;
                    }
                }
            }
        }
        Opcode::ADRP | Opcode::ADR => {
            if let (Some((d, _)), Operand::PCOffset(off)) = (reg(&ops[0]), ops[1]) {
                let base = if i.opcode == Opcode::ADRP {
                    i64::from(at) & !0xFFF
                } else {
                    i64::from(at)
                };
                write(s, d, true, Val::UNKNOWN, at);
                let a = (base + off) as u32;
                s.addr[d] = Some(a);
                if i.opcode == Opcode::ADR
                    && let Some((o, _)) = out.as_mut()
                {
                    o.taken.push((at, a));
                }
            }
        }
        Opcode::ADD | Opcode::SUB => {
            if let Some((d, wide)) = reg(&ops[0]) {
                let base = reg(&ops[1]).and_then(|(r, _)| s.addr[r]);
                let (a, b) = (read(s, &ops[1]), read(s, &ops[2]));
                let imm = b.known.value(!0);
                let add = i.opcode == Opcode::ADD;
                let v = Val::known(a.known.arith(b.known, width(wide), |x, y| {
                    if add {
                        x.wrapping_add(y)
                    } else {
                        x.wrapping_sub(y)
                    }
                }));
                write(s, d, wide, v, at);
                if let (Some(base), Some(imm), true) = (base, imm, wide) {
                    let a = if add {
                        base.wrapping_add(imm as u32)
                    } else {
                        base.wrapping_sub(imm as u32)
                    };
                    s.addr[d] = Some(a);
                    if let Some((o, _)) = out.as_mut() {
                        o.taken.push((at, a));
                    }
                }
            }
        }
        Opcode::LDR
        | Opcode::LDRB
        | Opcode::LDRH
        | Opcode::LDUR
        | Opcode::LDURB
        | Opcode::LDURH => {
            if let Some((d, wide)) = reg(&ops[0]) {
                let target = mem_target(s, &ops[1]);
                let size = access_size(i.opcode, wide);
                write(s, d, wide, Val::UNKNOWN, at);
                if let Some(t) = target {
                    if size == 8 && img.import_name(t).is_some()
                        || img.imports.iat_slot(t).is_some()
                    {
                        s.slot[d] = Some(t);
                    } else {
                        let mut v = Val {
                            known: Known::UNKNOWN,
                            sym: Sym::global(t, size),
                        };
                        if size < 8 {
                            v.known = Known {
                                bits: 0,
                                mask: !width_mask(size),
                            };
                        }
                        s.regs[d] = v;
                    }
                }
                writeback(s, &ops[1], at);
            }
        }
        Opcode::STR
        | Opcode::STRB
        | Opcode::STRH
        | Opcode::STUR
        | Opcode::STURB
        | Opcode::STURH => {
            let wide = matches!(ops[0], Operand::Register(SizeCode::X, _));
            let size = access_size(i.opcode, wide);
            match mem_target(s, &ops[1]) {
                Some(t) => {
                    let value = read(s, &ops[0]).known.value(width_mask(size));
                    if let Some((o, f)) = out.as_mut() {
                        o.stores.push(GlobalStore {
                            at,
                            rva: t,
                            size,
                            value,
                            function: *f,
                        });
                    }
                    let end = t.saturating_add(size as u32);
                    s.stores
                        .retain(|&(r, n, _)| r >= end || r.saturating_add(n as u32) <= t);
                    if let Some(v) = value {
                        s.stores.push((t, size, v));
                    }
                }
                None => {
                    if !matches!(
                        ops[1],
                        Operand::RegPreIndex(31, _, _) | Operand::RegPostIndex(31, _)
                    ) {
                        s.stores.clear();
                    }
                }
            }
            writeback(s, &ops[1], at);
        }
        Opcode::BL | Opcode::BLR => {
            for r in (0..18).chain([30]) {
                s.forget(r, Origin::Call(at));
            }
            s.stores.clear();
        }
        Opcode::B
        | Opcode::BR
        | Opcode::RET
        | Opcode::Bcc(_)
        | Opcode::CBZ
        | Opcode::CBNZ
        | Opcode::TBZ
        | Opcode::TBNZ => {}
        _ => {
            // Whatever it writes: its first register, the second of a pair
            // load, a written-back base.
            if let Some((d, _)) = reg(&ops[0]) {
                s.forget(d, Origin::At(at));
            }
            if is_mem(&ops[2])
                && let Some((d, _)) = reg(&ops[1])
            {
                s.forget(d, Origin::At(at));
            }
            for op in ops {
                writeback(s, op, at);
            }
            // A store of any kind may hit a global.
            if ops.iter().any(is_mem)
                && !ops.iter().any(|o| {
                    matches!(
                        o,
                        Operand::RegPreIndex(31, _, _) | Operand::RegPostIndex(31, _)
                    )
                })
            {
                s.stores.clear();
                if let Some((o, f)) = out.as_mut()
                    && let Some(t) = ops.iter().find_map(|op| mem_target(s, op))
                {
                    o.stores.push(GlobalStore {
                        at,
                        rva: t,
                        size: 8,
                        value: None,
                        function: *f,
                    });
                }
            }
        }
    }
}

/// A pre- or post-indexed access writes its base back.
fn writeback(s: &mut State, op: &Operand, at: u32) {
    match *op {
        Operand::RegPreIndex(n, _, true)
        | Operand::RegPostIndex(n, _)
        | Operand::RegPostIndexReg(n, _) => {
            s.forget(usize::from(n), Origin::At(at));
        }
        _ => {}
    }
}

impl Analysis {
    /// What a global can hold, from the stores the analysis saw.
    pub fn facts(&self, img: &Image<'_>, rva: u32, size: usize) -> Facts {
        let mut f = Facts {
            rva,
            size,
            initial: super::globals::initial_value(img, rva, size),
            stores: Vec::new(),
            blocker: None,
        };
        if img.section_of(rva).is_some() {
            f.blocker = Some((rva, "it is in code".into()));
            return f;
        }
        let end = rva + size as u32;
        for st in &self.stores {
            if st.rva >= end || st.rva + st.size as u32 <= rva {
                continue;
            }
            match st.value {
                Some(v) if st.rva == rva && st.size == size => f.stores.push(Store {
                    at: st.at,
                    value: v,
                    version: self.version_test(st.function, st.at),
                }),
                _ => {
                    f.blocker = Some((
                        st.at,
                        format!(
                            "`{}` at {:#x} writes it with a value not known",
                            text(img, st.at).unwrap_or_default(),
                            st.at
                        ),
                    ))
                }
            }
        }
        // An address formed without a load or store through it right away
        // may be passed on: the global may be written through it.
        if let Some(&(at, _)) = self.taken.iter().find(|t| t.1 >= rva && t.1 < end) {
            f.blocker = Some((
                at,
                format!(
                    "its address is taken by `{}` at {at:#x}",
                    text(img, at).unwrap_or_default()
                ),
            ));
        }
        f.stores.sort_by_key(|s| s.at);
        f
    }

    /// The Windows 8 test a store is made under (see globals.rs): a call
    /// to RtlGetVersion in the same function before it, then a comparison
    /// with 6 and a conditional branch between the two.
    fn version_test(&self, function: u32, at: u32) -> Option<VersionTest> {
        let (call, _) = self
            .import_calls
            .iter()
            .rev()
            .find(|(r, n)| *r >= function && *r < at && n == "RtlGetVersion")?;
        if !self.branches.iter().any(|&b| b > *call && b < at) {
            return None;
        }
        let (test, _, text) = self
            .compares
            .iter()
            .find(|(r, v, _)| *r > *call && *r < at && *v == 6)?;
        Some(VersionTest {
            api: "RtlGetVersion",
            call: *call,
            test: *test,
            text: text.clone(),
        })
    }

    /// What the direct callers of `entry` pass as parameter `param`.
    pub fn passed(&self, img: &Image<'_>, entry: u32, param: usize) -> super::callers::Passed {
        if let Some(&(at, _)) = self.taken.iter().find(|t| t.1 == entry) {
            return Err((
                format!(
                    "it is parameter {} of the function at {entry:#x}, whose address is taken at {at:#x}: its callers cannot all be seen",
                    param + 1
                ),
                at,
            ));
        }
        let va = img
            .imports
            .image_base
            .wrapping_add(u64::from(entry))
            .to_le_bytes();
        let in_data = img.pe.sections().filter(|s| !s.is_executable()).any(|s| {
            img.pe.bytes_from(s.rva(), "data").ok().is_some_and(|b| {
                let b = b.get(..s.raw_size() as usize).unwrap_or(b);
                memchr::memmem::find(b, &va).is_some()
            })
        });
        if in_data {
            return Err((
                format!(
                    "it is parameter {} of the function at {entry:#x}, whose address is stored in the image's data: its callers cannot all be seen",
                    param + 1
                ),
                entry,
            ));
        }
        let values: Vec<(u32, Val)> = self
            .calls
            .iter()
            .filter(|c| c.target == entry)
            .filter_map(|c| Some((c.at, *c.args.get(param)?)))
            .collect();
        if values.is_empty() {
            return Err((
                format!(
                    "it is parameter {} of the function at {entry:#x}, which no direct call reaches",
                    param + 1
                ),
                entry,
            ));
        }
        Ok(values)
    }
}
