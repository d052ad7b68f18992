//! `civctl audit`: why memory integrity (HVCI) will not turn on, and what to
//! remove. For each kernel driver the machine has (services of driver
//! type, Driver Store packages, and on a live system the modules loaded
//! now): DV's image checks and the predicted run-time violations, whether
//! Microsoft's driver block rules (`--blocklist`), LOLDrivers
//! (`--loldrivers`) or the CI key's HvciDisallowedImages name it, whether
//! it starts at boot, and the command that removes it.
//!
//! On Windows with no `--root`, the live registry and `%SystemRoot%`;
//! with `--root DIR` (any system), a mounted Windows volume: the SYSTEM
//! hive read with `notatin`, the Driver Store and INF folder from the files.
//!
//! Exit status: 0 nothing found, 1 findings, 2 the audit could not be done
//! (no Windows folder, an unreadable hive or list) or a driver file could
//! not be read.

pub mod blocklist;
pub mod hive;
pub mod identity;
pub mod inf;
pub mod inventory;
pub mod layout;
#[cfg(windows)]
pub mod live;
pub mod loldrivers;
pub mod output;
pub mod registry;
pub mod store;
pub mod verdict;

use blocklist::{Blocklist, BlocklistSummary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inventory::Inventory;
use layout::Layout;
use loldrivers::LolDrivers;
use rayon::prelude::*;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use verdict::{DriverReport, Lists, Verdict};

/// Output formats of `civctl audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table and the problem drivers' details.
    Human,
    /// JSON, schema `civ-audit/1` (docs/audit.md).
    Json,
    /// CSV, one row per driver.
    Csv,
}

/// What to audit and against what.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A mounted Windows volume's root; `None`: this machine (Windows only).
    pub root: Option<PathBuf>,
    /// Microsoft's recommended driver block rules (SiPolicy XML).
    pub blocklist: Option<PathBuf>,
    /// LOLDrivers' drivers.csv or drivers.json.
    pub loldrivers: Option<PathBuf>,
}

/// Nothing found.
pub const CLEAN: u8 = 0;
/// Findings.
pub const FINDINGS: u8 = 1;
/// Could not audit.
pub const FAILED: u8 = 2;

/// Show a progress bar from this many files on.
const PROGRESS_MIN_FILES: usize = 16;

/// The counts of the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Drivers audited.
    pub drivers: usize,
    /// Verdict `blocked`.
    pub blocked: usize,
    /// Verdict `incompatible`.
    pub incompatible: usize,
    /// Verdict `review`.
    pub review: usize,
    /// Verdict `missing`.
    pub missing: usize,
    /// Verdict `error`.
    pub errors: usize,
    /// Drivers with findings that start at boot.
    pub boot_critical_findings: usize,
}

impl Summary {
    fn of(drivers: &[DriverReport]) -> Summary {
        let n = |v: Verdict| drivers.iter().filter(|d| d.verdict == v).count();
        Summary {
            drivers: drivers.len(),
            blocked: n(Verdict::Blocked),
            incompatible: n(Verdict::Incompatible),
            review: n(Verdict::Review),
            missing: n(Verdict::Missing),
            errors: n(Verdict::Error),
            boot_critical_findings: drivers
                .iter()
                .filter(|d| d.verdict.is_finding() && d.boot_critical.is_some())
                .count(),
        }
    }

    /// The exit status.
    pub fn status(&self) -> u8 {
        if self.errors > 0 {
            FAILED
        } else if self.blocked + self.incompatible + self.review > 0 {
            FINDINGS
        } else {
            CLEAN
        }
    }
}

/// A list the audit matched against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListInfo {
    /// The file.
    pub file: String,
    /// What it holds.
    pub entries: String,
}

/// The whole audit.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `civ-audit/1`.
    pub schema: &'static str,
    /// What was audited: the live system, or the hive of a root.
    pub source: String,
    /// The Windows folder.
    pub windows_dir: String,
    /// `--blocklist`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocklist: Option<ListInfo>,
    /// `--loldrivers`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loldrivers: Option<ListInfo>,
    /// HvciDisallowedImages.
    pub disallowed_images: Vec<String>,
    /// Every driver.
    pub drivers: Vec<DriverReport>,
    /// What could not be read besides the drivers.
    pub notes: Vec<String>,
    /// The counts.
    pub summary: Summary,
}

fn read_text(path: &Path, what: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{what} {}: not UTF-8 text", path.display()))
}

