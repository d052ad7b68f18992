//! The report for a person: one block per file with findings or errors, and
//! a closing summary line.

use super::analyze::FileReport;
use super::discover::PathError;
use std::io::{self, Write};

/// Writes the human report.
pub fn write(out: &mut dyn Write, reports: &[FileReport], errors: &[PathError]) -> io::Result<()> {
    for e in errors {
        writeln!(out, "{}: error: {}", e.path, e.error)?;
    }
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
    let with_findings = reports.iter().filter(|r| r.has_findings()).count();
    let failed = errors.len() + reports.iter().filter(|r| r.error.is_some()).count();
    writeln!(
        out,
        "{} file(s) scanned: {with_findings} with findings, {failed} error(s)",
        reports.len()
    )
}
