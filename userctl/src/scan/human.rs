//! The report for a person: one block per file with findings or errors, and
//! a closing summary line.

use super::Tally;
use super::analyze::FileReport;
use super::discover::PathError;
use std::io::{self, Write};

/// Writes the paths that could not be walked.
pub fn write_path_errors(out: &mut dyn Write, errors: &[PathError]) -> io::Result<()> {
    for e in errors {
        writeln!(out, "{}: error: {}", e.path, e.error)?;
    }
    Ok(())
}

/// Writes one block per file report.
pub fn write_reports(out: &mut dyn Write, reports: &[FileReport]) -> io::Result<()> {
    for r in reports {
        if let Some(error) = &r.error {
            writeln!(out, "{}: error: {error}", r.path)?;
            continue;
        }
        let verdict = if r.has_findings() { "" } else { "  clean" };
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
    }
    Ok(())
}

/// Writes the closing summary line.
pub fn write_summary(out: &mut dyn Write, tally: &Tally) -> io::Result<()> {
    writeln!(
        out,
        "{} file(s) scanned: {} with findings, {} error(s)",
        tally.files, tally.with_findings, tally.errors
    )
}
