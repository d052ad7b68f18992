//! The JSON report, schema `civ-scan/1` (docs/scan-json.md). Fields are
//! only ever added within a schema version.

use super::Tally;
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

/// Writes the report as it comes: the header, then file reports chunk by
/// chunk, then the errors and the summary. Memory stays flat in the number
/// of files.
pub struct Writer<'w> {
    out: &'w mut dyn Write,
    first: bool,
}

impl<'w> Writer<'w> {
    /// Writes everything up to the `files` array's first element.
    pub fn begin(out: &'w mut dyn Write) -> io::Result<Self> {
        let tool = Tool {
            name: "civctl",
            version: env!("CARGO_PKG_VERSION"),
        };
        write!(out, "{{\n  \"schema\": \"{SCHEMA}\",\n  \"tool\": ")?;
        serde_json::to_writer(&mut *out, &tool)?;
        write!(out, ",\n  \"files\": [")?;
        Ok(Writer { out, first: true })
    }

    /// Appends file reports.
    pub fn files(&mut self, reports: &[FileReport]) -> io::Result<()> {
        for r in reports {
            write!(self.out, "{}\n    ", if self.first { "" } else { "," })?;
            serde_json::to_writer(&mut *self.out, r)?;
            self.first = false;
        }
        Ok(())
    }

    /// Closes the `files` array and writes the errors and the summary.
    pub fn finish(self, errors: &[PathError], tally: &Tally) -> io::Result<()> {
        write!(self.out, "\n  ],\n  \"errors\": ")?;
        serde_json::to_writer(&mut *self.out, errors)?;
        write!(self.out, ",\n  \"summary\": ")?;
        serde_json::to_writer(&mut *self.out, tally)?;
        writeln!(self.out, "\n}}")
    }
}
