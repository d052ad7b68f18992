//! Predicts DV's run-time code-integrity violations (0x2000–0x2002) from the
//! binary: every call site of a hooked import in an x64 image, with the
//! checked argument's value where it is a constant set up in the block
//! before the call, judged by the engine's own predicates
//! ([`Hook::check`]).
//!
//! Two passes. [`sweep`] decodes the executable sections once, linearly,
//! and finds the candidate calls (`call [IAT]`, `jmp [IAT]`, `call rel32`
//! to an import thunk, `call reg` after a load from the IAT) and the block
//! leaders. Then, for each candidate only, [`track`] runs forward from the
//! start of its block to the call, knowing which registers and stack bytes
//! hold constants. A value that comes from anywhere else (memory, another
//! block, a computation the tracker does not model) is *unknown*, never
//! guessed.

pub mod disasm;
pub mod sweep;
pub mod track;

use crate::symbols::SourceLocation;
use civ_engine::catalog::{Arg, CATALOG, Hook, Rule, Width};
use civ_engine::check::Violation;
use civ_engine::image;
use civ_engine::names::{PoolFlagsName, PoolTypeName, PriorityName, ProtectionName};
use civ_engine::pe::{PeError, PeImage};
use iced_x86::{Decoder, DecoderOptions, Instruction, InstructionInfoFactory, OpKind};
use serde::Serialize;
use sweep::{Candidate, Code, Kind, Sweep};
use track::{ARG_REGS, Env, Origin, State};

/// IMAGE_FILE_MACHINE_AMD64: the only machine whose code is decoded.
pub const MACHINE_AMD64: u16 = 0x8664;
/// IMAGE_DIRECTORY_ENTRY_EXCEPTION.
const DIR_EXCEPTION: usize = 3;
/// A block is followed back at most this far from its call: a value set
/// further back counts as unknown (it bounds the work on huge blocks).
const MAX_BLOCK_BYTES: u32 = 4096;
/// .pdata entries past this many are taken as garbage.
const MAX_FUNCTIONS: u32 = 1 << 20;

/// What a call site comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The engine's predicate objects to the constant: DV would bug-check.
    Violation,
    /// The engine's predicate accepts the constant.
    Clean,
    /// The checked argument is not a constant of the block.
    Unknown,
}

/// How the call reaches the import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// `call qword ptr [rip+IAT]`.
    Iat,
    /// `call rel32` to an import thunk (`jmp qword ptr [rip+IAT]`).
    Thunk,
    /// `call reg`, the register loaded from the IAT (or with a thunk's
    /// address) in the block.
    Register,
    /// A tail call: `jmp qword ptr [rip+IAT]`, or `jmp` to a thunk or
    /// through a register, at the end of a function.
    TailJump,
}

/// One predicted call site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// RVA of the call (or tail jump) instruction.
    pub rva: u32,
    /// Its length: `rva + len` is the return address DV reports as Arg2
    /// (minus the image base), for a call.
    pub len: u8,
    /// Where the tracked block starts.
    pub block_start: u32,
    /// The catalog row.
    pub hook: &'static Hook,
    /// How the call reaches it.
    pub via: Via,
    /// The import thunk called, for [`Via::Thunk`].
    pub thunk: Option<u32>,
    /// The argument slots as far as known (as many as the arity).
    pub args: Vec<track::Known>,
    /// For each slot, who last wrote it when it is not fully known.
    pub origins: Vec<Origin>,
    /// The checked argument.
    pub checked: Arg,
    /// Its value, masked to its width, when known.
    pub value: Option<u64>,
    /// The verdict.
    pub verdict: Verdict,
    /// The engine's violation, for [`Verdict::Violation`].
    pub violation: Option<Violation>,
    /// For an unknown value: the instruction that last wrote it, as text.
    pub origin_text: Option<String>,
}

