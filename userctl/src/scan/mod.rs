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

/// Files scanned between two writes of the report: enough to keep both
/// cores busy, few enough that memory stays flat in the number of files.
const CHUNK: usize = 256;

/// Counts for the summary and the exit status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Files scanned (including those that failed).
    pub files: usize,
    /// Files with findings.
    pub with_findings: usize,
    /// Paths and files that could not be scanned.
    pub errors: usize,
}

impl Tally {
    fn add(&mut self, reports: &[FileReport]) {
        self.files += reports.len();
        self.with_findings += reports.iter().filter(|r| r.has_findings()).count();
        self.errors += reports.iter().filter(|r| r.error.is_some()).count();
    }

    /// 2 if anything could not be scanned, else 1 if anything has findings,
    /// else 0.
    pub fn status(&self) -> u8 {
        if self.errors > 0 {
            2
        } else if self.with_findings > 0 {
            1
        } else {
            0
        }
    }
}

fn progress_bar(files: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() || files < PROGRESS_MIN_FILES {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(files as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}") {
        bar.set_style(style);
    }
    bar
}

/// The whole command: discover, scan, print; returns the exit status.
pub fn run(paths: &[std::path::PathBuf], all_pe: bool, format: Format, out: &mut dyn Write) -> u8 {
    let found = discover::discover(paths, all_pe);
    let progress = progress_bar(found.files.len());
    let mut out = std::io::BufWriter::new(out);
    let result =
        write_report(&found, format, &progress, &mut out).and_then(|t| out.flush().map(|()| t));
    progress.finish_and_clear();
    match result {
        Ok(tally) => tally.status(),
        Err(e) => {
            eprintln!("civctl: cannot write the report: {e}");
            2
        }
    }
}

fn write_report(
    found: &discover::Found,
    format: Format,
    progress: &ProgressBar,
    out: &mut dyn Write,
) -> std::io::Result<Tally> {
    let mut tally = Tally {
        errors: found.errors.len(),
        ..Tally::default()
    };
    match format {
        Format::Human => {
            human::write_path_errors(out, &found.errors)?;
            for chunk in found.files.chunks(CHUNK) {
                let reports = scan_files(chunk, progress);
                tally.add(&reports);
                human::write_reports(out, &reports)?;
            }
            human::write_summary(out, &tally)?;
        }
        Format::Json => {
            let mut w = json::Writer::begin(out)?;
            for chunk in found.files.chunks(CHUNK) {
                let reports = scan_files(chunk, progress);
                tally.add(&reports);
                w.files(&reports)?;
            }
            w.finish(&found.errors, &tally)?;
        }
        Format::Sarif => {
            // SARIF keeps results and artifacts in separate arrays, so the
            // whole run is gathered first.
            let reports = scan_files(&found.files, progress);
            tally.add(&reports);
            sarif::write(out, &reports, &found.errors)?;
        }
    }
    Ok(tally)
}
