//! civctl's command line as a user meets it: exit statuses, errors on bad
//! input that lose nothing, human output, decode.

mod common;
use civ_fixtures::Fixture;
use common::{civctl, scan_json};
use std::path::Path;

#[test]
fn clean_file_exits_0_and_says_clean() {
    let (code, out, _) = civctl(["scan".as_ref(), Fixture::Clean.path().as_os_str()]);
    assert_eq!(code, 0);
    assert!(out.contains("clean"), "{out}");
    assert!(
        out.contains("1 file(s) scanned: 0 with findings, 0 error(s)"),
        "{out}"
    );
}

#[test]
fn missing_path_is_exit_2_and_other_files_are_still_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.sys");
    let wx = Fixture::WriteExecuteData.path();
    let (code, v) = scan_json(&[&missing, &wx], &[]);
    assert_eq!(code, 2);
    assert_eq!(v["errors"][0]["path"], missing.display().to_string());
    assert_eq!(v["files"][0]["findings"][0]["code"], "0x2003");
    assert_eq!(v["summary"]["errors"], 1);
}

#[test]
fn malformed_file_is_a_clear_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sys");
    let mut bytes = Fixture::Clean.bytes();
    bytes.truncate(0x100); // ends inside the section table
    std::fs::write(&bad, &bytes).unwrap();
    let text = dir.path().join("notes.sys");
    std::fs::write(&text, "not a driver").unwrap();
    std::fs::copy(Fixture::Clean.path(), dir.path().join("good.sys")).unwrap();
    let (code, out, _) = civctl(["scan".as_ref(), dir.path().as_os_str()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("bad.sys: error: "), "{out}");
    assert!(
        out.contains("notes.sys: error: not a PE image: no MZ signature"),
        "{out}"
    );
    assert!(out.contains("good.sys (AMD64, PE32+)  clean"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(civctl(["scan"]).0, 2);
    assert_eq!(civctl(["scan", "--format", "xml", "x.sys"]).0, 2);
    assert_eq!(civctl(["frobnicate"]).0, 2);
}

#[test]
fn only_sys_files_in_folders_unless_all_pe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(Fixture::Clean.path(), dir.path().join("a.sys")).unwrap();
    std::fs::copy(Fixture::WriteExecuteData.path(), dir.path().join("b.dll")).unwrap();
    std::fs::write(dir.path().join("readme.txt"), "text").unwrap();
    let (code, v) = scan_json(&[dir.path()], &[]);
    assert_eq!((code, v["files"].as_array().unwrap().len()), (0, 1));
    let (code, v) = scan_json(&[dir.path()], &["--all-pe"]);
    assert_eq!((code, v["files"].as_array().unwrap().len()), (1, 2));
}

#[test]
fn decode_explains_and_rejects() {
    let (code, out, _) = civctl(["decode", "C4", "2001", "fffff80112345678", "40", "0"]);
    assert_eq!(code, 0);
    assert!(out.contains("PAGE_EXECUTE_READWRITE"), "{out}");
    assert!(out.contains("Fix:"), "{out}");
    let (code, out, _) = civctl(["decode", "--format", "json", "2000", "1", "0", "0"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["code"], "0x2000");
    let (code, _, err) = civctl(["decode", "C4", "1234", "0", "0", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a code integrity violation"), "{err}");
    let (code, _, _) = civctl(["decode", "C4", "2000"]);
    assert_eq!(code, 2);
}

#[test]
fn json_paths_are_as_given() {
    let p = Fixture::Clean.path();
    let (_, v) = scan_json(&[Path::new(&p)], &[]);
    assert_eq!(v["schema"], "civ-scan/1");
    assert_eq!(v["files"][0]["path"], p.display().to_string());
    assert_eq!(v["files"][0]["sha256"].as_str().unwrap().len(), 64);
}
