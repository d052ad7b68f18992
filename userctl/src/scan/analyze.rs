//! One file's scan: the engine's image checks and hooked imports, turned
//! into a serializable [`FileReport`]. Pure: bytes in, report out.

use crate::predict::{self, PredictedSite, Verdict};
use civ_engine::code::Counter;
use civ_engine::image::{self, Detail};
use civ_engine::pe::{Layout, PeImage};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The scan of one file. On a file that is not a readable PE image, only
/// `path`, `sha256` and `error` are set.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FileReport {
    /// The path as given or found.
    pub path: String,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// `AMD64`, `I386`, `ARM64`, or the Machine value in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// `PE32` or `PE32+`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// SectionAlignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_alignment: Option<u32>,
    /// The section holding the IAT, if the image imports anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat_section: Option<String>,
    /// What DV's code integrity checks would object to.
    pub findings: Vec<Finding>,
    /// The imports civ checks at run time (catalog rows with a DV code),
    /// each once, sorted.
    pub hooked_imports: Vec<String>,
    /// The image imports MmGetSystemRoutineAddress: civ answers its lookups
    /// of checked APIs with its own entries, so those calls are checked too.
    pub dynamic_lookup: bool,
    /// The image has import-control-transfer dynamic relocations (import
    /// call optimization): the kernel may bind its `call [IAT]` sites
    /// directly, so an IAT hook (civ.sys's) does not see those calls.
    pub import_call_optimization: bool,
    /// Why the file could not be scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The call sites of hooked imports found in the code, with the checked
    /// argument where it is a constant (docs/scan-json.md). Absent for
    /// images whose code is not decoded (not AMD64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Vec<PredictedSite>>,
    /// The PDB that located the addresses in the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    /// Why no PDB was used, when one was given or found but could not be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb_error: Option<String>,
}

impl FileReport {
    /// A report with only the path: what a file that could not be read gets
    /// (with `error` set), and what the checks fill in.
    pub fn empty(path: String) -> FileReport {
        FileReport {
            path,
            sha256: String::new(),
            machine: None,
            format: None,
            section_alignment: None,
            iat_section: None,
            findings: Vec::new(),
            hooked_imports: Vec::new(),
            dynamic_lookup: false,
            import_call_optimization: false,
            error: None,
            predicted: None,
            pdb: None,
            pdb_error: None,
        }
    }

    /// Does the file have findings? Image findings and predicted
    /// violations count; call sites whose argument is unknown do not.
    pub fn has_findings(&self) -> bool {
        !self.findings.is_empty() || self.predicted_count(Verdict::Violation) > 0
    }

    /// How many predicted call sites have this verdict.
    pub fn predicted_count(&self, verdict: Verdict) -> usize {
        self.predicted
            .iter()
            .flatten()
            .filter(|s| s.verdict == verdict)
            .count()
    }
}

/// One image finding.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// `0x2003`, `0x2004`, `0x2005`, or `relocs` for unsupported relocations.
    pub code: &'static str,
    /// DV's counter label, e.g. `Execute-Write Section`.
    pub counter: &'static str,
    /// The section's name (lossy UTF-8), if the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// The section's index in the section table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_index: Option<usize>,
    /// The RVA concerned: section start, IAT, or first straddling relocation.
    pub rva: u32,
    /// A sentence that says what is wrong and what to do.
    pub message: String,
    /// True for 0x2003 on the discardable INIT section.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Where `rva` is in the source, when a PDB places it in a function
    /// (a straddling relocation inside code).
    #[serde(flatten)]
    pub location: SourceLocation,
}

pub use crate::symbols::SourceLocation;

