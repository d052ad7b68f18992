//! `civctl scan`: finds the files, scans them in parallel, prints a report.
//!
//! Exit status: 0 when every file is clean, 1 when any has findings, 2 when
//! a path could not be read or a file is not a readable PE image (the other
//! files are still scanned and reported).

pub mod analyze;
pub mod discover;
pub mod human;
pub mod json;
pub mod sarif;

use analyze::FileReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

/// Output formats of `civctl scan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for a person.
    Human,
    /// JSON, schema `civ-scan/1` (docs/scan-json.md).
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// Files larger than this are not PE images a driver developer scans.
pub const MAX_FILE_SIZE: u64 = 1 << 30;

/// Show a progress bar from this many files on.
const PROGRESS_MIN_FILES: usize = 32;

/// Reads and scans one file; a read failure becomes the report's error.
pub fn scan_file(path: &Path) -> FileReport {
    let shown = path.display().to_string();
    match read_limited(path) {
        Ok(data) => analyze::analyze(shown, &data),
        Err(e) => FileReport {
            path: shown,
            sha256: String::new(),
            machine: None,
            format: None,
            section_alignment: None,
            iat_section: None,
            findings: Vec::new(),
            hooked_imports: Vec::new(),
            dynamic_lookup: false,
            error: Some(e),
        },
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    if len > MAX_FILE_SIZE {
        return Err(format!(
            "{len} bytes is too large for a driver image (limit {MAX_FILE_SIZE})"
        ));
    }
    let mut data = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(data)
}

/// Scans files in parallel; the reports come back in the input's order.
pub fn scan_files(files: &[std::path::PathBuf], progress: &ProgressBar) -> Vec<FileReport> {
    files
        .par_iter()
        .map(|p| {
            let r = scan_file(p);
            progress.inc(1);
            r
        })
        .collect()
}

/// The whole command: discover, scan, print; returns the exit status.
pub fn run(paths: &[std::path::PathBuf], all_pe: bool, format: Format, out: &mut dyn Write) -> u8 {
    let found = discover::discover(paths, all_pe);
    let progress = if std::io::stderr().is_terminal() && found.files.len() >= PROGRESS_MIN_FILES {
        let bar = ProgressBar::with_draw_target(
            Some(found.files.len() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let reports = scan_files(&found.files, &progress);
    progress.finish_and_clear();
    let written = match format {
        Format::Human => human::write(out, &reports, &found.errors),
        Format::Json => json::write(out, &reports, &found.errors),
        Format::Sarif => sarif::write(out, &reports, &found.errors),
    };
    if let Err(e) = written {
        eprintln!("civctl: cannot write the report: {e}");
        return 2;
    }
    status(&reports, &found.errors)
}

/// 2 if anything could not be scanned, else 1 if anything has findings, else 0.
pub fn status(reports: &[FileReport], errors: &[discover::PathError]) -> u8 {
    if !errors.is_empty() || reports.iter().any(|r| r.error.is_some()) {
        2
    } else if reports.iter().any(FileReport::has_findings) {
        1
    } else {
        0
    }
}
