//! From what is known of a call's arguments to a verdict and its evidence.
//! The verdict always comes from the engine's predicate ([`super::judge`]);
//! this module only decides which values to give it:
//!
//! - a constant (all the bits the verdict depends on known) is judged as is;
//! - a value read from the driver's own globals is judged for every value
//!   those globals can hold ([`super::globals`]): one verdict if all
//!   agree; *clean on Windows 8 and later* when the values that disagree
//!   are the image's own and the NX values the driver runtime's opt-in
//!   stores after its version test;
//! - a parameter of the function (a wrapper of the import) is judged for
//!   the value each direct caller passes ([`super::callers`]), one level.
//!
//! Every verdict comes with a sentence naming its evidence, and an unknown
//! one with what stopped the analysis.

use super::callers::{self, CallerValue};
use super::functions::Region;
use super::globals::{self, Facts};
use super::image::Image;
use super::sites::RawSite;
use super::track::Origin;
use super::value::{Known, Sym, Val, width_mask};
use super::{Verdict, checked_argument, judge, mask_of, value_name};
use civ_engine::catalog::Hook;
use civ_engine::check::Violation;

/// Value combinations judged at most for one site.
const MAX_COMBINATIONS: usize = 64;

/// The outcome for one site.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The checked value, when it is one constant.
    pub value: Option<u64>,
    /// The verdict.
    pub verdict: Option<Verdict>,
    /// The engine's violation, for a violation.
    pub violation: Option<Violation>,
    /// The evidence, as a sentence.
    pub reason: String,
    /// The address the reason is mostly about.
    pub reason_rva: Option<u32>,
    /// For a wrapper: each caller's value and verdict.
    pub callers: Vec<CallerValue>,
    /// The verdict holds from Windows 8 on (the driver runtime's NX
    /// opt-in); the reason starts with [`WINDOWS_8`].
    pub windows_8: bool,
}

/// How a reason says that a verdict holds from Windows 8 on.
pub const WINDOWS_8: &str = "clean on Windows 8 and later";

/// The globals a term reads, as a reason names them.
pub fn globals_named(sym: Sym) -> String {
    let rvas: Vec<String> = sym.globals().iter().map(|g| format!("{g:#x}")).collect();
    format!("the global at {}", rvas.join(" and "))
}

fn hex_named(hook: &Hook, v: u64) -> String {
    format!("{v:#x} ({})", value_name(&hook.rule, v))
}

impl Outcome {
    /// An unknown verdict: what stopped the analysis, and where.
    pub fn unknown(reason: String, at: u32) -> Outcome {
        Outcome {
            verdict: Some(Verdict::Unknown),
            reason,
            reason_rva: Some(at),
            ..Outcome::default()
        }
    }
}

/// Judges the site with the checked argument (and the others as known)
/// replaced by `value`.
pub fn judge_value(
    hook: &'static Hook,
    args: &[Val],
    value: u64,
    caller: u64,
) -> (Verdict, Option<Violation>) {
    let Some((checked, _, _)) = checked_argument(&hook.rule) else {
        return (Verdict::Unknown, None);
    };
    let mut known: Vec<Known> = args.iter().map(|a| a.known).collect();
    if let Some(k) = known.get_mut(usize::from(checked.index)) {
        *k = Known::constant(value);
    }
    let (_, verdict, violation) = judge(hook, &known, caller);
    (verdict, violation)
}

/// Why a value is unknown, from who last wrote it.
fn origin_reason(what: &str, origin: Origin, site: &RawSite, img: &Image<'_>) -> (String, u32) {
    match origin {
        Origin::BeforeBlock => (
            format!(
                "{what} not set between {:#x} and the call",
                if site.region.exact {
                    site.region.entry
                } else {
                    site.block_start
                }
            ),
            site.block_start,
        ),
        Origin::At(rva) => match instruction_text(img, rva) {
            Some(text) => (
                format!("{what} set by `{text}` at {rva:#x}, not a constant"),
                rva,
            ),
            None => (format!("{what} set at {rva:#x}, not a constant"), rva),
        },
        Origin::Call(rva) => (format!("{what} clobbered by the call at {rva:#x}"), rva),
        Origin::Merge(rva) => (
            format!("{what} not the same constant on every path that reaches {rva:#x}"),
            rva,
        ),
    }
}

