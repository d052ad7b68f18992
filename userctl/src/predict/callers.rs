//! One level of call-site propagation: when the checked argument at a call
//! is a parameter of the function holding it (a driver's own wrapper,
//! `MyAlloc(type, size)`), the value is what each caller passes. Callers
//! are the direct calls and jumps to the function's start, found by a byte
//! scan of the code and checked by decoding; a reference to the start that
//! is not a direct call (its address taken: a callback, a dispatch table)
//! means callers the scan cannot see, and the site stays unknown.

use super::functions::Region;
use super::image::Image;
use super::refs::{self, Addressing};
use super::sites::{RawSite, argument};
use super::sweep::is_near;
use super::value::{Known, Sym, Val};
use super::verdict::{
    Outcome, WINDOWS_8, from_choice, from_globals, global_values, globals_named, in_words,
    judge_value,
};
use super::{Verdict, value_name};
use iced_x86::FlowControl;
use serde::Serialize;

/// Callers looked at, at most.
const MAX_CALLERS: usize = 64;

/// What one caller of a wrapper passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallerValue {
    /// RVA of the caller's call (or jump) to the wrapper.
    pub rva: u32,
    /// The value it passes for the checked argument, when constant.
    pub value: Option<u64>,
    /// The value's WDK name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_name: Option<String>,
    /// The verdict for that value.
    pub verdict: Verdict,
}

/// What one direct caller passes: the call's RVA, the value, and the
/// region analyzed around the call (x86 and x64).
pub type PassedValue = (u32, Val, Option<Region>);

/// What the direct callers of the function at `entry` pass as parameter
/// `param`, each; or why they cannot all be seen, and where. Found once
/// per image.
pub type Passed = Result<Vec<PassedValue>, (String, u32)>;

/// [`Passed`] for a function and parameter, from the image's cache.
pub fn passed(img: &mut Image<'_>, entry: u32, param: usize) -> Passed {
    if let Some(p) = img.passed.get(&(entry, param)) {
        return p.clone();
    }
    let p = match &img.arm {
        Some(a) => a.passed(img, entry, param),
        None => find_passed(img, entry, param),
    };
    img.passed.insert((entry, param), p.clone());
    p
}

