//! The SARIF 2.1.0 report: one rule per DV code (and one for unsupported
//! relocations), one result per finding, located by file and by the RVA and
//! section inside it; files that could not be scanned become tool
//! execution notifications.

use super::analyze::FileReport;
use super::discover::PathError;
use civ_engine::code::Counter;
use serde_json::{Value, json};
use std::io::{self, Write};

const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn help(counter: Counter) -> &'static str {
    match counter {
        Counter::ExecutePoolType => {
            "Allocate NonPagedPoolNx, or ExAllocatePool2 with POOL_FLAG_NON_PAGED."
        }
        Counter::ExecutePageProtection => "Ask for a protection without PAGE_EXECUTE*.",
        Counter::ExecutePageMapping => {
            "OR MdlMappingNoExecute into the priority of MmGetSystemAddressForMdlSafe."
        }
        Counter::ExecuteWriteSection => {
            "Keep code and data in separate sections; do not mark a section ERW."
        }
        Counter::SectionAlignmentFailures => "Link with /ALIGN:0x1000 (the default for drivers).",
        Counter::UnsupportedRelocs => {
            "Relink with a current linker so that no fixup spans two pages."
        }
        Counter::IatInExecutableSection => {
            "Do not merge .rdata or .idata into an executable section."
        }
    }
}

fn rules() -> Vec<Value> {
    Counter::ALL
        .iter()
        .map(|&c| {
            let short = c.code().map_or("base relocation straddles a page", |code| code.title());
            json!({
                "id": c.tag(),
                "name": c.label().replace(['-', ' '], ""),
                "shortDescription": { "text": short },
                "fullDescription": { "text": format!(
                    "Driver Verifier code integrity ({}): {}. Memory integrity (HVCI) refuses such a driver.",
                    c.label(), short) },
                "help": { "text": help(c) },
                "defaultConfiguration": {
                    "level": if c == Counter::UnsupportedRelocs { "warning" } else { "error" }
                },
                "properties": { "tags": ["hvci", "code-integrity"] }
            })
        })
        .collect()
}

/// A URI for a path: an absolute `file://` URI where the path can be made
/// absolute, else the path percent-encoded as a relative reference.
fn uri(path: &str) -> String {
    let p = std::path::Path::new(path);
    let absolute = std::path::absolute(p).ok();
    match absolute.and_then(|a| url::Url::from_file_path(a).ok()) {
        Some(u) => u.to_string(),
        None => url::form_urlencoded::byte_serialize(path.as_bytes()).collect(),
    }
}

/// Writes the SARIF log.
pub fn write(out: &mut dyn Write, reports: &[FileReport], errors: &[PathError]) -> io::Result<()> {
    let mut artifacts = Vec::new();
    let mut results = Vec::new();
    let mut notifications = Vec::new();
    for e in errors {
        notifications.push(
            json!({ "level": "error", "message": { "text": format!("{}: {}", e.path, e.error) } }),
        );
    }
    for r in reports {
        if let Some(error) = &r.error {
            notifications.push(json!({
                "level": "error",
                "message": { "text": format!("{}: {error}", r.path) },
                "locations": [{ "physicalLocation": { "artifactLocation": { "uri": uri(&r.path) } } }]
            }));
            continue;
        }
        let index = artifacts.len();
        artifacts.push(json!({
            "location": { "uri": uri(&r.path) },
            "hashes": { "sha-256": r.sha256 },
            "properties": { "machine": r.machine, "format": r.format, "hookedImports": r.hooked_imports, "dynamicLookup": r.dynamic_lookup }
        }));
        for f in &r.findings {
            let rule_index = Counter::ALL
                .iter()
                .position(|c| c.tag() == f.code)
                .unwrap_or(0);
            let mut address = json!({ "relativeAddress": f.rva });
            if let Some(section) = &f.section {
                address["fullyQualifiedName"] = json!(section);
                address["kind"] = json!("section");
            }
            results.push(json!({
                "ruleId": f.code,
                "ruleIndex": rule_index,
                "level": if f.code == "relocs" || f.init { "warning" } else { "error" },
                "message": { "text": f.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&r.path), "index": index },
                        "address": address
                    }
                }],
                "partialFingerprints": { "civ/v1": format!("{}:{}:{}", r.sha256, f.code, f.rva) }
            }));
        }
    }
    let log = json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "civctl",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules()
            } },
            "invocations": [{
                "executionSuccessful": notifications.is_empty(),
                "toolExecutionNotifications": notifications
            }],
            "artifacts": artifacts,
            "results": results
        }]
    });
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}