/// The instruction at an RVA, as text.
pub fn instruction_text(img: &Image<'_>, rva: u32) -> Option<String> {
    if img.is_arm64() {
        return super::arm64::text(img, rva);
    }
    let s = img.section_of(rva)?;
    let bitness = if img.wide { 64 } else { 32 };
    let mut d = iced_x86::Decoder::with_ip(
        bitness,
        s.from(rva),
        u64::from(rva),
        iced_x86::DecoderOptions::NONE,
    );
    if !d.can_decode() {
        return None;
    }
    Some(globals::text(&d.decode()))
}

/// Decides a site.
pub fn decide(img: &mut Image<'_>, site: &RawSite) -> Outcome {
    let hook = site.hook;
    let caller = img
        .imports
        .image_base
        .wrapping_add(u64::from(site.rva) + u64::from(site.len));
    let Some((checked, other, name)) = checked_argument(&hook.rule) else {
        return Outcome {
            verdict: Some(Verdict::Unknown),
            reason: "the rule checks no argument".into(),
            ..Outcome::default()
        };
    };
    let n = usize::from(checked.index);
    let width = mask_of(checked.width);
    let val = site.args.get(n).copied().unwrap_or(Val::UNKNOWN);
    let origin = site.origins.get(n).copied().unwrap_or(Origin::BeforeBlock);
    let known: Vec<Known> = site.args.iter().map(|a| a.known).collect();
    let (value, verdict, violation) = judge(hook, &known, caller);
    if value.is_none() && verdict != Verdict::Unknown {
        // Known bits decide.
        let k = val.known;
        let at = match origin {
            Origin::At(rva) => format!(
                ", set by `{}` at {rva:#x}",
                instruction_text(img, rva).unwrap_or_default()
            ),
            _ => String::new(),
        };
        return Outcome {
            value: None,
            verdict: Some(verdict),
            violation,
            reason: format!(
                "{name} is not a constant, but its known bits decide: {:#x} under the mask {:#x}{at}; \
                 DV's test gives the same answer whatever the other bits are",
                k.bits & width,
                k.mask & width
            ),
            reason_rva: match origin {
                Origin::At(rva) => Some(rva),
                _ => None,
            },
            callers: Vec::new(),
            windows_8: false,
        };
    }
    if value.is_some() {
        let (reason, reason_rva) = match verdict {
            Verdict::Unknown => {
                // The checked value is known, another argument is not.
                let o = other.map(|o| {
                    site.origins
                        .get(usize::from(o.index))
                        .copied()
                        .unwrap_or(Origin::BeforeBlock)
                });
                let (r, at) =
                    origin_reason("AccessMode is", o.unwrap_or(Origin::BeforeBlock), site, img);
                (r, Some(at))
            }
            _ => match origin {
                Origin::At(rva) => (
                    format!(
                        "{name} is a constant, set by `{}` at {rva:#x}",
                        instruction_text(img, rva).unwrap_or_default()
                    ),
                    Some(rva),
                ),
                Origin::Merge(rva) => (
                    format!("{name} is the same constant on every path that reaches {rva:#x}"),
                    Some(rva),
                ),
                _ => (format!("{name} is a constant"), None),
            },
        };
        return Outcome {
            value,
            verdict: Some(verdict),
            violation,
            reason,
            reason_rva,
            callers: Vec::new(),
            windows_8: false,
        };
    }
    match val.sym {
        Sym::Globals { .. } => from_globals(img, site, val, width, caller),
        Sym::Choice { at, .. } => from_choice(img, site, &site.region, at, caller)
            .unwrap_or_else(|| unknown_from(origin, site, img)),
        Sym::Param { n, entry } => {
            callers::decide(img, site, usize::from(n), entry, val.known, caller)
        }
        _ => {
            if origin == Origin::Merge(site.block_start)
                && let Some(o) = from_paths(img, site, caller)
            {
                return o;
            }
            unknown_from(origin, site, img)
        }
    }
}

