//! civctl scan over the real third-party drivers of tests/corpus: every
//! column of expected.tsv (what pefile, LIEF and llvm-readobj agree on) is
//! what civctl reports.

mod common;
use civ_fixtures::{corpus_dir, corpus_expected as expected};
use common::{codes, scan_json};
use serde_json::Value;

fn find<'a>(files: &'a [Value], rel: &str) -> &'a Value {
    files
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(rel)))
        .unwrap_or_else(|| panic!("{rel} not in the scan"))
}

#[test]
fn corpus_findings_equal_expected_tsv() {
    let corpus = corpus_dir();
    let rows = expected();
    assert!(rows.len() >= 6);
    let (code, v) = scan_json(&[&corpus], &["--all-pe"]);
    assert_eq!(code, 1, "the corpus has findings, so the exit status is 1");
    let files = v["files"].as_array().expect("files");
    assert_eq!(files.len(), rows.len(), "one report per corpus file");
    for row in &rows {
        let f = find(files, &row.path);
        let p = &row.path;
        assert_eq!(f.get("error"), None, "{p}");
        assert_eq!(f["sha256"], row.sha256, "{p}");
        assert_eq!(f["machine"], row.machine, "{p}");
        assert_eq!(f["section_alignment"], row.section_alignment, "{p}");
        let mut wx: Vec<String> = f["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["code"] == "0x2003")
            .map(|x| x["section"].as_str().unwrap().to_string())
            .collect();
        wx.sort();
        assert_eq!(wx, row.wx_sections, "{p}: W+X sections");
        assert_eq!(
            f["iat_section"].as_str().map(str::to_string),
            row.iat_section,
            "{p}: IAT section"
        );
        assert_eq!(codes(f), row.codes, "{p}: codes");
        let hooked: Vec<String> = f["hooked_imports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect();
        assert_eq!(hooked, row.hooked, "{p}: hooked imports");
    }
}

#[test]
fn corpus_folder_without_all_pe_skips_the_efi_image() {
    let (_, v) = scan_json(&[&corpus_dir()], &[]);
    let files = v["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .all(|f| f["path"].as_str().unwrap().ends_with(".sys"))
    );
    assert_eq!(
        files.len(),
        expected()
            .iter()
            .filter(|r| r.path.ends_with(".sys"))
            .count()
    );
}

/// The audit hashes a file once, for its identity, and hands that hash to
/// the scan: the report must be the scan's own, byte for byte.
#[test]
fn a_scan_given_the_identity_hash_is_the_scan() {
    use civctl::audit::identity::identify;
    use civctl::scan::analyze::{analyze, analyze_hashed};
    let corpus = corpus_dir();
    for row in expected() {
        let data = std::fs::read(corpus.join(&row.path)).unwrap();
        let id = identify(&data);
        assert_eq!(id.sha256, row.sha256, "{}", row.path);
        assert_eq!(
            analyze_hashed(row.path.clone(), &data, id.sha256),
            analyze(row.path.clone(), &data),
            "{}",
            row.path
        );
    }
}