fn find_passed(img: &mut Image<'_>, entry: u32, param: usize) -> Passed {
    let unknown = |reason: String, at: u32| Err((reason, at));
    // Direct calls and jumps are relative in both bitnesses; x86 code
    // takes an address absolutely.
    let mut fields = Vec::new();
    for s in &img.sections {
        fields.extend(
            refs::find(s, &[entry], &[0], Addressing::RipRelative)
                .into_iter()
                .map(|r| r.field),
        );
        if !img.wide {
            let how = Addressing::Absolute(img.imports.image_base as u32);
            fields.extend(
                refs::find(s, &[entry], &[0], how)
                    .into_iter()
                    .map(|r| r.field),
            );
        }
    }
    fields.sort_unstable();
    fields.dedup();
    // Its address in data (a function pointer table): callers unseen.
    let va = img.imports.image_base.wrapping_add(u64::from(entry));
    let pointer: Vec<u8> = if img.wide {
        va.to_le_bytes().to_vec()
    } else {
        (va as u32).to_le_bytes().to_vec()
    };
    // Leaf code (outside .pdata) may also be a jump table's target, by
    // its RVA (MSVC x64 tables); a .pdata function's RVA is in the
    // exception directory and unwind info, so it is not looked for.
    let leaf = img.wide && img.functions.range_of(entry).is_none();
    let rva_bytes = entry.to_le_bytes();
    let exception = img.pe.data_directory(super::functions::DIR_EXCEPTION);
    let in_data = img.pe.sections().filter(|s| !s.is_executable()).any(|s| {
        img.pe.bytes_from(s.rva(), "data").ok().is_some_and(|b| {
            let b = b.get(..s.raw_size() as usize).unwrap_or(b);
            let holds_va = memchr::memmem::find(b, &pointer).is_some();
            let holds_rva = leaf
                && exception.is_none_or(|(d, _)| !s.contains(d))
                && memchr::memmem::find(b, &rva_bytes).is_some();
            holds_va || holds_rva
        })
    });
    if in_data {
        return unknown(
            format!(
                "it is parameter {} of the function at {entry:#x}, whose address is stored in the image's data: its callers cannot all be seen",
                param + 1
            ),
            entry,
        );
    }
    let mut values = Vec::new();
    for field in fields.into_iter().take(MAX_CALLERS + 1) {
        let Some(region) = img.region_of(field) else {
            continue;
        };
        img.ensure(&region);
        let Some(flow) = img.analyzed(&region) else {
            continue;
        };
        let k = flow.insns().partition_point(|i| i.ip32() <= field);
        let Some(i) = k.checked_sub(1).and_then(|k| flow.insns().get(k)).copied() else {
            continue;
        };
        if field >= i.next_ip32() {
            continue;
        }
        let direct = is_near(&i)
            && i.near_branch_target() as u32 == entry
            && matches!(
                i.flow_control(),
                FlowControl::Call | FlowControl::UnconditionalBranch
            );
        if !direct {
            if region.contains(field)
                && super::track::absolute_rva(&i, img.imports.image_base) == Some(entry)
            {
                return unknown(
                    format!(
                        "it is parameter {} of the function at {entry:#x}, whose address is taken at {:#x}: its callers cannot all be seen",
                        param + 1,
                        i.ip32()
                    ),
                    i.ip32(),
                );
            }
            continue;
        }
        let tail = i.flow_control() == FlowControl::UnconditionalBranch;
        let Some((state, _)) = flow.state_before(i.ip32(), &img.imports) else {
            continue;
        };
        let (v, _) = argument(&state, None, param, tail);
        values.push((i.ip32(), v, Some(region.clone())));
    }
    if values.is_empty() {
        return unknown(
            format!(
                "it is parameter {} of the function at {entry:#x}, which no direct call reaches",
                param + 1
            ),
            entry,
        );
    }
    Ok(values)
}