/// Unknown, for what last wrote the value.
fn unknown_from(origin: Origin, site: &RawSite, img: &Image<'_>) -> Outcome {
    let (reason, at) = origin_reason("it is", origin, site, img);
    Outcome {
        verdict: Some(Verdict::Unknown),
        reason,
        reason_rva: Some(at),
        ..Outcome::default()
    }
}

/// The two values the conditional move or select at `at` (in `region`)
/// chooses between.
fn choices_at(img: &mut Image<'_>, region: &Region, at: u32) -> Option<[Val; 2]> {
    if let Some(a) = &img.arm {
        return a.choices(at);
    }
    img.ensure(region);
    let flow = img.analyzed(region)?;
    let (state, _) = flow.state_before(at, &img.imports)?;
    let i = flow.insns().get(flow.index_of(at)?)?;
    state.choices(i, &img.imports)
}

/// The outcome for a value set by a conditional move or select (`cmovne`,
/// `csel` at `at`, in `region`) for `site`'s checked argument: each of the
/// two values judged (see `from_alternatives`).
pub fn from_choice(
    img: &mut Image<'_>,
    site: &RawSite,
    region: &Region,
    at: u32,
    caller: u64,
) -> Option<Outcome> {
    let (_, _, name) = checked_argument(&site.hook.rule)?;
    let choices = choices_at(img, region, at)?;
    let text = instruction_text(img, at).unwrap_or_default();
    let what = format!("{name} is chosen by `{text}` at {at:#x} between");
    from_alternatives(img, site, &choices, &what, at, caller)
}

/// The outcome for the checked argument when the paths into the call's own
/// block disagree on it: the value along each path, judged
/// ([`from_alternatives`]). x86 and x64 only.
fn from_paths(img: &mut Image<'_>, site: &RawSite, caller: u64) -> Option<Outcome> {
    if img.arm.is_some() {
        return None;
    }
    let (checked, _, name) = checked_argument(&site.hook.rule)?;
    let n = usize::from(checked.index);
    let tail = site.via == super::Via::TailJump;
    let flow = img.analyzed(&site.region)?;
    let states = flow.states_before_by_path(site.rva, &img.imports)?;
    let values: Vec<Val> = states
        .iter()
        .map(|s| super::sites::argument(s, Some(site.hook), n, tail).0)
        .collect();
    let what = format!(
        "{name} differs between the {} paths into {:#x}:",
        values.len(),
        site.block_start
    );
    from_alternatives(img, site, &values, &what, site.block_start, caller)
}

/// A verdict in a reason's words.
pub fn in_words(v: Verdict) -> &'static str {
    match v {
        Verdict::Clean => "clean",
        Verdict::Violation => "a violation",
        Verdict::Unknown => "not known",
    }
}

