//! Predicts DV's run-time code-integrity violations (0x2000–0x2002) from the
//! binary: every call site of a hooked import in an x64, x86 or ARM64
//! image, with the checked argument's value as far as the code fixes it,
//! judged by the engine's own predicates ([`Hook::check`]).
//!
//! [`sites`] finds the calls (decoding only the functions that reference a
//! hooked IAT slot or its thunk, where `.pdata` bounds them: [`refs`],
//! [`functions`]; else one linear [`sweep`]) and [`flow`] runs a data-flow
//! analysis over each function: [`track`] is its state and transfer
//! function, [`stack`] the tracked stack, [`value`] the values (known bits
//! and symbolic terms), [`worklist`] the order blocks are stepped in. ARM64
//! code has its own analysis ([`arm64`]). Then [`verdict`] judges each
//! site: a constant as is; known bits when they decide; a value read from
//! the driver's globals over every value they can hold ([`globals`], which
//! recognizes the driver runtime's NX opt-in); a choice (`cmovcc`, `csel`)
//! or paths that disagree, over each value; a parameter of a wrapper over
//! its callers' values ([`callers`]). A value
//! that comes from anywhere else is *unknown*, never guessed, and the
//! reason says why.

pub mod arm64;
pub mod callers;
pub mod disasm;
pub mod flow;
pub mod functions;
pub mod globals;
pub mod image;
pub mod refs;
pub mod sites;
pub mod stack;
pub mod stackmap;
pub mod sweep;
pub mod track;
pub mod value;
pub mod verdict;
pub mod worklist;

use crate::symbols::SourceLocation;
use callers::CallerValue;
use civ_engine::catalog::{Arg, CATALOG, Hook, Rule, Width};
use civ_engine::check::Violation;
use civ_engine::image as engine_image;
use civ_engine::names::{PoolFlagsName, PoolTypeName, PriorityName, ProtectionName};
use civ_engine::pe::{PeError, PeImage};
use functions::DIR_EXCEPTION;
use serde::Serialize;
use sweep::Code;
use value::Known;

