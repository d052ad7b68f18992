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
//!
//! This file finds the functions, thunks, blocks and call sites;
//! `arm64/step.rs` is the transfer function, `arm64/facts.rs` what the
//! analysis tells of the globals and the callers.

use super::Via;
use super::functions::Region;
use super::image::Image;
use super::sites::RawSite;
use super::sweep::Code;
use super::track::Env;
use super::value::Val;
use super::worklist::Pending;
use civ_engine::catalog::CATALOG;
use std::collections::HashMap;
mod facts;
mod step;

use step::{State, read, reg, step};
use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction, Opcode, Operand};

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
    /// Conditional selects (`csel`, `csinc`): (RVA, the two values), in
    /// the state before them.
    choices: Vec<(u32, [Val; 2])>,
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
            let end = begin.checked_add(len)?;
            (begin != 0 && len > 0 && len <= MAX_FUNCTION_BYTES).then_some((begin, end))
        })
        .collect();
    out.sort_unstable();
    out.dedup_by_key(|f| f.0);
    out
}

/// Decodes `[begin, end)` of the code.
fn decode(img: &Image<'_>, begin: u32, end: u32) -> Vec<Insn> {
    match img.section_of(begin) {
        Some(s) => decode_code(s, begin, end),
        None => Vec::new(),
    }
}

/// Decodes `[begin, end)` of one code section, a word at a time.
pub fn decode_code(section: &Code<'_>, begin: u32, end: u32) -> Vec<Insn> {
    let bytes = section.from(begin);
    let bytes = bytes
        .get(..end.saturating_sub(begin) as usize)
        .unwrap_or(bytes);
    let d = InstDecoder::default();
    bytes
        .chunks_exact(4)
        .enumerate()
        .map(|(k, w)| {
            let mut r = U8Reader::new(w);
            Insn {
                rva: begin.wrapping_add(4 * k as u32),
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

impl Analysis {
    /// The two values the conditional select at an RVA chooses between.
    pub fn choices(&self, rva: u32) -> Option<[Val; 2]> {
        let mut at = self.choices.iter().filter(|c| c.0 == rva);
        let first = at.next()?.1;
        // Functions whose bounds overlap (malformed .pdata) may have seen
        // it in other states: then it is not one choice.
        at.all(|c| c.1 == first).then_some(first)
    }
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
    // Each section decoded once, for the thunks and every region in it.
    let code: Vec<Vec<Insn>> = img
        .sections
        .iter()
        .map(|s| decode(img, s.rva, s.rva + s.bytes.len() as u32))
        .collect();
    for insns in &code {
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
        let (begin, end) = region.ranges[0];
        let insns = region_insns(img, &code, begin, end);
        analyze_region(img, &region, &insns, &mut out);
    }
    out.sites.sort_by_key(|s| s.rva);
    out.sites.dedup_by_key(|s| s.rva);
    out
}

/// The instructions of `[begin, end)`: a slice of its section's, decoded
/// once, when `begin` is on that decoding's 4-byte grid (it always is for
/// .pdata's functions and the gaps between them); decoded anew otherwise.
fn region_insns<'c>(
    img: &Image<'_>,
    code: &'c [Vec<Insn>],
    begin: u32,
    end: u32,
) -> std::borrow::Cow<'c, [Insn]> {
    let slice = img
        .sections
        .iter()
        .position(|s| s.contains(begin))
        .and_then(|k| {
            let off = begin - img.sections.get(k)?.rva;
            let insns = code.get(k)?;
            if !off.is_multiple_of(4) {
                return None;
            }
            let a = (off / 4) as usize;
            let b = a + (end.saturating_sub(begin) / 4) as usize;
            insns.get(a..b.min(insns.len()))
        });
    match slice {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(decode(img, begin, end)),
    }
}

fn analyze_region(img: &Image<'_>, region: &Region, insns: &[Insn], out: &mut Analysis) {
    let (begin, _) = region.ranges[0];
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
    // Where each block's cbz/cbnz finds its register zero, once.
    let zeros: Vec<Option<(usize, usize, bool, u32)>> = (0..nb)
        .map(|b| {
            let last = starts.get(b + 1).copied().unwrap_or(n) - 1;
            let x = &insns[last];
            zero_edge(x, b, last + 1 < n, |k| index(k).map(block_of))
                .map(|(t, r, wide)| (t, r, wide, x.rva))
        })
        .collect();
    let mut pending = Pending::new(nb);
    for b in (0..nb).filter(|&b| ins[b].is_some()) {
        pending.insert(b);
    }
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
            // On the path where cbz/cbnz found the register zero, it is.
            let zeroed = zeros[b].filter(|z| z.0 == t).map(|(_, r, wide, at)| {
                let mut st = s.clone();
                st.know_zero(r, wide, at);
                st
            });
            let from = zeroed.as_ref().unwrap_or(&s);
            let changed = match &mut ins[t] {
                Some(st) => st.meet(from, rva),
                slot @ None => {
                    *slot = Some(from.clone());
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

/// `cbz`/`cbnz` ending block `b`: the successor reached when its register
/// is zero (cbz taken, cbnz not), the register and its width; `None` when
/// both ways lead to the same block. `falls`: an instruction follows.
fn zero_edge(
    x: &Insn,
    b: usize,
    falls: bool,
    block_at: impl Fn(u32) -> Option<usize>,
) -> Option<(usize, usize, bool)> {
    let i = x.i.as_ref()?;
    let (r, wide) = reg(&i.operands[0])?;
    let taken = block_at(branch_target(x)?)?;
    let fall = falls.then_some(b + 1);
    if Some(taken) == fall {
        return None;
    }
    let zero = match i.opcode {
        Opcode::CBZ => taken,
        Opcode::CBNZ => fall?,
        _ => return None,
    };
    Some((zero, r, wide))
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
                        args.copy_from_slice(&s.regs[..8]);
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