impl Site {
    /// The return address's RVA, for a call (a tail jump returns to its
    /// function's caller).
    pub fn return_rva(&self) -> Option<u32> {
        (self.via != Via::TailJump).then(|| self.rva.wrapping_add(u32::from(self.len)))
    }
}

/// The checked argument of a rule, the other arguments the verdict depends
/// on, and the argument's name. The pool tag is not among them: it is only
/// carried into the bug check's Arg4.
pub fn checked_argument(rule: &Rule) -> Option<(Arg, Option<Arg>, &'static str)> {
    Some(match *rule {
        Rule::PoolType { pool_type, .. } => (pool_type, None, "PoolType"),
        Rule::PoolFlags { flags, .. } => (flags, None, "Flags"),
        Rule::NPagedLookasideFlags { flags, .. } => (flags, None, "Flags"),
        Rule::Protection { protect } => (protect, None, "Protect"),
        Rule::MdlMapping {
            access_mode,
            priority,
        } => (priority, Some(access_mode), "Priority"),
        Rule::MdlMappingLegacy { access_mode } => (access_mode, None, "AccessMode"),
        Rule::RoutineLookup => return None,
    })
}

/// The WDK name of a checked value (`NonPagedPool`, `PAGE_EXECUTE_READ`...).
pub fn value_name(rule: &Rule, value: u64) -> String {
    match rule {
        Rule::PoolType { .. } | Rule::NPagedLookasideFlags { .. } => {
            PoolTypeName(value as u32).to_string()
        }
        Rule::PoolFlags { .. } => PoolFlagsName(value).to_string(),
        Rule::Protection { .. } => ProtectionName(value as u32).to_string(),
        Rule::MdlMapping { .. } => PriorityName(value as u32).to_string(),
        Rule::MdlMappingLegacy { .. } => match value {
            0 => "KernelMode".into(),
            1 => "UserMode".into(),
            v => format!("{v:#x}"),
        },
        Rule::RoutineLookup => format!("{value:#x}"),
    }
}

fn mask_of(width: Width) -> u64 {
    match width {
        Width::U8 => 0xFF,
        Width::U32 => 0xFFFF_FFFF,
        Width::U64 => !0,
    }
}

/// Judges a call from the known argument slots with the engine's
/// predicate. The checked argument must be known. A second argument the
/// verdict depends on (MmMapLockedPagesSpecifyCache's AccessMode) may be
/// unknown when it is a byte: then every one of its 256 values is judged,
/// and the verdict stands if they all agree.
pub fn judge(
    hook: &'static Hook,
    args: &[track::Known],
    caller: u64,
) -> (Option<u64>, Verdict, Option<Violation>) {
    let Some((checked, other, _)) = checked_argument(&hook.rule) else {
        return (None, Verdict::Unknown, None);
    };
    let get = |a: Arg| {
        args.get(usize::from(a.index))
            .and_then(|k| k.value(mask_of(a.width)))
    };
    let Some(value) = get(checked) else {
        return (None, Verdict::Unknown, None);
    };
    // Unknown slots that the rule does not read (sizes, pointers, tags)
    // are passed as 0.
    let mut raw: Vec<u64> = (0..usize::from(hook.arity))
        .map(|i| args.get(i).map_or(0, |k| k.bits))
        .collect();
    let slot = |a: Arg| usize::from(a.index);
    match other {
        Some(o) if get(o).is_none() => {
            if o.width != Width::U8 {
                return (Some(value), Verdict::Unknown, None);
            }
            let mut first: Option<Option<Violation>> = None;
            for b in 0..=255u64 {
                if let Some(s) = raw.get_mut(slot(o)) {
                    *s = b;
                }
                let v = hook.check(&raw, caller);
                match &first {
                    None => first = Some(v),
                    Some(f) if f.is_some() != v.is_some() => {
                        return (Some(value), Verdict::Unknown, None);
                    }
                    Some(_) => {}
                }
            }
            let v = first.flatten();
            let verdict = if v.is_some() {
                Verdict::Violation
            } else {
                Verdict::Clean
            };
            (Some(value), verdict, v)
        }
        _ => {
            let v = hook.check(&raw, caller);
            let verdict = if v.is_some() {
                Verdict::Violation
            } else {
                Verdict::Clean
            };
            (Some(value), verdict, v)
        }
    }
}