/// IMAGE_FILE_MACHINE_AMD64.
pub const MACHINE_AMD64: u16 = 0x8664;
/// IMAGE_FILE_MACHINE_I386.
pub const MACHINE_I386: u16 = 0x014C;

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
#[derive(Clone, Debug)]
pub struct Site {
    /// RVA of the call (or tail jump) instruction.
    pub rva: u32,
    /// Its length: `rva + len` is the return address DV reports as Arg2
    /// (minus the image base), for a call.
    pub len: u8,
    /// Where the block holding the call starts.
    pub block_start: u32,
    /// Where the function (or the analyzed code) holding it starts.
    pub function_start: u32,
    /// The catalog row.
    pub hook: &'static Hook,
    /// How the call reaches it.
    pub via: Via,
    /// The import thunk called, for [`Via::Thunk`].
    pub thunk: Option<u32>,
    /// The argument slots as far as known (as many as the arity).
    pub args: Vec<Known>,
    /// The checked argument.
    pub checked: Arg,
    /// Its value, masked to its width, when it is one constant.
    pub value: Option<u64>,
    /// The verdict.
    pub verdict: Verdict,
    /// The engine's violation, for [`Verdict::Violation`].
    pub violation: Option<Violation>,
    /// The evidence for the verdict, or what stopped the analysis.
    pub reason: String,
    /// The address the reason is mostly about.
    pub reason_rva: Option<u32>,
    /// For a call in a wrapper: what each of its callers passes.
    pub callers: Vec<CallerValue>,
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

/// The mask of an argument's width.
pub fn mask_of(width: Width) -> u64 {
    match width {
        Width::U8 => 0xFF,
        Width::U32 => 0xFFFF_FFFF,
        Width::U64 => !0,
    }
}

/// Judges a call from the known argument slots with the engine's
/// predicate. The checked argument's value is what it is when all its bits
/// are known. When only some are, the verdict may still depend on known
/// bits only: DV's predicates each test single bits of the value in one
/// direction (monotone: a pool type is executable when bits 0 and 9 are
/// clear, a mapping when bit 30 is, a protection when any execute bit is
/// set), so the verdict is the same for every value of the unknown bits
/// when it is the same with them all clear, all set, and each flipped
/// alone from either (a unit test checks that property of every catalog
/// row). The value is then `None` and the verdict stands. A second argument
/// the verdict depends on (MmMapLockedPagesSpecifyCache's AccessMode) may
/// be unknown when it is a byte: then every one of its 256 values is
/// judged, and the verdict stands if they all agree.
pub fn judge(
    hook: &'static Hook,
    args: &[Known],
    caller: u64,
) -> (Option<u64>, Verdict, Option<Violation>) {
    let Some((checked, other, _)) = checked_argument(&hook.rule) else {
        return (None, Verdict::Unknown, None);
    };
    let width = mask_of(checked.width);
    let k = args
        .get(usize::from(checked.index))
        .copied()
        .unwrap_or_default();
    // Unknown slots that the rule does not read (sizes, pointers, tags)
    // are passed as 0.
    let mut raw: Vec<u64> = (0..usize::from(hook.arity))
        .map(|i| args.get(i).map_or(0, |k| k.bits))
        .collect();
    let other = other.filter(|o| {
        args.get(usize::from(o.index))
            .and_then(|k| k.value(mask_of(o.width)))
            .is_none()
    });
    if let Some(value) = k.value(width) {
        let (verdict, violation) = judge_raw(hook, &mut raw, checked, value, other, caller);
        return (Some(value), verdict, violation);
    }
    let unknown = !k.mask & width;
    if unknown == width {
        return (None, Verdict::Unknown, None);
    }
    let lo = k.bits & width;
    let hi = lo | unknown;
    let mut probes = vec![lo, hi];
    let mut bits = unknown;
    while bits != 0 {
        let b = bits & bits.wrapping_neg();
        bits &= bits - 1;
        probes.push(lo | b);
        probes.push(hi & !b);
    }
    let mut first: Option<(Verdict, Option<Violation>)> = None;
    for p in probes {
        let (verdict, violation) = judge_raw(hook, &mut raw, checked, p, other, caller);
        match &first {
            None => first = Some((verdict, violation)),
            Some((v, _)) if *v != verdict => return (None, Verdict::Unknown, None),
            Some(_) => {}
        }
    }
    match first {
        // A violation's Arg3 is the value DV would see, not known whole.
        Some((verdict, violation)) if verdict != Verdict::Unknown => (None, verdict, violation),
        _ => (None, Verdict::Unknown, None),
    }
}

/// Judges one value of the checked argument; an unknown byte argument
/// `other` is judged over all its values.
fn judge_raw(
    hook: &'static Hook,
    raw: &mut [u64],
    checked: Arg,
    value: u64,
    other: Option<Arg>,
    caller: u64,
) -> (Verdict, Option<Violation>) {
    if let Some(s) = raw.get_mut(usize::from(checked.index)) {
        *s = value;
    }
    let verdict_of = |v: &Option<Violation>| {
        if v.is_some() {
            Verdict::Violation
        } else {
            Verdict::Clean
        }
    };
    match other {
        Some(o) => {
            if o.width != Width::U8 {
                return (Verdict::Unknown, None);
            }
            let mut first: Option<Option<Violation>> = None;
            for b in 0..=255u64 {
                if let Some(s) = raw.get_mut(usize::from(o.index)) {
                    *s = b;
                }
                let v = hook.check(raw, caller);
                match &first {
                    None => first = Some(v),
                    Some(f) if f.is_some() != v.is_some() => return (Verdict::Unknown, None),
                    Some(_) => {}
                }
            }
            let v = first.flatten();
            (verdict_of(&v), v)
        }
        None => {
            let v = hook.check(raw, caller);
            (verdict_of(&v), v)
        }
    }
}

/// UNW_FLAG_EHANDLER | UNW_FLAG_UHANDLER: the unwind info names a handler,
/// and its handler data (a scope table for __C_specific_handler) follows.
const UNW_FLAG_HANDLERS: u8 = 0x3;
/// Scope table entries past this many are taken as garbage.
const MAX_SCOPES: u32 = 256;

/// Places control reaches inside functions from outside their own
/// branches: the filter and `__except` targets of the scope tables in the
/// unwind info (.xdata) of functions with a handler. A scope table is
/// recognized by its shape, not by its handler's name; a wrong reading
/// only adds entries, which only makes values unknown.
pub fn exception_handlers(pe: &PeImage<'_>, sections: &[Code<'_>]) -> Vec<u32> {
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
    for e in bytes.chunks_exact(12).take(functions::MAX_FUNCTIONS) {
        let unwind = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
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

/// A prediction and what it cost.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// The sites, in address order.
    pub sites: Vec<Site>,
    /// Bytes of code decoded (each region once, and the sweep if any).
    pub decoded: usize,
    /// Bytes of code in the executable sections.
    pub code: usize,
}

/// Predicts every call site of a hooked import. `None` for an image whose
/// code is not decoded (not x64, x86 or ARM64); an error only when the import
/// table cannot be read (the scan reports it already).
pub fn predict(pe: &PeImage<'_>) -> Result<Option<Vec<Site>>, PeError> {
    Ok(predict_with_cost(pe)?.map(|p| p.sites))
}

/// [`predict`], with the bytes decoded.
pub fn predict_with_cost(pe: &PeImage<'_>) -> Result<Option<Prediction>, PeError> {
    let wide = match (pe.machine(), pe.is_64()) {
        (MACHINE_AMD64, true) => true,
        (MACHINE_I386, false) => false,
        (arm64::MACHINE_ARM64, true) => true,
        _ => return Ok(None),
    };
    let mut slots: Vec<(u32, usize)> = Vec::new();
    engine_image::for_each_hooked_import(pe, |h, imp| {
        if h.code().is_some()
            && let Some(i) = CATALOG.iter().position(|c| std::ptr::eq(c, h))
        {
            slots.push((imp.iat_rva, i));
        }
    })?;
    let sections = code_sections(pe);
    let code = sections.iter().map(|s| s.bytes.len()).sum();
    if slots.is_empty() {
        return Ok(Some(Prediction {
            sites: Vec::new(),
            decoded: 0,
            code,
        }));
    }
    slots.sort_unstable();
    slots.dedup_by_key(|s| s.0);
    let imports = image::Imports {
        slots,
        thunks: Vec::new(),
        image_base: pe.image_base(),
    };
    let mut img = image::Image::new(pe, sections, wide, imports);
    let raw = sites::find(&mut img);
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let o = verdict::decide(&mut img, &r);
        let Some((checked, _, _)) = checked_argument(&r.hook.rule) else {
            continue;
        };
        out.push(Site {
            rva: r.rva,
            len: r.len,
            block_start: r.block_start,
            function_start: r.region.entry,
            hook: r.hook,
            via: r.via,
            thunk: r.thunk,
            args: r.args.iter().map(|a| a.known).collect(),
            checked,
            value: o.value,
            verdict: o.verdict.unwrap_or(Verdict::Unknown),
            violation: o.violation,
            reason: o.reason,
            reason_rva: o.reason_rva,
            callers: o.callers,
        });
    }
    Ok(Some(Prediction {
        sites: out,
        decoded: img.decoded,
        code,
    }))
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
    /// Its value when it is one constant, else null.
    pub value: Option<u64>,
    /// The value's WDK name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_name: Option<String>,
    /// `violation`, `clean` or `unknown`.
    pub verdict: Verdict,
    /// The evidence for the verdict (where the constant is set, the globals
    /// it is read from and their stores, the wrapper's callers), or, for an
    /// unknown value, what stopped the analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The RVA the reason is mostly about (the instruction that set the
    /// value, a store to a global, a caller, the block's start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_rva: Option<u32>,
    /// For a call in the driver's own wrapper whose checked argument is a
    /// parameter: each direct caller's call, value and verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<CallerValue>,
    /// The function, source file and line of the call, from the PDB.
    #[serde(flatten)]
    pub location: SourceLocation,
}

