//! civctl scan on fixture images linked from source with rust-lld: each
//! linker defect is found, with the right section, and nothing else is.

mod common;
use civ_fixtures::Fixture;
use common::{codes, scan_json};
use serde_json::Value;

fn scan_one(f: Fixture) -> (i32, Value) {
    let path = f.path();
    let (code, v) = scan_json(&[&path], &[]);
    assert_eq!(v["files"].as_array().map(Vec::len), Some(1));
    (code, v["files"][0].clone())
}

fn sections_with(file: &Value, code: &str) -> Vec<String> {
    file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .map(|f| f["section"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn clean_image_has_no_finding() {
    let (code, file) = scan_one(Fixture::Clean);
    assert_eq!(code, 0, "{file}");
    assert_eq!(codes(&file), Vec::<String>::new());
    assert_eq!(file["machine"], "AMD64");
    assert_eq!(file["format"], "PE32+");
    assert_eq!(file["section_alignment"], 0x1000);
    assert_eq!(file["iat_section"], ".rdata");
    assert_eq!(
        file["hooked_imports"],
        serde_json::json!(["ExAllocatePoolWithTag", "MmMapLockedPagesSpecifyCache"])
    );
    assert_eq!(file["dynamic_lookup"], true);
}

#[test]
fn erw_data_section_is_0x2003() {
    let (code, file) = scan_one(Fixture::WriteExecuteData);
    assert_eq!(code, 1);
    assert_eq!(codes(&file), ["0x2003"]);
    assert_eq!(sections_with(&file, "0x2003"), [".data"]);
    assert_eq!(file["findings"][0].get("init"), None);
}

#[test]
fn arm64_images_get_the_same_image_checks() {
    // hvci_probe for ARM64 with .data ERW: the same finding as on x64.
    let (code, file) = scan_one(Fixture::WriteExecuteDataArm64);
    assert_eq!(code, 1);
    assert_eq!(file["machine"], "ARM64");
    assert_eq!(file["format"], "PE32+");
    assert_eq!(codes(&file), ["0x2003"]);
    assert_eq!(sections_with(&file, "0x2003"), [".data"]);
    // Its call sites are predicted from the A64 code.
    let sites = file["predicted"].as_array().expect("predicted");
    assert!(!sites.is_empty(), "{file}");
    // And the same source linked cleanly for ARM64 has no image finding.
    let (_, rust) = scan_one(Fixture::PredictRustArm64);
    assert_eq!(codes(&rust), Vec::<String>::new());
}

#[test]
fn erw_init_section_is_0x2003_and_says_init() {
    let (code, file) = scan_one(Fixture::WriteExecuteInit);
    assert_eq!(code, 1);
    assert_eq!(codes(&file), ["0x2003"]);
    assert_eq!(sections_with(&file, "0x2003"), ["INIT"]);
    assert_eq!(file["findings"][0]["init"], true);
    assert!(
        file["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("INIT")
    );
}

#[test]
fn align_below_page_is_0x2004_for_every_section_off_a_page() {
    let (code, file) = scan_one(Fixture::LowAlignment);
    assert_eq!(code, 1);
    assert_eq!(codes(&file), ["0x2004"]);
    assert_eq!(file["section_alignment"], 0x200);
    let findings = file["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        assert_ne!(f["rva"].as_u64().unwrap() % 0x1000, 0, "{f}");
    }
    assert!(sections_with(&file, "0x2004").contains(&".text".to_string()));
}

#[test]
fn iat_merged_into_text_is_0x2005() {
    let (code, file) = scan_one(Fixture::IatInText);
    assert_eq!(code, 1);
    assert_eq!(codes(&file), ["0x2005"]);
    assert_eq!(sections_with(&file, "0x2005"), [".text"]);
    assert_eq!(file["iat_section"], ".text");
    assert!(
        !file["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("FirstThunk")
    );
}

#[test]
fn iat_found_only_through_first_thunk_is_0x2005() {
    let (code, file) = scan_one(Fixture::IatInTextNoDirectory);
    assert_eq!(code, 1);
    assert_eq!(codes(&file), ["0x2005"]);
    assert_eq!(sections_with(&file, "0x2005"), [".text"]);
    assert!(
        file["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("FirstThunk")
    );
    // The imports are still read, through the descriptors.
    assert_eq!(file["hooked_imports"][0], "ExAllocatePoolWithTag");
}

#[test]
fn straddling_dir64_relocation_is_reported() {
    let (code, file) = scan_one(Fixture::StraddlingReloc);
    assert_eq!(code, 1);
    assert_eq!(codes(&file), ["relocs"]);
    let f = &file["findings"][0];
    assert_eq!(f["rva"].as_u64().unwrap() % 0x1000, 0xFFC);
    assert_eq!(f["section"], ".strad");
}

#[test]
fn folder_scan_finds_every_fixture_and_exits_1() {
    for f in Fixture::ALL {
        f.path();
    }
    let (code, v) = scan_json(&[&civ_fixtures::out_dir()], &[]);
    assert_eq!(code, 1);
    let paths: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for f in Fixture::ALL {
        assert!(
            paths.iter().any(|p| p.ends_with(f.file_name())),
            "{} not scanned: {paths:?}",
            f.file_name()
        );
    }
    // Only the clean image is clean (predicted violations are findings);
    // other tests may have built more images in the folder, so the count
    // is over the fixtures alone.
    let with_findings: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let p = f["path"].as_str().unwrap();
            Fixture::ALL.iter().any(|x| p.ends_with(x.file_name()))
        })
        .filter(|f| {
            !f["findings"].as_array().unwrap().is_empty()
                || f["predicted"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["verdict"] == "violation"))
        })
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        with_findings.len(),
        Fixture::ALL.len() - 1,
        "{with_findings:?}"
    );
    assert!(
        with_findings
            .iter()
            .all(|p| !p.ends_with(Fixture::Clean.file_name()))
    );
}