/// The hooked imports' IAT slots and the thunks found for them.
struct Imports {
    /// (IAT slot RVA, catalog index), sorted by slot.
    slots: Vec<(u32, usize)>,
    /// (thunk RVA, catalog index), sorted by thunk.
    thunks: Vec<(u32, usize)>,
}

impl Env for Imports {
    fn iat_slot(&self, rva: u32) -> Option<usize> {
        self.slots
            .binary_search_by_key(&rva, |s| s.0)
            .ok()
            .map(|i| self.slots[i].1)
    }
    fn thunk(&self, rva: u32) -> Option<usize> {
        self.thunks
            .binary_search_by_key(&rva, |s| s.0)
            .ok()
            .map(|i| self.thunks[i].1)
    }
}

/// The executable sections' bytes, each cut to its virtual size. A
/// section whose raw data is missing is skipped: nothing of it is loaded
/// from the file.
pub fn code_sections<'a>(pe: &PeImage<'a>) -> Vec<Code<'a>> {
    pe.sections()
        .filter(|s| s.is_executable())
        .filter_map(|s| {
            let bytes = pe.bytes_from(s.rva(), "code").ok()?;
            let n = bytes.len().min(s.extent() as usize);
            Some(Code {
                rva: s.rva(),
                bytes: bytes.get(..n)?,
            })
        })
        .collect()
}

/// UNW_FLAG_EHANDLER | UNW_FLAG_UHANDLER: the unwind info names a handler,
/// and its handler data (a scope table for __C_specific_handler) follows.
const UNW_FLAG_HANDLERS: u8 = 0x3;
/// Scope table entries past this many are taken as garbage.
const MAX_SCOPES: u32 = 256;