impl PredictedSite {
    /// The report of a site, without symbols.
    pub fn from_site(site: &Site) -> PredictedSite {
        let (_, _, name) = checked_argument(&site.hook.rule).unwrap_or((site.checked, None, "?"));
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
            reason: (!site.reason.is_empty()).then(|| site.reason.clone()),
            reason_rva: site.reason_rva,
            callers: site.callers.clone(),
            location: SourceLocation::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civ_engine::catalog::find_routine;

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

    /// judge's probing of partly known values relies on this: for every
    /// row, adding bits to the checked value moves the verdict one way
    /// only (never violation -> clean for one row and clean -> violation
    /// for the same row).
    #[test]
    fn every_predicate_is_monotone_in_its_checked_argument() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for h in CATALOG.iter().filter(|h| h.code().is_some()) {
            let (arg, _, _) = checked_argument(&h.rule).expect(h.name);
            let width = mask_of(arg.width);
            let mut dir = None;
            for round in 0..20_000 {
                // Sparse and dense values alike.
                let a = if round % 2 == 0 {
                    rand() & rand()
                } else {
                    rand()
                } & width;
                let b = (a | (rand() & rand() & rand())) & width;
                let mut raw = vec![0u64; usize::from(h.arity)];
                raw[usize::from(arg.index)] = a;
                let va = h.check(&raw, 0).is_some();
                raw[usize::from(arg.index)] = b;
                let vb = h.check(&raw, 0).is_some();
                if va != vb {
                    assert_eq!(*dir.get_or_insert(vb), vb, "{} is not monotone", h.name);
                }
            }
        }
    }