/// Judges each of several values the checked argument may have (a
/// constant, known bits, the driver's globals): one verdict when all agree
/// (clean on Windows 8 and later when one of them is the driver runtime's
/// NX default), unknown with each named when they do not. `what` starts
/// the reason; `at` is what it is about.
fn from_alternatives(
    img: &mut Image<'_>,
    site: &RawSite,
    values: &[Val],
    what: &str,
    at: u32,
    caller: u64,
) -> Option<Outcome> {
    let hook = site.hook;
    let (checked, _, _) = checked_argument(&hook.rule)?;
    let width = mask_of(checked.width);
    if values.len() < 2 {
        return None;
    }
    let mut parts = Vec::new();
    let mut verdicts = Vec::new();
    let mut violation = None;
    let mut from_windows_8 = false;
    for &v in values {
        let (part, verdict, vio) = if let Some(x) = v.known.value(width) {
            let (verdict, vio) = judge_value(hook, &site.args, x, caller);
            (hex_named(hook, x), verdict, vio)
        } else if let Sym::Globals { .. } = v.sym {
            let o = from_globals(img, site, v, width, caller);
            from_windows_8 |= o.windows_8;
            let part = format!(
                "{}{}",
                globals_named(v.sym),
                if o.windows_8 {
                    " (the driver runtime's NX default)"
                } else {
                    ""
                }
            );
            (part, o.verdict.unwrap_or(Verdict::Unknown), o.violation)
        } else {
            let mut known: Vec<Known> = site.args.iter().map(|a| a.known).collect();
            if let Some(k) = known.get_mut(usize::from(checked.index)) {
                *k = v.known;
            }
            let (_, verdict, vio) = judge(hook, &known, caller);
            let part = if verdict == Verdict::Unknown {
                "a value not known".to_string()
            } else {
                format!(
                    "{:#x} under the mask {:#x}",
                    v.known.bits & width,
                    v.known.mask & width
                )
            };
            (part, verdict, vio)
        };
        parts.push(part);
        violation = violation.or(vio);
        verdicts.push(verdict);
    }
    // Nothing decided on any way: the caller says why in its own words.
    if verdicts.iter().all(|&v| v == Verdict::Unknown) {
        return None;
    }
    let first = verdicts[0];
    // Each value named once, in order.
    let mut each: Vec<String> = Vec::new();
    let all_agree = first != Verdict::Unknown && verdicts.iter().all(|&v| v == first);
    for (part, v) in parts.iter().zip(&verdicts) {
        let text = if all_agree {
            part.clone()
        } else {
            format!("{part} ({})", in_words(*v))
        };
        if !each.contains(&text) {
            each.push(text);
        }
    }
    let windows_8 = all_agree && first == Verdict::Clean && from_windows_8;
    let (verdict, reason) = if all_agree {
        let prefix = if windows_8 {
            format!("{WINDOWS_8}: ")
        } else {
            String::new()
        };
        (
            first,
            format!(
                "{prefix}{what} {}: {} either way",
                each.join(" and "),
                in_words(first)
            ),
        )
    } else {
        (
            Verdict::Unknown,
            format!("{what} {}: not one answer", each.join(" and ")),
        )
    };
    Some(Outcome {
        value: None,
        verdict: Some(verdict),
        violation: if verdict == Verdict::Violation {
            violation
        } else {
            None
        },
        reason,
        reason_rva: Some(at),
        callers: Vec::new(),
        windows_8,
    })
}

/// The values a term over globals can take, each with the value of every
/// global that gives it, and the facts of the globals.
pub type GlobalValues = (Vec<(u64, Vec<u64>)>, Vec<Facts>);

/// Every value of `val` over the values its globals can hold, with the
/// facts of each global; `None` (and the reason) when one is unknowable
/// or there are too many.
pub fn global_values(img: &mut Image<'_>, val: Val) -> Result<GlobalValues, (String, u32)> {
    let Sym::Globals { size, .. } = val.sym else {
        return Err(("it is not read from globals".into(), 0));
    };
    let mut all = Vec::new();
    for &g in val.sym.globals() {
        let f = globals::facts(img, g, usize::from(size));
        if let Some((at, why)) = &f.blocker {
            return Err((
                format!("it is read from the global at {g:#x}, whose value cannot be told: {why}"),
                *at,
            ));
        }
        all.push(f);
    }
    // Every combination: one value per global.
    let mut combos: Vec<Vec<u64>> = vec![Vec::new()];
    for f in &all {
        let mut next = Vec::new();
        for c in &combos {
            for v in f.values() {
                let mut c = c.clone();
                c.push(v);
                next.push(c);
            }
        }
        combos = next;
        if combos.len() > MAX_COMBINATIONS {
            return Err((
                "it is read from globals that can hold too many values".into(),
                all.first().map_or(0, |f| f.rva),
            ));
        }
    }
    let m = width_mask(usize::from(size));
    let out = combos
        .into_iter()
        .map(|c| {
            let term = c.iter().fold(0u64, |a, v| a | (v & m));
            (val.known.over(term), c)
        })
        .collect();
    Ok((out, all))
}