/// Places control reaches from outside the code's own branches, from the
/// exception directory: every function start (.pdata), and the filter and
/// `__except` targets of the scope tables in the unwind info (.xdata) of
/// functions with a handler. A scope table is recognized by its shape, not
/// by its handler's name; a wrong reading only adds leaders, which only
/// makes values unknown.
fn exception_leaders(pe: &PeImage<'_>, sections: &[Code<'_>]) -> Vec<u32> {
    let Some((rva, size)) = pe.data_directory(DIR_EXCEPTION) else {
        return Vec::new();
    };
    let Ok(bytes) = pe.bytes_from(rva, "exception directory") else {
        return Vec::new();
    };
    let bytes = bytes.get(..size as usize).unwrap_or(bytes);
    let u32_at = |rva: u32| {
        pe.bytes_at(rva, 4, "unwind info")
            .ok()
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let in_code = |rva: u32| sections.iter().any(|s| s.contains(rva));
    let mut out = Vec::new();
    for e in bytes.chunks_exact(12).take(MAX_FUNCTIONS as usize) {
        let begin = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let unwind = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
        if begin != 0 {
            out.push(begin);
        }
        let Ok(head) = pe.bytes_at(unwind, 4, "unwind info") else {
            continue;
        };
        if (head[0] >> 3) & UNW_FLAG_HANDLERS == 0 {
            continue;
        }
        // The handler RVA follows the unwind codes (2 bytes each, padded to
        // an even count), then the scope table: a count and 16-byte
        // entries (begin, end, handler or filter, __except target).
        let codes = u32::from(head[2]).next_multiple_of(2);
        let Some(table) = unwind.checked_add(4 + 2 * codes + 4) else {
            continue;
        };
        let Some(count) = u32_at(table).filter(|&c| c <= MAX_SCOPES) else {
            continue;
        };
        for n in 0..count {
            let at = table + 4 + 16 * n;
            let (Some(b), Some(end), Some(filter), Some(target)) =
                (u32_at(at), u32_at(at + 4), u32_at(at + 8), u32_at(at + 12))
            else {
                break;
            };
            if !in_code(b) || !in_code(end.saturating_sub(1)) {
                break;
            }
            // Filter 1 is EXCEPTION_EXECUTE_HANDLER; a target of 0 marks a
            // __finally, whose "filter" field is the termination handler.
            for r in [filter, target] {
                if r > 1 && in_code(r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Predicts every call site of a hooked import. `None` for an image that
/// is not x64 (its code is not decoded); an error only when the import
/// table cannot be read (the scan reports it already).
pub fn predict(pe: &PeImage<'_>) -> Result<Option<Vec<Site>>, PeError> {
    if pe.machine() != MACHINE_AMD64 || !pe.is_64() {
        return Ok(None);
    }
    let mut slots: Vec<(u32, usize)> = Vec::new();
    image::for_each_hooked_import(pe, |h, imp| {
        if h.code().is_some()
            && let Some(i) = CATALOG.iter().position(|c| std::ptr::eq(c, h))
        {
            slots.push((imp.iat_rva, i));
        }
    })?;
    if slots.is_empty() {
        return Ok(Some(Vec::new()));
    }
    slots.sort_unstable();
    slots.dedup_by_key(|s| s.0);
    let sections = code_sections(pe);
    let slot_rvas: Vec<u32> = slots.iter().map(|s| s.0).collect();
    let read_u32 = |rva: u32| {
        pe.bytes_at(rva, 4, "jump table")
            .ok()
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let leaders = exception_leaders(pe, &sections);
    let sw = sweep::sweep(&sections, &slot_rvas, &leaders, &read_u32);
    Ok(Some(analyze(&sections, &sw, slots, pe.image_base())))
}

/// The second pass, over the sweep's candidates.
fn analyze(
    sections: &[Code<'_>],
    sw: &Sweep,
    slots: Vec<(u32, usize)>,
    image_base: u64,
) -> Vec<Site> {
    let mut imports = Imports {
        slots,
        thunks: Vec::new(),
    };
    // A `jmp [IAT]` that some call or jump targets is an import thunk;
    // one that none targets ends a function: a tail call. One that control
    // cannot fall into and no branch reaches is a thunk no code calls (or
    // calls through a pointer): not a call site.
    let mut targets: Vec<u32> = sw
        .candidates
        .iter()
        .filter(|c| matches!(c.kind, Kind::CallDirect | Kind::JmpDirect))
        .map(|c| c.target)
        .collect();
    targets.sort_unstable();
    targets.dedup();
    let targeted = |rva: u32| targets.binary_search(&rva).is_ok();
    for c in sw.candidates.iter().filter(|c| c.kind == Kind::JmpIat) {
        if targeted(c.rva)
            && let Some(t) = imports.iat_slot(c.target)
        {
            imports.thunks.push((c.rva, t));
        }
    }
    imports.thunks.sort_unstable();
    // Incremental linking puts `jmp rel32` stubs in front of functions:
    // a call may reach a thunk through one (or a few).
    let jumps: std::collections::HashMap<u32, u32> = if imports.thunks.is_empty() {
        Default::default()
    } else {
        sw.candidates
            .iter()
            .filter(|c| c.kind == Kind::JmpDirect)
            .map(|c| (c.rva, c.target))
            .collect()
    };
    let thunk_of = |mut target: u32| -> Option<(u32, usize)> {
        for _ in 0..4 {
            if let Some(t) = imports.thunk(target) {
                return Some((target, t));
            }
            target = *jumps.get(&target)?;
        }
        None
    };

    let mut info = InstructionInfoFactory::new();
    let mut sites = Vec::new();
    for c in &sw.candidates {
        let (via, thunk, fixed) = match c.kind {
            Kind::CallIat => (Via::Iat, None, imports.iat_slot(c.target)),
            Kind::JmpIat => {
                let jcc_target = sw.jcc_targets.binary_search(&c.rva).is_ok();
                if imports.thunk(c.rva).is_some() || (c.after_stop && !jcc_target) {
                    continue;
                }
                (Via::TailJump, None, imports.iat_slot(c.target))
            }
            Kind::CallDirect | Kind::JmpDirect => match thunk_of(c.target) {
                Some((thunk, t)) => {
                    let via = if c.kind == Kind::CallDirect {
                        Via::Thunk
                    } else {
                        Via::TailJump
                    };
                    (via, Some(thunk), Some(t))
                }
                None => continue,
            },
            Kind::CallReg => (Via::Register, None, None),
            Kind::JmpReg => (Via::TailJump, None, None),
        };
        if fixed.is_none() && !matches!(c.kind, Kind::CallReg | Kind::JmpReg) {
            continue;
        }
        if let Some(site) = track_site(
            sections, sw, &imports, c, via, thunk, fixed, &mut info, image_base,
        ) {
            sites.push(site);
        }
    }
    sites.sort_by_key(|s| s.rva);
    sites.dedup_by_key(|s| s.rva);
    sites
}

/// Where the block of an instruction starts: the nearest leader at or
/// before it (moved to the first instruction of the sweep at or after the
/// leader), no further back than [`MAX_BLOCK_BYTES`].
pub fn block_start(sections: &[Code<'_>], sw: &Sweep, rva: u32) -> Option<(usize, u32)> {
    let s = sections.iter().position(|s| s.contains(rva))?;
    let section = &sections[s];
    let floor = section.rva.max(rva.saturating_sub(MAX_BLOCK_BYTES));
    let leader = sw.leader_at_or_below(rva).unwrap_or(section.rva).max(floor);
    let start = (leader..=rva).find(|&r| sw.is_start(s, section, r))?;
    Some((s, start))
}

#[allow(clippy::too_many_arguments)]
fn track_site(
    sections: &[Code<'_>],
    sw: &Sweep,
    imports: &Imports,
    c: &Candidate,
    via: Via,
    thunk: Option<u32>,
    fixed: Option<usize>,
    info: &mut InstructionInfoFactory,
    image_base: u64,
) -> Option<Site> {
    let (s, start) = block_start(sections, sw, c.rva)?;
    let section = &sections[s];
    let mut d = Decoder::with_ip(
        64,
        section.from(start),
        u64::from(start),
        DecoderOptions::NONE,
    );
    let mut state = State::new();
    let mut i = Instruction::default();
    let mut at_call = false;
    while d.can_decode() {
        d.decode_out(&mut i);
        if i.ip32() >= c.rva {
            at_call = i.ip32() == c.rva;
            break;
        }
        state.step(&i, imports, info);
    }
    if !at_call {
        // The block's decoding did not meet the call: start afresh at it.
        state = State::new();
        let mut d = Decoder::with_ip(
            64,
            section.from(c.rva),
            u64::from(c.rva),
            DecoderOptions::NONE,
        );
        if !d.can_decode() {
            return None;
        }
        d.decode_out(&mut i);
    }
    let target = match fixed {
        Some(t) => t,
        None => {
            // call/jmp reg: the register must hold a hooked API's pointer.
            if i.op0_kind() != OpKind::Register {
                return None;
            }
            state.func(i.op0_register())?.target
        }
    };
    let hook: &'static Hook = CATALOG.get(target)?;
    let (checked, _, _) = checked_argument(&hook.rule)?;
    // At a call, argument n (n >= 4) is at [rsp + 8n]; at a tail jump the
    // return address is already on the stack, so it is at [rsp + 8 + 8n].
    let extra = if via == Via::TailJump { 8 } else { 0 };
    let mut args = Vec::with_capacity(usize::from(hook.arity));
    let mut origins = Vec::with_capacity(usize::from(hook.arity));
    for n in 0..usize::from(hook.arity) {
        let (k, o) = match ARG_REGS.get(n) {
            Some(&r) => (state.reg(r), state.reg_origin(r)),
            None => state.stack_qword(extra + 8 * n as i64),
        };
        args.push(k);
        origins.push(o);
    }
    let caller = image_base.wrapping_add(u64::from(c.rva) + u64::from(c.len));
    let (value, verdict, violation) = judge(hook, &args, caller);
    let origin_text = match (verdict, origins.get(usize::from(checked.index))) {
        (Verdict::Unknown, Some(Origin::At(rva))) => instruction_text(section, *rva),
        _ => None,
    };
    Some(Site {
        rva: c.rva,
        len: c.len,
        block_start: start,
        hook,
        via,
        thunk,
        args,
        origins,
        checked,
        value,
        verdict,
        violation,
        origin_text,
    })
}

/// The instruction at an RVA, in Intel syntax.
fn instruction_text(section: &Code<'_>, rva: u32) -> Option<String> {
    use iced_x86::Formatter;
    let mut d = Decoder::with_ip(64, section.from(rva), u64::from(rva), DecoderOptions::NONE);
    if !d.can_decode() {
        return None;
    }
    let i = d.decode();
    let mut f = iced_x86::IntelFormatter::new();
    f.options_mut().set_space_after_operand_separator(true);
    let mut text = String::new();
    f.format(&i, &mut text);
    Some(text)
}

/// A site as `civctl scan` reports it (docs/scan-json.md, `predicted`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PredictedSite {
    /// RVA of the call instruction.
    pub rva: u32,
    /// RVA of the return address (DV's Arg2 minus the image base); absent
    /// for a tail jump.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_rva: Option<u32>,
    /// The hooked API.
    pub api: &'static str,
    /// The DV code a violation of it carries: `0x2000`, `0x2001` or `0x2002`.
    pub code: &'static str,
    /// How the call reaches the import: `iat`, `thunk`, `register`, `tail-jump`.
    pub via: Via,
    /// The checked argument's name (`PoolType`, `Priority`, ...).
    pub argument: &'static str,
    /// Its zero-based position.
    pub argument_index: u8,
    /// Its value, or null when unknown.
    pub value: Option<u64>,
    /// The value's WDK name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_name: Option<String>,
    /// `violation`, `clean` or `unknown`.
    pub verdict: Verdict,
    /// For an unknown value: where it comes from, as far as the block tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an unknown value: the RVA the reason is about (the instruction
    /// that set the value, the call that clobbered it, or the block's start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_rva: Option<u32>,
    /// The function, source file and line of the call, from the PDB.
    #[serde(flatten)]
    pub location: SourceLocation,
}

/// Why an unknown site is unknown, and the address the reason is about
/// (the instruction that set the value, the call that clobbered it, or the
/// block's start).
fn reason(site: &Site) -> Option<(String, u32)> {
    if site.verdict != Verdict::Unknown {
        return None;
    }
    let n = usize::from(site.checked.index);
    let (what, origin) = match site.value {
        // The checked value is known, another argument is not.
        Some(_) => {
            let (_, other, _) = checked_argument(&site.hook.rule)?;
            let o = other?;
            (
                "AccessMode is",
                site.origins.get(usize::from(o.index)).copied()?,
            )
        }
        None => ("it is", site.origins.get(n).copied()?),
    };
    Some(match origin {
        Origin::BeforeBlock => (
            format!(
                "{what} not set between the block's start at {:#x} and the call",
                site.block_start
            ),
            site.block_start,
        ),
        Origin::At(rva) => match &site.origin_text {
            Some(text) if site.value.is_none() => (
                format!("{what} set by `{text}` at {rva:#x}, not a constant"),
                rva,
            ),
            _ => (format!("{what} set at {rva:#x}, not a constant"), rva),
        },
        Origin::Call(rva) => (format!("{what} clobbered by the call at {rva:#x}"), rva),
    })
}

impl PredictedSite {
    /// The report of a site, without symbols.
    pub fn from_site(site: &Site) -> PredictedSite {
        let (_, _, name) = checked_argument(&site.hook.rule).unwrap_or((site.checked, None, "?"));
        let reason = reason(site);
        PredictedSite {
            rva: site.rva,
            return_rva: site.return_rva(),
            api: site.hook.name,
            code: site.hook.code().map_or("-", |c| c.counter().tag()),
            via: site.via,
            argument: name,
            argument_index: site.checked.index,
            value: site.value,
            value_name: site.value.map(|v| value_name(&site.hook.rule, v)),
            verdict: site.verdict,
            reason: reason.as_ref().map(|r| r.0.clone()),
            reason_rva: reason.map(|r| r.1),
            location: SourceLocation::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civ_engine::catalog::find_routine;
    use track::Known;

    fn hook(name: &str) -> &'static Hook {
        find_routine(name.as_bytes()).expect("catalog row")
    }

    fn k(v: u64) -> Known {
        Known::constant(v)
    }

    #[test]
    fn judge_uses_the_engine_and_masks_to_the_argument_width() {
        let h = hook("ExAllocatePoolWithTag");
        // Garbage in the upper half of a 32-bit argument does not matter.
        let (v, verdict, violation) = judge(h, &[k(0xDEAD_0000_0000_0000), k(64), k(1)], 0x1000);
        assert_eq!((v, verdict), (Some(0), Verdict::Violation));
        assert_eq!(
            violation.map(|x| (x.arg3, x.arg4, x.caller)),
            Some((0, 1, 0x1000))
        );
        let (v, verdict, _) = judge(h, &[k(0x200), Known::UNKNOWN, Known::UNKNOWN], 0);
        assert_eq!((v, verdict), (Some(0x200), Verdict::Clean));
        let (v, verdict, _) = judge(h, &[Known::UNKNOWN, k(64), k(1)], 0);
        assert_eq!((v, verdict), (None, Verdict::Unknown));
        // Only the low 32 bits known is enough for a POOL_TYPE.
        let low = Known {
            bits: 0x200,
            mask: 0xFFFF_FFFF,
        };
        assert_eq!(judge(h, &[low], 0).1, Verdict::Clean);
    }

    #[test]
    fn an_unknown_access_mode_is_judged_over_all_its_values() {
        let h = hook("MmMapLockedPagesSpecifyCache");
        let args = |priority: u64| {
            [
                Known::UNKNOWN,
                Known::UNKNOWN,
                k(1),
                k(0),
                k(0),
                k(priority),
            ]
        };
        // NX whatever the mode.
        assert_eq!(judge(h, &args(0x4000_0010), 0).1, Verdict::Clean);
        // Executable in kernel mode, NX in user mode: cannot tell.
        assert_eq!(
            judge(h, &args(0x10), 0),
            (Some(0x10), Verdict::Unknown, None)
        );
        let mut kernel = args(0x10);
        kernel[1] = k(0);
        assert_eq!(judge(h, &kernel, 0).1, Verdict::Violation);
    }

    #[test]
    fn every_checked_row_has_an_argument_and_names_its_values() {
        for h in CATALOG.iter().filter(|h| h.code().is_some()) {
            let (arg, _, name) = checked_argument(&h.rule).expect(h.name);
            assert!(arg.index < h.arity && !name.is_empty(), "{}", h.name);
            assert!(!value_name(&h.rule, 0).is_empty(), "{}", h.name);
        }
        assert_eq!(
            checked_argument(&hook("MmGetSystemRoutineAddress").rule),
            None
        );
    }
}