/// Decides a wrapper's site from its callers; `param` is the parameter of
/// the function at `entry` the checked argument is, `known` the bits the
/// wrapper itself fixes.
pub fn decide(
    img: &mut Image<'_>,
    site: &RawSite,
    param: usize,
    entry: u32,
    known: Known,
    caller: u64,
) -> Outcome {
    let hook = site.hook;
    let values = match passed(img, entry, param) {
        Ok(v) => v,
        Err((reason, at)) => return Outcome::unknown(reason, at),
    };
    let (checked, _, _) = match super::checked_argument(&hook.rule) {
        Some(c) => c,
        None => return Outcome::default(),
    };
    let width = super::mask_of(checked.width);
    let mut callers = Vec::new();
    let mut list = Vec::new();
    let mut worst: Option<(u32, Option<civ_engine::check::Violation>)> = None;
    let mut unknown_at = None;
    // Some caller passes the driver runtime's NX default: clean only from
    // Windows 8 on.
    let mut from_windows_8 = false;
    for (at, v, region) in values {
        // The wrapper's own bits override the caller's.
        let passed = |x: u64| known.over(x) & width;
        let mut text = None;
        // (value, or None for several; verdict; the engine's violation)
        let judged: Vec<(Option<u64>, Verdict, Option<civ_engine::check::Violation>)> =
            match (v.known.value(width), v.sym) {
                (Some(x), _) => {
                    let x = passed(x);
                    let (verdict, violation) = judge_value(hook, &site.args, x, caller);
                    vec![(Some(x), verdict, violation)]
                }
                // A global passed on as is: judged as at a direct call,
                // the runtime's NX opt-in included.
                (None, Sym::Globals { .. }) if known.mask & width == 0 => {
                    let o = from_globals(img, site, v, width, caller);
                    let verdict = o.verdict.unwrap_or(Verdict::Unknown);
                    from_windows_8 |= o.windows_8;
                    if verdict != Verdict::Unknown && o.value.is_none() {
                        text = Some(format!(
                            "{at:#x} passes {} ({})",
                            globals_named(v.sym),
                            if o.windows_8 {
                                format!("{WINDOWS_8}, the driver runtime's NX opt-in")
                            } else {
                                in_words(verdict).to_string()
                            }
                        ));
                    }
                    match o.verdict {
                        // One verdict for every value the globals hold.
                        Some(verdict) if verdict != Verdict::Unknown => {
                            vec![(o.value, verdict, o.violation)]
                        }
                        _ => Vec::new(),
                    }
                }
                // Chosen by a conditional move or select in the caller:
                // each of the two values judged, in the caller's analysis.
                (None, Sym::Choice { at: c, .. })
                    if known.mask & width == 0
                        && let Some(o) = from_choice(
                            img,
                            site,
                            region.as_ref().unwrap_or(&site.region),
                            c,
                            caller,
                        ) =>
                {
                    let verdict = o.verdict.unwrap_or(Verdict::Unknown);
                    from_windows_8 |= o.windows_8;
                    text = Some(format!(
                        "{at:#x} passes the value `{}` at {c:#x} chooses ({})",
                        super::verdict::instruction_text(img, c).unwrap_or_default(),
                        if o.windows_8 {
                            WINDOWS_8
                        } else {
                            in_words(verdict)
                        }
                    ));
                    if verdict == Verdict::Unknown {
                        Vec::new()
                    } else {
                        vec![(None, verdict, o.violation)]
                    }
                }
                (None, Sym::Globals { .. }) => match global_values(img, v) {
                    Ok((vals, _)) => vals
                        .into_iter()
                        .map(|(x, _)| {
                            let x = passed(x);
                            let (verdict, violation) = judge_value(hook, &site.args, x, caller);
                            (Some(x), verdict, violation)
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                },
                _ => Vec::new(),
            };
        let verdict = if judged.is_empty() {
            Verdict::Unknown
        } else if judged.iter().all(|j| j.1 == judged[0].1) {
            judged[0].1
        } else {
            Verdict::Unknown
        };
        let value = if judged.len() == 1 { judged[0].0 } else { None };
        if verdict == Verdict::Violation && worst.is_none() {
            worst = Some((at, judged.first().and_then(|j| j.2)));
        }
        if verdict == Verdict::Unknown && unknown_at.is_none() {
            unknown_at = Some(at);
        }
        let value_name = value.map(|x| value_name(&hook.rule, x));
        list.push(match (text, value, &value_name) {
            (Some(t), _, _) => t,
            (None, Some(v), Some(n)) => format!("{at:#x} passes {v:#x} ({n})"),
            _ => format!("{at:#x} passes a value not known"),
        });
        callers.push(CallerValue {
            rva: at,
            value,
            value_name,
            verdict,
        });
    }
    let windows_8 = from_windows_8 && worst.is_none() && unknown_at.is_none();
    let what = format!(
        "{}it is parameter {} of the function at {entry:#x}; its callers: {}",
        if windows_8 {
            format!("{WINDOWS_8}: ")
        } else {
            String::new()
        },
        param + 1,
        list.join(", ")
    );
    let (verdict, violation, at) = match (worst, unknown_at) {
        (Some((at, v)), _) => (Verdict::Violation, v, at),
        (None, Some(at)) => (Verdict::Unknown, None, at),
        (None, None) => (Verdict::Clean, None, callers[0].rva),
    };
    Outcome {
        value: None,
        verdict: Some(verdict),
        violation,
        reason: what,
        reason_rva: Some(at),
        callers,
        windows_8,
    }
}
