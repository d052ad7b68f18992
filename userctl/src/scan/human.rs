//! The report for a person: one block per file with findings or errors, and
//! a closing summary line.

use super::Tally;
use super::analyze::{FileReport, SourceLocation};
use super::discover::PathError;
use crate::predict::{PredictedSite, Verdict};
use std::io::{self, Write};

/// Writes the paths that could not be walked.
pub fn write_path_errors(out: &mut dyn Write, errors: &[PathError]) -> io::Result<()> {
    for e in errors {
        writeln!(out, "{}: error: {}", e.path, e.error)?;
    }
    Ok(())
}

/// Writes one block per file report (predicted call sites: violations and
/// unknowns only).
pub fn write_reports(out: &mut dyn Write, reports: &[FileReport]) -> io::Result<()> {
    write_reports_with(out, reports, false)
}

/// `  at function (file:line)`, or nothing without symbols.
fn located(loc: &SourceLocation) -> String {
    let place = loc.describe();
    if place.is_empty() {
        place
    } else {
        format!("  at {place}")
    }
}

/// One line per predicted site: code, verdict, RVA, API, the checked
/// argument's value (or why it is unknown), source location.
fn write_site(out: &mut dyn Write, s: &PredictedSite) -> io::Result<()> {
    let verdict = match s.verdict {
        Verdict::Violation => "predicted violation",
        Verdict::Clean => "predicted clean",
        Verdict::Unknown => "predicted unknown",
    };
    let value = match (s.value, &s.value_name, &s.reason) {
        (Some(v), Some(name), _) => format!("{} {v:#x} ({name})", s.argument),
        (Some(v), None, _) => format!("{} {v:#x}", s.argument),
        (None, _, Some(why)) if s.verdict == Verdict::Unknown => {
            format!("{} unknown: {why}", s.argument)
        }
        (None, _, Some(why)) => format!("{} not one constant: {why}", s.argument),
        (None, _, None) => format!("{} unknown", s.argument),
    };
    let via = match s.via {
        crate::predict::Via::Iat => "iat",
        crate::predict::Via::Thunk => "thunk",
        crate::predict::Via::Register => "register",
        crate::predict::Via::TailJump => "tailjump",
    };
    writeln!(
        out,
        "  {:<6} {:<26} {:<8} rva {:#010x}  {}({value}){}",
        s.code,
        verdict,
        via,
        s.rva,
        s.api,
        located(&s.location)
    )
}

/// Writes one block per file report; `all_sites` shows the predicted call
/// sites that are clean too.
pub fn write_reports_with(
    out: &mut dyn Write,
    reports: &[FileReport],
    all_sites: bool,
) -> io::Result<()> {
    for r in reports {
        if let Some(error) = &r.error {
            writeln!(out, "{}: error: {error}", r.path)?;
            continue;
        }
        let unknown = r.predicted_count(Verdict::Unknown);
        let verdict = if r.has_findings() {
            String::new()
        } else if unknown > 0 {
            format!("  no findings; {unknown} call site(s) with an argument not known statically")
        } else {
            "  clean".to_string()
        };
        writeln!(
            out,
            "{} ({}, {}){verdict}",
            r.path,
            r.machine.as_deref().unwrap_or("?"),
            r.format.unwrap_or("?")
        )?;
        for f in &r.findings {
            writeln!(
                out,
                "  {:<6} {:<26} {:<8} rva {:#010x}  {}",
                f.code,
                f.counter,
                f.section.as_deref().unwrap_or("-"),
                f.rva,
                f.message
            )?;
            if f.location.function.is_some() {
                writeln!(out, "        {}", located(&f.location).trim_start())?;
            }
        }
        if let Some(sites) = &r.predicted {
            for s in sites
                .iter()
                .filter(|s| all_sites || s.verdict != Verdict::Clean)
            {
                write_site(out, s)?;
            }
            let clean = r.predicted_count(Verdict::Clean);
            if !all_sites && clean > 0 {
                writeln!(
                    out,
                    "  {clean} predicted call site(s) clean (shown with --all-sites)"
                )?;
            }
        } else if !r.hooked_imports.is_empty() {
            writeln!(
                out,
                "  call sites not predicted: only x64, x86 and ARM64 code is decoded"
            )?;
        }
        if let Some(pdb) = &r.pdb {
            writeln!(out, "  symbols: {pdb}")?;
        }
        if let Some(e) = &r.pdb_error {
            writeln!(out, "  symbols: {e}")?;
        }
        if !r.hooked_imports.is_empty() {
            writeln!(
                out,
                "  checked at run time: {}",
                r.hooked_imports.join(", ")
            )?;
        }
        if r.dynamic_lookup {
            writeln!(
                out,
                "  resolves routines with MmGetSystemRoutineAddress: civ answers lookups of checked APIs"
            )?;
        }
        if r.import_call_optimization {
            writeln!(
                out,
                "  import call optimization: the kernel may bind its calls of imports directly, past the IAT, \
                 so civ.sys does not see them; verify a build without /guard:retpoline or import call optimization"
            )?;
        }
    }
    Ok(())
}

/// Writes the closing summary line.
pub fn write_summary(out: &mut dyn Write, tally: &Tally) -> io::Result<()> {
    write!(
        out,
        "{} file(s) scanned: {} with findings, {} error(s)",
        tally.files, tally.with_findings, tally.errors
    )?;
    if tally.predicted_violations + tally.unknown_sites > 0 {
        write!(
            out,
            "; call sites: {} predicted violation(s), {} unknown",
            tally.predicted_violations, tally.unknown_sites
        )?;
    }
    writeln!(out)
}