/// Machine names as `dumpbin` prints them.
pub fn machine_name(machine: u16) -> String {
    match machine {
        0x8664 => "AMD64".into(),
        0x014C => "I386".into(),
        0xAA64 => "ARM64".into(),
        0xA641 => "ARM64EC".into(),
        0x01C4 => "ARMNT".into(),
        0x0EBC => "EBC".into(),
        other => format!("{other:#06x}"),
    }
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn message(f: &image::Finding<'_>, section: &str) -> String {
    match f.detail {
        Detail::WriteExecute { init: true } => format!(
            "section {section} is writable and executable; it is the discardable INIT section, which \
             Windows 10+ maps read-only, but DV may still object: link with a current toolset so INIT is not writable"
        ),
        Detail::WriteExecute { init: false } => format!(
            "section {section} is writable and executable: keep code and data in separate sections \
             (no /SECTION:...,ERW, no /MERGE of data into code)"
        ),
        Detail::SectionOffPage { section_alignment } => format!(
            "section {section} starts at RVA {:#x}, off a page boundary (SectionAlignment {section_alignment:#x}): \
             link with the default /ALIGN:0x1000",
            f.rva
        ),
        Detail::AlignmentBelowPage { section_alignment } => format!(
            "SectionAlignment {section_alignment:#x} is below the page size: link with the default /ALIGN:0x1000"
        ),
        Detail::IatInExecutable { via_first_thunk } => format!(
            "the import address table at RVA {:#x} lies in executable section {section}{}: \
             do not merge .rdata or .idata into .text",
            f.rva,
            if via_first_thunk {
                " (found through an import descriptor's FirstThunk)"
            } else {
                ""
            }
        ),
        Detail::StraddlingRelocations { count, first_type } => format!(
            "{count} base relocation(s) straddle a page boundary, the first a {} at RVA {:#x}: \
             HVCI on Windows 10 1507-1607 cannot apply them",
            if first_type == civ_engine::pe::REL_BASED_DIR64 {
                "DIR64"
            } else {
                "HIGHLOW"
            },
            f.rva
        ),
    }
}

/// Hex SHA-256 of the bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Scans one file's bytes (file layout): the image checks and the
/// predicted call sites.
pub fn analyze(path: String, data: &[u8]) -> FileReport {
    analyze_hashed(path, data, sha256_hex(data))
}

/// [`analyze`] of bytes whose SHA-256 (lowercase hex) the caller has
/// already computed: the audit hashes each file once, for its identity.
pub fn analyze_hashed(path: String, data: &[u8], sha256: String) -> FileReport {
    let mut report = analyze_unhashed(path, data);
    report.sha256 = sha256;
    if report.error.is_none()
        && let Ok(pe) = PeImage::parse(data, Layout::File)
    {
        // The import table was read without error above, so this is not
        // expected to fail; if it does, the sites are left out.
        report.predicted = predict::predict(&pe)
            .ok()
            .flatten()
            .map(|sites| sites.iter().map(PredictedSite::from_site).collect());
    }
    report
}

/// The checks alone, without the SHA-256 (left empty): what the benchmark
/// against other PE libraries compares.
pub fn analyze_unhashed(path: String, data: &[u8]) -> FileReport {
    let mut report = FileReport::empty(path);
    if let Err(e) = fill(&mut report, data) {
        report.error = Some(e.to_string());
    }
    report
}

fn fill(report: &mut FileReport, data: &[u8]) -> Result<(), civ_engine::pe::PeError> {
    let pe = PeImage::parse(data, Layout::File)?;
    report.machine = Some(machine_name(pe.machine()));
    report.format = Some(if pe.is_64() { "PE32+" } else { "PE32" });
    report.section_alignment = Some(pe.section_alignment());
    report.iat_section = image::iat_location(&pe)?
        .map(|(_, s)| s.map_or_else(|| "(outside any section)".to_string(), |s| lossy(s.name())));
    let mut findings = Vec::new();
    image::check_image(&pe, |f| findings.push(f))?;
    report.findings = findings
        .iter()
        .map(|f| {
            let section = f.section.map(|s| lossy(s.name()));
            Finding {
                code: f.counter.tag(),
                counter: f.counter.label(),
                message: message(f, section.as_deref().unwrap_or("?")),
                section_index: f.section.map(|s| s.index),
                section,
                rva: f.rva,
                init: matches!(f.detail, Detail::WriteExecute { init: true }),
                location: SourceLocation::default(),
            }
        })
        .collect();
    let mut hooked = Vec::new();
    let mut dynamic_lookup = false;
    image::for_each_hooked_import(&pe, |h, _| match h.code() {
        Some(_) => hooked.push(h.name.to_string()),
        None => dynamic_lookup = true,
    })?;
    report.dynamic_lookup = dynamic_lookup;
    report.import_call_optimization = civ_engine::dvrt::has_import_call_transfers(&pe)?;
    hooked.sort();
    hooked.dedup();
    report.hooked_imports = hooked;
    Ok(())
}

/// The codes of a report's findings, each once, in code order.
pub fn codes(report: &FileReport) -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Counter::ALL
        .iter()
        .map(|c| c.tag())
        .filter(|t| report.findings.iter().any(|f| f.code == *t))
        .collect();
    codes.sort();
    codes
}