/// What a global holds, in words: its image value, and each store.
fn describe(f: &Facts) -> String {
    let mut s = format!(
        "the global at {:#x} holds {:#x} from the image",
        f.rva, f.initial
    );
    if f.stores.is_empty() {
        s.push_str(" and is never written");
    }
    for st in &f.stores {
        s.push_str(&format!(", is set to {:#x} at {:#x}", st.value, st.at));
        if let Some(v) = &st.version {
            s.push_str(&format!(
                " after {} (call at {:#x}) and the version test `{}` at {:#x}",
                v.api, v.call, v.text, v.test
            ));
        }
    }
    s
}

/// The outcome for a value read from the driver's globals: one verdict for
/// every value they hold, or clean on Windows 8 and later for the driver
/// runtime's NX opt-in, or unknown.
pub fn from_globals(
    img: &mut Image<'_>,
    site: &RawSite,
    val: Val,
    width: u64,
    caller: u64,
) -> Outcome {
    let hook = site.hook;
    let (values, facts) = match global_values(img, val) {
        Ok(v) => v,
        Err((reason, at)) => return Outcome::unknown(reason, at),
    };
    let judged: Vec<(u64, Vec<u64>, Verdict, Option<Violation>)> = values
        .into_iter()
        .map(|(v, combo)| {
            let (verdict, violation) = judge_value(hook, &site.args, v & width, caller);
            (v & width, combo, verdict, violation)
        })
        .collect();
    let globals_text: Vec<String> = facts.iter().map(describe).collect();
    let evidence = globals_text.join("; ");
    let first_store = facts
        .iter()
        .flat_map(|f| f.stores.iter().map(|s| s.at))
        .next();
    let reason_rva = first_store.or(facts.first().map(|f| f.rva));
    let same = judged.iter().all(|j| j.2 == judged[0].2);
    if same && let Some(j) = judged.first() {
        let value = (judged.len() == 1).then_some(j.0);
        return Outcome {
            value,
            verdict: Some(j.2),
            violation: j.3,
            reason: format!("read from the driver's globals: {evidence}"),
            reason_rva,
            callers: Vec::new(),
            windows_8: false,
        };
    }
    // The driver runtime's NX opt-in: with every global at its version-
    // tested value, the call is clean.
    let opted_in = facts.iter().all(|f| f.set_for_windows_8());
    let nx_values: Vec<&(u64, Vec<u64>, Verdict, Option<Violation>)> = judged
        .iter()
        .filter(|(_, combo, _, _)| {
            combo
                .iter()
                .zip(&facts)
                .all(|(v, f)| f.stores.iter().any(|s| s.value == *v) && *v != f.initial)
        })
        .collect();
    if opted_in && !nx_values.is_empty() && nx_values.iter().all(|j| j.2 == Verdict::Clean) {
        let v = nx_values[0].0;
        let before: Vec<String> = judged
            .iter()
            .filter(|j| j.2 != Verdict::Clean)
            .map(|j| hex_named(hook, j.0))
            .collect();
        return Outcome {
            value: None,
            verdict: Some(Verdict::Clean),
            violation: None,
            reason: format!(
                "{WINDOWS_8}: {} there (the driver runtime's NX opt-in); \
                 before Windows 8 it is {}: {evidence}",
                hex_named(hook, v),
                before.join(" or ")
            ),
            reason_rva,
            callers: Vec::new(),
            windows_8: true,
        };
    }
    let all: Vec<String> = judged.iter().map(|j| hex_named(hook, j.0)).collect();
    Outcome {
        verdict: Some(Verdict::Unknown),
        reason: format!(
            "it is {} depending on which store ran before the call: {evidence}",
            all.join(" or ")
        ),
        reason_rva,
        ..Outcome::default()
    }
}
