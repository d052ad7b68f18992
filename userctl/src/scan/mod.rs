//! `civctl scan`: finds the files, scans them in parallel, prints a report.
//!
//! Exit status: 0 when every file is clean, 1 when any has findings (image
//! findings or predicted violations at call sites; call sites whose
//! argument is unknown do not count), 2 when a path could not be read or a
//! file is not a readable PE image (the other files are still scanned and
//! reported).

pub mod analyze;
pub mod discover;
pub mod human;
pub mod json;
pub mod sarif;

use crate::predict::Verdict;
use crate::symbols::{self, Symbols};
use analyze::FileReport;
use civ_engine::path::file_name_str;
use civ_engine::pe::{Layout, PeImage};
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

/// What `civctl scan` does besides finding and checking files.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// In folders, take every PE image, not only .sys files.
    pub all_pe: bool,
    /// PDBs given with `--pdb`, each used for the images it matches.
    pub pdbs: Vec<Symbols>,
    /// Show every predicted call site in the human report, not only
    /// violations and unknowns.
    pub all_sites: bool,
}

/// Reads and scans one file; a read failure becomes the report's error.
pub fn scan_file(path: &Path) -> FileReport {
    scan_file_with(path, &Options::default())
}

/// Places the report's addresses in the source, with the PDB given for
/// the image or found beside it.
fn symbolize(report: &mut FileReport, path: &Path, data: &[u8], options: &Options) {
    let Ok(pe) = PeImage::parse(data, Layout::File) else {
        return;
    };
    let found = match symbols::find_for_image(path, &pe, &options.pdbs) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            report.pdb_error = Some(e);
            return;
        }
    };
    report.pdb = Some(found.path.display().to_string());
    for site in report.predicted.iter_mut().flatten() {
        site.location = found.lookup(site.rva);
        // The address in an unknown site's reason gets its line too.
        if let (Some(rva), Some(reason)) = (site.reason_rva, site.reason.as_mut())
            && let (Some(file), Some(line)) = (found.lookup(rva).file, found.lookup(rva).line)
        {
            let name = file_name_str(&file);
            reason.push_str(&format!(" ({name}:{line})"));
        }
    }
    // Only a relocation can be inside a function; the other findings are
    // about sections and the IAT.
    for f in report.findings.iter_mut().filter(|f| f.code == "relocs") {
        let loc = found.lookup(f.rva);
        if loc.function.is_some() {
            f.location = loc;
        }
    }
}

/// Reads and scans one file with the options' symbols.
pub fn scan_file_with(path: &Path, options: &Options) -> FileReport {
    let shown = path.display().to_string();
    match read_limited(path) {
        Ok(data) => {
            let mut report = analyze::analyze(shown, &data);
            if report.error.is_none() {
                symbolize(&mut report, path, &data, options);
            }
            report
        }
        Err(e) => FileReport {
            error: Some(e),
            ..FileReport::empty(shown)
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
    scan_files_with(files, progress, &Options::default())
}

/// [`scan_files`] with options.
pub fn scan_files_with(
    files: &[std::path::PathBuf],
    progress: &ProgressBar,
    options: &Options,
) -> Vec<FileReport> {
    files
        .par_iter()
        .map(|p| {
            let r = scan_file_with(p, options);
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
    /// Predicted call sites whose constant argument DV would object to.
    pub predicted_violations: usize,
    /// Predicted call sites whose checked argument is not a constant.
    pub unknown_sites: usize,
}

impl Tally {
    fn add(&mut self, reports: &[FileReport]) {
        self.files += reports.len();
        self.with_findings += reports.iter().filter(|r| r.has_findings()).count();
        self.errors += reports.iter().filter(|r| r.error.is_some()).count();
        for r in reports {
            self.predicted_violations += r.predicted_count(Verdict::Violation);
            self.unknown_sites += r.predicted_count(Verdict::Unknown);
        }
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
    let options = Options {
        all_pe,
        ..Options::default()
    };
    run_with(paths, format, &options, out)
}

/// [`run`] with options.
pub fn run_with(
    paths: &[std::path::PathBuf],
    format: Format,
    options: &Options,
    out: &mut dyn Write,
) -> u8 {
    let found = discover::discover(paths, options.all_pe);
    let progress = progress_bar(found.files.len());
    let mut out = std::io::BufWriter::new(out);
    let result = write_report(&found, format, options, &progress, &mut out)
        .and_then(|t| out.flush().map(|()| t));
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
    options: &Options,
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
                let reports = scan_files_with(chunk, progress, options);
                tally.add(&reports);
                human::write_reports_with(out, &reports, options.all_sites)?;
            }
            human::write_summary(out, &tally)?;
        }
        Format::Json => {
            let mut w = json::Writer::begin(out)?;
            for chunk in found.files.chunks(CHUNK) {
                let reports = scan_files_with(chunk, progress, options);
                tally.add(&reports);
                w.files(&reports)?;
            }
            w.finish(&found.errors, &tally)?;
        }
        Format::Sarif => {
            // SARIF keeps results and artifacts in separate arrays, so the
            // whole run is gathered first.
            let reports = scan_files_with(&found.files, progress, options);
            tally.add(&reports);
            sarif::write(out, &reports, &found.errors)?;
        }
    }
    Ok(tally)
}
