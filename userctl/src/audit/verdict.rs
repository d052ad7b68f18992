//! One driver's audit: what the checks, the lists and the registry say
//! about it, the verdict, and what to do about it.

use super::blocklist::{BlockMatch, Blocklist};
use super::identity::{self, Identity};
use super::inventory::Candidate;
use super::loldrivers::{LolDrivers, LolMatch};
use super::registry::{Service, start_name};
use super::store::Package;
use crate::predict::Verdict as SiteVerdict;
use crate::scan::analyze::{self, FileReport, Finding};
use civ_engine::path::file_name_str;
use serde::Serialize;
use std::io::Read;

/// Load-order groups whose drivers the machine needs to boot.
const BOOT_GROUPS: [&str; 9] = [
    "Boot Bus Extender",
    "System Bus Extender",
    "SCSI miniport",
    "SCSI Class",
    "Primary Disk",
    "Boot File System",
    "FSFilter Infrastructure",
    "Filter",
    "Base",
];

/// Device setup classes of the boot path (storage and volumes).
const BOOT_CLASSES: [&str; 6] = [
    "SCSIAdapter",
    "HDC",
    "DiskDrive",
    "Volume",
    "VolumeSnapshot",
    "FloppyDisk",
];

/// What a driver comes to, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// On a block list (Microsoft's, LOLDrivers) or in HvciDisallowedImages:
    /// Windows refuses it, or should.
    Blocked,
    /// Fails HVCI's image checks (0x2003-0x2005 outside INIT), or a call
    /// site passes an executable request DV would stop.
    Incompatible,
    /// Only what HVCI may let pass: a W+X INIT section (Windows 10+ maps it
    /// read-only) or page-straddling relocations (Windows 10 1507-1607).
    Review,
    /// The file exists but could not be read as a driver image.
    Error,
    /// A service names a file that is not there: nothing loads.
    Missing,
    /// Nothing found.
    Ok,
}

impl Verdict {
    /// The word the reports use.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Incompatible => "incompatible",
            Verdict::Review => "review",
            Verdict::Error => "error",
            Verdict::Missing => "missing",
            Verdict::Ok => "ok",
        }
    }

    /// Counts as a finding (exit status 1).
    pub fn is_finding(self) -> bool {
        matches!(
            self,
            Verdict::Blocked | Verdict::Incompatible | Verdict::Review
        )
    }
}

/// A predicted run-time violation, in short.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SiteViolation {
    /// `0x2000`-`0x2002`.
    pub code: String,
    /// The API called.
    pub api: String,
    /// The call's RVA.
    pub rva: u32,
    /// What the argument is.
    pub argument: String,
}

/// What to do about a driver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The command that removes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove: Option<String>,
    /// Whether a newer version is the usual fix.
    pub newer_version_fixes: bool,
    /// The advice, in words.
    pub advice: String,
}

/// One driver's audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DriverReport {
    /// The file's name.
    pub name: String,
    /// The file.
    pub path: String,
    /// Where the machine knows it from: `service`, `driver-store`, `loaded`.
    pub sources: Vec<&'static str>,
    /// The services that load it.
    pub services: Vec<Service>,
    /// The earliest start type among them, as `sc qc` names it.
    pub start: &'static str,
    /// Why removing it may leave the machine unbootable, if it may.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_critical: Option<String>,
    /// The Driver Store package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    /// Loaded now (live audits only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded: Option<bool>,
    /// The vendor: CompanyName, else the package's Provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// The version: FileVersion, else the package's DriverVer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Hashes, version resource, signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// DV's image checks (0x2003-0x2005, and `relocs`).
    pub image_findings: Vec<Finding>,
    /// Predicted run-time violations (0x2000-0x2002).
    pub predicted_violations: Vec<SiteViolation>,
    /// Call sites whose argument is not known statically (not findings).
    pub unknown_sites: usize,
    /// Microsoft's block rules it matches.
    pub blocklist: Vec<BlockMatch>,
    /// LOLDrivers entries it is on.
    pub loldrivers: Vec<LolMatch>,
    /// Named by the CI key's HvciDisallowedImages.
    pub hvci_disallowed: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, one line each.
    pub reasons: Vec<String>,
    /// What to do (for findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Why the file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The lists the audit matches against.