    #[test]
    fn known_bits_decide_when_the_verdict_depends_on_them_only() {
        let mdl = hook("MmMapLockedPagesSpecifyCache");
        let prio = |p: Known| [Known::UNKNOWN, k(0), k(1), k(0), k(0), p];
        // or eax, 40000010h: NX whatever eax held.
        let nx = Known::UNKNOWN.or(Known::constant(0x4000_0010));
        assert_eq!(judge(mdl, &prio(nx), 0).0, None);
        assert_eq!(judge(mdl, &prio(nx), 0).1, Verdict::Clean);
        // and eax, 0Fh: bit 30 known clear: executable whatever the rest.
        let x = Known::UNKNOWN.and(Known::constant(0xF));
        assert_eq!(judge(mdl, &prio(x), 0).1, Verdict::Violation);
        // Only bit 4 known: the verdict depends on bit 30, unknown.
        let b4 = Known::UNKNOWN.or(Known::constant(0x10));
        assert_eq!(judge(mdl, &prio(b4), 0).1, Verdict::Unknown);
        // A pool type with bit 9 (POOL_NX_ALLOCATION) set is NX.
        let pool = hook("ExAllocatePoolWithTag");
        let bts = Known::UNKNOWN.bit(9, Some(true));
        assert_eq!(judge(pool, &[bts, k(64), k(1)], 0).1, Verdict::Clean);
        // Bit 0 clear and bit 9 clear known: executable.
        let exec = Known::UNKNOWN.and(Known::constant(!0x201));
        assert_eq!(judge(pool, &[exec, k(64), k(1)], 0).1, Verdict::Violation);
    }
}
