//! The JSON report, schema `civ-scan/1` (docs/scan-json.md). Fields are
//! only ever added within a schema version.

use super::analyze::FileReport;
use super::discover::PathError;
use serde::Serialize;
use std::io::{self, Write};

/// The schema identifier written at the top of every report.
pub const SCHEMA: &str = "civ-scan/1";

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    with_findings: usize,
    errors: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    tool: Tool,
    files: &'a [FileReport],
    errors: &'a [PathError],
    summary: Summary,
}

/// Writes the JSON report, pretty-printed, with a final newline.
pub fn write(out: &mut dyn Write, reports: &[FileReport], errors: &[PathError]) -> io::Result<()> {
    let report = Report {
        schema: SCHEMA,
        tool: Tool {
            name: "civctl",
            version: env!("CARGO_PKG_VERSION"),
        },
        files: reports,
        errors,
        summary: Summary {
            files: reports.len(),
            with_findings: reports.iter().filter(|r| r.has_findings()).count(),
            errors: errors.len() + reports.iter().filter(|r| r.error.is_some()).count(),
        },
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)
}