/// Reads the lists given; an unreadable or malformed one is an error.
pub fn load_lists(
    options: &Options,
) -> Result<(Lists, Option<ListInfo>, Option<ListInfo>), String> {
    let mut lists = Lists::default();
    let mut b_info = None;
    let mut l_info = None;
    if let Some(p) = &options.blocklist {
        let text = read_text(p, "--blocklist")?;
        let b = Blocklist::parse(text.trim_start_matches('\u{feff}'))
            .map_err(|e| format!("--blocklist {}: {e}", p.display()))?;
        let BlocklistSummary {
            hash_rules,
            file_rules,
            signer_rules,
        } = b.summary();
        b_info = Some(ListInfo {
            file: p.display().to_string(),
            entries: format!(
                "{hash_rules} hash rule(s), {file_rules} file rule(s), {signer_rules} denied signer(s){}",
                b.version
                    .as_ref()
                    .map(|v| format!(", VersionEx {v}"))
                    .unwrap_or_default()
            ),
        });
        lists.blocklist = Some(b);
    }
    if let Some(p) = &options.loldrivers {
        let text = read_text(p, "--loldrivers")?;
        let l =
            LolDrivers::parse(&text).map_err(|e| format!("--loldrivers {}: {e}", p.display()))?;
        l_info = Some(ListInfo {
            file: p.display().to_string(),
            entries: format!(
                "{} entr(ies), {} file hash(es), {} authentihash(es)",
                l.entries.len(),
                l.files.len(),
                l.authentihashes.len()
            ),
        });
        lists.loldrivers = Some(l);
    }
    Ok((lists, b_info, l_info))
}

/// The inventory of a mounted Windows volume.
pub fn offline_inventory(root: &Path) -> Result<Inventory, String> {
    let layout = Layout::offline(root)?;
    let hive = layout.system_hive();
    if !hive.is_file() {
        return Err(format!("no SYSTEM hive at {}", hive.display()));
    }
    let registry = hive::read_system_hive(hive)?;
    Ok(Inventory::gather(layout, registry, None))
}

/// The inventory of this machine.
#[cfg(windows)]
pub fn live_inventory() -> Result<Inventory, String> {
    live::inventory()
}

/// The inventory of this machine: only Windows has one.
#[cfg(not(windows))]
pub fn live_inventory() -> Result<Inventory, String> {
    Err(
        "without --root, audit reads this machine's registry and needs Windows; \
         here give --root DIR, the root of a mounted Windows volume"
            .into(),
    )
}

fn progress_bar(files: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() || files < PROGRESS_MIN_FILES {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(files as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} drivers hashed {elapsed}")
    {
        bar.set_style(style);
    }
    bar
}

/// Audits an inventory against the lists.
pub fn audit(inventory: &Inventory, mut lists: Lists) -> Vec<DriverReport> {
    lists.disallowed = inventory.registry.disallowed.clone();
    let candidates = inventory.candidates();
    let bar = progress_bar(candidates.len());
    let reports = candidates
        .par_iter()
        .map(|c| {
            let r = verdict::audit(c, c.package.and_then(|i| inventory.packages.get(i)), &lists);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    reports
}

/// Builds the report of an inventory.
pub fn report(
    inventory: &Inventory,
    lists: Lists,
    blocklist: Option<ListInfo>,
    loldrivers: Option<ListInfo>,
) -> Report {
    let drivers = audit(inventory, lists);
    Report {
        schema: output::SCHEMA,
        source: inventory.registry.source.clone(),
        windows_dir: inventory.layout.windows.display().to_string(),
        blocklist,
        loldrivers,
        disallowed_images: inventory.registry.disallowed.clone(),
        summary: Summary::of(&drivers),
        drivers,
        notes: inventory.notes.clone(),
    }
}

/// The whole command; returns the exit status.
pub fn run(options: &Options, format: Format, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let fail = |err: &mut dyn Write, e: String| {
        let _ = writeln!(err, "civctl audit: {e}");
        FAILED
    };
    // The lists first: a bad list stops the audit before any work.
    let (lists, b, l) = match load_lists(options) {
        Ok(x) => x,
        Err(e) => return fail(err, e),
    };
    let inventory = match &options.root {
        Some(root) => offline_inventory(root),
        None => live_inventory(),
    };
    let inventory = match inventory {
        Ok(i) => i,
        Err(e) => return fail(err, e),
    };
    let report = report(&inventory, lists, b, l);
    let written = match format {
        Format::Human => output::write_human(out, &report),
        Format::Json => output::write_json(out, &report),
        Format::Csv => output::write_csv(out, &report),
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        return fail(err, format!("cannot write the report: {e}"));
    }
    report.summary.status()
}