#[derive(Clone, Debug, Default)]
pub struct Lists {
    /// `--blocklist`.
    pub blocklist: Option<Blocklist>,
    /// `--loldrivers`.
    pub loldrivers: Option<LolDrivers>,
    /// HvciDisallowedImages.
    pub disallowed: Vec<String>,
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut data = Vec::new();
    file.take(crate::scan::MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read: {e}"))?;
    if data.len() as u64 > crate::scan::MAX_FILE_SIZE {
        return Err("too large for a driver image".into());
    }
    Ok(data)
}

/// Why removing the driver may leave the machine unbootable, if it may.
fn boot_critical(services: &[Service], package: Option<&Package>) -> Option<String> {
    if let Some(s) = services.iter().find(|s| matches!(s.start, Some(0 | 1))) {
        return Some(format!(
            "service {} starts at {} (start type {})",
            s.name,
            start_name(s.start),
            s.start.unwrap_or(0)
        ));
    }
    if let Some((s, g)) = services.iter().find_map(|s| {
        s.group
            .as_ref()
            .filter(|g| BOOT_GROUPS.iter().any(|b| b.eq_ignore_ascii_case(g)))
            .map(|g| (s, g))
    }) {
        return Some(format!("service {} is in the boot group \"{g}\"", s.name));
    }
    package
        .and_then(|p| p.class.as_ref())
        .filter(|c| BOOT_CLASSES.iter().any(|b| b.eq_ignore_ascii_case(c)))
        .map(|c| format!("its package is of the boot-path class {c}"))
}

fn site_violations(report: &FileReport) -> (Vec<SiteViolation>, usize) {
    let sites = report.predicted.iter().flatten();
    let violations = sites
        .clone()
        .filter(|s| s.verdict == SiteVerdict::Violation)
        .map(|s| SiteViolation {
            code: s.code.to_string(),
            api: s.api.to_string(),
            rva: s.rva,
            argument: match (&s.value_name, s.value) {
                (Some(name), _) => format!("{} {name}", s.argument),
                (None, Some(v)) => format!("{} {v:#x}", s.argument),
                (None, None) => s.argument.to_string(),
            },
        })
        .collect();
    let unknown = sites.filter(|s| s.verdict == SiteVerdict::Unknown).count();
    (violations, unknown)
}

fn disallowed(name: &str, path: &str, list: &[String]) -> bool {
    list.iter().any(|d| {
        let d = d.trim();
        let d_name = file_name_str(d);
        d_name.eq_ignore_ascii_case(name) || d.eq_ignore_ascii_case(path)
    })
}

/// The command that removes a driver: the package's, else the service's.
fn remove_command(c: &Candidate, package: Option<&Package>) -> Option<String> {
    if let Some(p) = package
        && let Some(published) = &p.published
    {
        return Some(format!("pnputil /delete-driver {published} /uninstall"));
    }
    let deletes: Vec<String> = c
        .services
        .iter()
        .map(|s| format!("sc delete {}", s.name))
        .collect();
    if !deletes.is_empty() {
        return Some(deletes.join(" & "));
    }
    package.map(|p| {
        format!(
            "pnputil /enum-drivers (find the published name of {}), then pnputil /delete-driver oemNN.inf /uninstall",
            p.inf
        )
    })
}

/// Audits one candidate.
pub fn audit(c: &Candidate, package: Option<&Package>, lists: &Lists) -> DriverReport {
    let shown = c.path.display().to_string();
    let mut r = DriverReport {
        name: c.name.clone(),
        path: shown.clone(),
        sources: c.sources.clone(),
        services: c.services.clone(),
        start: start_name(c.services.iter().filter_map(|s| s.start).min()),
        boot_critical: boot_critical(&c.services, package),
        package: package.cloned(),
        loaded: c.loaded,
        vendor: package.and_then(|p| p.provider.clone()),
        version: package.and_then(|p| p.driver_version.clone()),
        identity: None,
        image_findings: Vec::new(),
        predicted_violations: Vec::new(),
        unknown_sites: 0,
        blocklist: Vec::new(),
        loldrivers: Vec::new(),
        hvci_disallowed: disallowed(&c.name, &shown, &lists.disallowed),
        verdict: Verdict::Ok,
        reasons: Vec::new(),
        action: None,
        error: None,
    };
    if !c.path.is_file() {
        r.verdict = Verdict::Missing;
        r.reasons
            .push("the file is not there: nothing loads it".into());
        if r.hvci_disallowed {
            r.reasons.push("named in HvciDisallowedImages".into());
        }
        return r;
    }
    let data = match read_file(&c.path) {
        Ok(d) => d,
        Err(e) => {
            r.verdict = Verdict::Error;
            r.error = Some(e);
            return r;
        }
    };
    let id = identity::identify(&data);
    let scan = analyze::analyze_hashed(shown, &data, id.sha256.clone());
    if let Some(e) = &scan.error {
        r.verdict = Verdict::Error;
        r.error = Some(e.clone());
        r.identity = Some(id);
        return r;
    }
    if let Some(company) = &id.version.company {
        r.vendor = Some(company.clone());
    }
    if let Some(v) = &id.version.file_version {
        r.version = Some(v.clone());
    }
    (r.predicted_violations, r.unknown_sites) = site_violations(&scan);
    r.image_findings = scan.findings;
    if let Some(b) = &lists.blocklist {
        r.blocklist = b.matches(&id);
    }
    if let Some(l) = &lists.loldrivers {
        r.loldrivers = l.matches(&id);
    }
    r.identity = Some(id);
    judge(&mut r);
    if r.verdict.is_finding() {
        r.action = Some(action(&r, c, package));
    }
    r
}

/// Sets the verdict and the reasons from what was found.
fn judge(r: &mut DriverReport) {
    let mut verdict = Verdict::Ok;
    for m in &r.blocklist {
        r.reasons.push(format!(
            "Microsoft's driver block rules: {} ({}: {})",
            m.rule, m.kind, m.detail
        ));
        verdict = verdict.min(Verdict::Blocked);
    }
    for m in &r.loldrivers {
        r.reasons.push(format!(
            "LOLDrivers {} ({}, by {})",
            m.id,
            if m.category.is_empty() {
                "listed"
            } else {
                &m.category
            },
            m.by
        ));
        verdict = verdict.min(Verdict::Blocked);
    }
    if r.hvci_disallowed {
        r.reasons.push(
            "named in HvciDisallowedImages (HKLM\\SYSTEM\\CurrentControlSet\\Control\\CI)".into(),
        );
        verdict = verdict.min(Verdict::Blocked);
    }
    for f in &r.image_findings {
        let mild = f.init || f.code == "relocs";
        r.reasons
            .push(format!("{} {}: {}", f.code, f.counter, f.message));
        verdict = verdict.min(if mild {
            Verdict::Review
        } else {
            Verdict::Incompatible
        });
    }
    for s in &r.predicted_violations {
        r.reasons.push(format!(
            "{} predicted at run time: {}({}) at rva {:#x}",
            s.code, s.api, s.argument, s.rva
        ));
        verdict = verdict.min(Verdict::Incompatible);
    }
    r.verdict = verdict;
}

fn action(r: &DriverReport, c: &Candidate, package: Option<&Package>) -> Action {
    let malicious = r
        .loldrivers
        .iter()
        .any(|m| m.category.to_ascii_lowercase().contains("malicious"));
    let whole_signer = r
        .blocklist
        .iter()
        .any(|m| m.kind == "signer" && !m.version_range);
    let newer_version_fixes = !malicious && !whole_signer;
    let vendor = r.vendor.as_deref().unwrap_or("the vendor");
    let version = r.version.as_deref().unwrap_or("unknown");
    let advice = if malicious {
        format!(
            "LOLDrivers lists it as malicious: remove it (version {version}); no version is safe"
        )
    } else if whole_signer {
        format!(
            "every version signed with that certificate is denied: remove it, or ask {vendor} for a build signed otherwise (version {version})"
        )
    } else {
        format!(
            "update it: a newer version from {vendor} is the usual fix (this is version {version}); else remove it"
        )
    };
    Action {
        remove: remove_command(c, package),
        newer_version_fixes,
        advice,
    }
}
