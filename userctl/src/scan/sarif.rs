//! The SARIF 2.1.0 report: one rule per DV code (and one for unsupported
//! relocations), one result per finding, located by file and by the RVA and
//! section inside it; one result per predicted violation at a call site,
//! located in the source (file and line, from the PDB) when known, else by
//! the call's RVA in the image; files that could not be scanned become
//! tool execution notifications.

use super::analyze::FileReport;
use super::discover::PathError;
use crate::predict::{PredictedSite, Verdict};
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

/// A URI for a source path from a PDB: the build machine's path, absolute
/// on Windows (`C:\\src\\x.c`, `\\\\server\\share\\x.c`) or Unix, or relative.
fn source_uri(path: &str) -> String {
    let b = path.as_bytes();
    let segments = |rest: &str| -> Vec<String> {
        rest.split(['\\', '/'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let windows_drive = b.len() >= 3
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b[2] == b'\\' || b[2] == b'/');
    let (base, rest) = if windows_drive {
        (
            format!("file:///{}/", path.get(..2).unwrap_or("")),
            path.get(3..).unwrap_or(""),
        )
    } else if let Some(unc) = path.strip_prefix("\\\\") {
        let (host, rest) = unc.split_once('\\').unwrap_or((unc, ""));
        (format!("file://{host}/"), rest)
    } else if path.starts_with('/') {
        ("file:///".to_string(), path)
    } else {
        // Relative: percent-encoded segments, joined by '/'.
        let mut u = match url::Url::parse("file:///") {
            Ok(u) => u,
            Err(_) => return path.to_string(),
        };
        if let Ok(mut s) = u.path_segments_mut() {
            s.clear().extend(segments(path));
        }
        return u.path().trim_start_matches('/').to_string();
    };
    match url::Url::parse(&base) {
        Ok(mut u) => {
            if let Ok(mut s) = u.path_segments_mut() {
                s.pop_if_empty().extend(segments(rest));
            }
            u.to_string()
        }
        Err(_) => path.to_string(),
    }
}

/// The result for a predicted violation.
fn site_result(r: &FileReport, index: usize, s: &PredictedSite) -> Value {
    let rule_index = Counter::ALL
        .iter()
        .position(|c| c.tag() == s.code)
        .unwrap_or(0);
    let counter = Counter::ALL.get(rule_index).copied();
    let value = match (s.value, &s.value_name) {
        (Some(v), Some(n)) => format!("{v:#x} ({n})"),
        (Some(v), None) => format!("{v:#x}"),
        // Decided by known bits, the driver's globals or a wrapper's
        // callers: the reason says how.
        _ => match &s.reason {
            Some(r) => format!("that is not one constant ({r})"),
            None => "?".into(),
        },
    };
    let message = format!(
        "{} is called with {} {value}: {}. {}",
        s.api,
        s.argument,
        counter
            .and_then(|c| c.code())
            .map_or("a code-integrity violation", |c| c.title()),
        counter.map_or("", help)
    );
    let binary = json!({
        "physicalLocation": {
            "artifactLocation": { "uri": uri(&r.path), "index": index },
            "address": { "relativeAddress": s.rva, "kind": "instruction" }
        }
    });
    let mut location = match (&s.location.file, s.location.line) {
        (Some(file), Some(line)) if line > 0 => json!({
            "physicalLocation": {
                "artifactLocation": { "uri": source_uri(file) },
                "region": { "startLine": line }
            }
        }),
        _ => binary.clone(),
    };
    if let Some(f) = &s.location.function {
        location["logicalLocations"] = json!([{ "name": f, "kind": "function" }]);
    }
    let mut result = json!({
        "ruleId": s.code,
        "ruleIndex": rule_index,
        "level": "error",
        "message": { "text": message },
        "locations": [location],
        "partialFingerprints": { "civ/v1": format!("{}:{}:{}", r.sha256, s.code, s.rva) },
        "properties": {
            "api": s.api,
            "argument": s.argument,
            "value": s.value,
            "predicted": true
        }
    });
    if s.location.file.is_some() {
        // The call in the image, beside its source line.
        let mut related = binary;
        related["id"] = json!(1);
        related["message"] =
            json!({ "text": format!("the call at RVA {:#x} in the image", s.rva) });
        result["relatedLocations"] = json!([related]);
    }
    result
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
            "properties": { "machine": r.machine, "format": r.format, "hookedImports": r.hooked_imports, "dynamicLookup": r.dynamic_lookup, "importCallOptimization": r.import_call_optimization }
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
        for s in r
            .predicted
            .iter()
            .flatten()
            .filter(|s| s.verdict == Verdict::Violation)
        {
            results.push(site_result(r, index, s));
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

#[cfg(test)]
mod tests {
    use super::source_uri;

    #[test]
    fn source_paths_of_any_build_machine_become_uris() {
        assert_eq!(
            source_uri("C:\\src\\my drv\\x.c"),
            "file:///C:/src/my%20drv/x.c"
        );
        assert_eq!(source_uri("c:/src/x.c"), "file:///c:/src/x.c");
        assert_eq!(
            source_uri("\\\\build\\share\\x.c"),
            "file://build/share/x.c"
        );
        assert_eq!(source_uri("/work/a b/x.rs"), "file:///work/a%20b/x.rs");
        assert_eq!(source_uri("src\\x.c"), "src/x.c");
    }
}
