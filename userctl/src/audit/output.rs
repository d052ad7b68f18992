//! The audit's three forms: a table and the problem drivers' details for a
//! person, JSON (schema `civ-audit/1`, docs/audit.md), and CSV with one row
//! per driver for fleets.

use super::Report;
use super::verdict::{DriverReport, Verdict};
use std::io::{self, Write};

/// The JSON schema's name.
pub const SCHEMA: &str = "civ-audit/1";

/// The CSV columns.
pub const CSV_COLUMNS: [&str; 18] = [
    "name",
    "path",
    "verdict",
    "sources",
    "services",
    "start",
    "boot_critical",
    "loaded",
    "published_inf",
    "package",
    "vendor",
    "version",
    "sha256",
    "authenticode_sha256",
    "blocklist",
    "loldrivers",
    "remove",
    "reasons",
];

fn join<T, F: Fn(&T) -> String>(items: &[T], f: F) -> String {
    items.iter().map(f).collect::<Vec<_>>().join("; ")
}

/// One CSV row of a driver.
fn csv_row(d: &DriverReport) -> Vec<String> {
    let id = d.identity.as_ref();
    vec![
        d.name.clone(),
        d.path.clone(),
        d.verdict.name().to_string(),
        d.sources.join(" "),
        join(&d.services, |s| s.name.clone()),
        d.start.to_string(),
        d.boot_critical.clone().unwrap_or_default(),
        d.loaded.map(|l| l.to_string()).unwrap_or_default(),
        d.package
            .as_ref()
            .and_then(|p| p.published.clone())
            .unwrap_or_default(),
        d.package
            .as_ref()
            .map(|p| p.folder.clone())
            .unwrap_or_default(),
        d.vendor.clone().unwrap_or_default(),
        d.version.clone().unwrap_or_default(),
        id.map(|i| i.sha256.clone()).unwrap_or_default(),
        id.and_then(|i| i.authenticode.as_ref())
            .map(|a| a.sha256.clone())
            .unwrap_or_default(),
        join(&d.blocklist, |m| m.rule.clone()),
        join(&d.loldrivers, |m| m.id.clone()),
        d.action
            .as_ref()
            .and_then(|a| a.remove.clone())
            .unwrap_or_default(),
        d.reasons.join("; "),
    ]
}

/// CSV: a header, then one row per driver.
pub fn write_csv(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let map = |e: csv::Error| io::Error::other(e.to_string());
    w.write_record(CSV_COLUMNS).map_err(map)?;
    for d in &report.drivers {
        w.write_record(csv_row(d)).map_err(map)?;
    }
    w.flush()
}

/// JSON.
pub fn write_json(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(|e| io::Error::other(e.to_string()))?;
    writeln!(out)
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

/// The table, the details of each problem driver, the notes and a summary.
pub fn write_human(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    writeln!(out, "civctl audit of {}", report.source)?;
    writeln!(
        out,
        "{:<24} {:<20} {:<8} {:<13} WHY",
        "DRIVER", "SERVICE", "START", "VERDICT"
    )?;
    for d in &report.drivers {
        let service = d
            .services
            .first()
            .map(|s| s.name.as_str())
            .or(d.package.as_ref().map(|p| p.inf.as_str()))
            .unwrap_or("-");
        let why = d.reasons.first().map(String::as_str).unwrap_or("");
        writeln!(
            out,
            "{:<24} {:<20} {:<8} {:<13} {}",
            cut(&d.name, 24),
            cut(service, 20),
            d.start,
            d.verdict.name(),
            cut(why, 70)
        )?;
    }
    for d in report.drivers.iter().filter(|d| d.verdict.is_finding()) {
        writeln!(out, "\n{} ({}): {}", d.name, d.verdict.name(), d.path)?;
        writeln!(
            out,
            "  vendor {}, version {}",
            d.vendor.as_deref().unwrap_or("unknown"),
            d.version.as_deref().unwrap_or("unknown")
        )?;
        if let Some(p) = &d.package {
            writeln!(
                out,
                "  package {}{}",
                p.folder,
                p.published
                    .as_ref()
                    .map(|n| format!(" (published as {n})"))
                    .unwrap_or_default()
            )?;
        }
        for r in &d.reasons {
            writeln!(out, "  - {r}")?;
        }
        if let Some(a) = &d.action {
            if let Some(cmd) = &a.remove {
                writeln!(out, "  remove: {cmd}")?;
            }
            writeln!(out, "  {}", a.advice)?;
        }
        if let Some(b) = &d.boot_critical {
            writeln!(
                out,
                "  BOOT: {b}: removing it may leave the machine unbootable"
            )?;
        }
    }
    for d in report
        .drivers
        .iter()
        .filter(|d| d.verdict == Verdict::Error)
    {
        writeln!(
            out,
            "\n{}: could not be audited: {}",
            d.path,
            d.error.as_deref().unwrap_or("?")
        )?;
    }
    if !report.disallowed_images.is_empty() {
        writeln!(
            out,
            "\nHvciDisallowedImages: {}",
            report.disallowed_images.join(", ")
        )?;
    }
    for n in &report.notes {
        writeln!(out, "note: {n}")?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "\n{} driver(s): {} blocked, {} incompatible, {} to review, {} missing, {} error(s); memory integrity: {}",
        s.drivers,
        s.blocked,
        s.incompatible,
        s.review,
        s.missing,
        s.errors,
        if s.blocked + s.incompatible == 0 {
            "no driver found that keeps it off"
        } else {
            "remove or update the drivers above"
        }
    )
}
