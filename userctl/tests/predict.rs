//! Call-site prediction on fixture drivers built from source (Rust with
//! rust-lld, C with clang + lld-link, both with a PDB; C with mingw-w64,
//! without): every call to a hooked import is found, with the right code,
//! value and verdict, and, with a PDB, the source line of its `civ-site`
//! marker comment.

mod common;
use civ_engine::pe::{Layout, PeImage};
use civ_fixtures::Fixture;
use common::{civctl, scan_json};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One expected site: marker, API, code, value (None: unknown), verdict.
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    Option<u64>,
    &'static str,
);

const RUST: &[Expected] = &[
    (
        "rust-pool-executable",
        "ExAllocatePoolWithTag",
        "0x2000",
        Some(0),
        "violation",
    ),
    (
        "rust-pool-nx",
        "ExAllocatePoolWithTag",
        "0x2000",
        Some(0x200),
        "clean",
    ),
    (
        "rust-pool-global",
        "ExAllocatePoolWithTag",
        "0x2000",
        None,
        "unknown",
    ),
    (
        "rust-pool2-executable",
        "ExAllocatePool2",
        "0x2000",
        Some(0x80),
        "violation",
    ),
    (
        "rust-mdl-executable",
        "MmMapLockedPagesSpecifyCache",
        "0x2002",
        Some(16),
        "violation",
    ),
    (
        "rust-mdl-nx",
        "MmMapLockedPagesSpecifyCache",
        "0x2002",
        Some(0x4000_0010),
        "clean",
    ),
    (
        "rust-io-executable",
        "MmMapIoSpaceEx",
        "0x2001",
        Some(0x40),
        "violation",
    ),
];

const C: &[Expected] = &[
    (
        "c-pool-tail",
        "ExAllocatePoolWithTag",
        "0x2000",
        Some(4),
        "violation",
    ),
    (
        "c-pool-executable",
        "ExAllocatePoolWithTag",
        "0x2000",
        Some(0),
        "violation",
    ),
    (
        "c-pool-nx",
        "ExAllocatePoolWithTag",
        "0x2000",
        Some(0x200),
        "clean",
    ),
    (
        "c-pool-default",
        "ExAllocatePoolWithTag",
        "0x2000",
        None,
        "unknown",
    ),
    (
        "c-pool2-nx",
        "ExAllocatePool2",
        "0x2000",
        Some(0x40),
        "clean",
    ),
    (
        "c-mdl-executable",
        "MmMapLockedPagesSpecifyCache",
        "0x2002",
        Some(16),
        "violation",
    ),
    (
        "c-mdl-nx",
        "MmMapLockedPagesSpecifyCache",
        "0x2002",
        Some(0x4000_0010),
        "clean",
    ),
    (
        "c-io-executable",
        "MmMapIoSpaceEx",
        "0x2001",
        Some(0x20),
        "violation",
    ),
    (
        "c-pool-register",
        "ExAllocatePoolWithTag",
        "0x2000",
        Some(0x200),
        "clean",
    ),
];

/// The line of each `civ-site: NAME` marker in a source file.
fn markers(source: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(source).expect("fixture source");
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if let Some((_, rest)) = line.split_once("civ-site: ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            assert!(
                out.insert(name.clone(), n as u64 + 1).is_none(),
                "marker {name} twice"
            );
        }
    }
    out
}

fn scan_one(path: &Path, extra: &[&str]) -> (i32, Value) {
    let (code, v) = scan_json(&[path], extra);
    assert_eq!(v["files"].as_array().map(Vec::len), Some(1), "{v}");
    (code, v["files"][0].clone())
}

fn sites(file: &Value) -> Vec<Value> {
    file["predicted"]
        .as_array()
        .unwrap_or_else(|| panic!("no predicted array: {file}"))
        .clone()
}

fn check_site(site: &Value, e: &Expected, what: &str) {
    let (marker, api, code, value, verdict) = *e;
    assert_eq!(site["api"], api, "{what} {marker}: {site}");
    assert_eq!(site["code"], code, "{what} {marker}: {site}");
    assert_eq!(site["value"].as_u64(), value, "{what} {marker}: {site}");
    assert_eq!(site["verdict"], verdict, "{what} {marker}: {site}");
    if value.is_none() {
        assert_eq!(site["value"], Value::Null, "{what} {marker}");
        assert!(site["reason"].is_string(), "{what} {marker}: {site}");
    }
}

/// Checks a fixture with a PDB: one site per marker, on the marker's line.
fn check_with_pdb(fixture: Fixture, expected: &[Expected]) {
    let path = fixture.path();
    let lines = markers(&fixture.source_path());
    let (status, file) = scan_one(&path, &[]);
    assert_eq!(status, 1, "predicted violations make the exit status 1");
    assert_eq!(file.get("pdb_error"), None, "{file}");
    let pdb = fixture.pdb_path().expect("a PDB");
    assert_eq!(file["pdb"], pdb.display().to_string());
    let sites = sites(&file);
    assert_eq!(
        sites.len(),
        expected.len(),
        "{}: one site per marker: {sites:#?}",
        fixture.file_name()
    );
    let source_name = fixture.source_path();
    let source_name = source_name.file_name().unwrap().to_str().unwrap();
    for e in expected {
        let line = lines[e.0];
        let matching: Vec<&Value> = sites.iter().filter(|s| s["line"] == line).collect();
        assert_eq!(
            matching.len(),
            1,
            "{}: one site on line {line} ({}): {sites:#?}",
            fixture.file_name(),
            e.0
        );
        let site = matching[0];
        check_site(site, e, fixture.file_name());
        assert!(
            site["file"].as_str().unwrap().ends_with(source_name),
            "{site}"
        );
        assert!(site["function"].is_string(), "{site}");
        // The return address DV reports is just past the call, except for
        // a tail jump.
        if site["via"] != "tail-jump" {
            assert!(site["return_rva"].as_u64().unwrap() > site["rva"].as_u64().unwrap());
        }
    }
}

#[test]
fn rust_fixture_sites_are_predicted_on_their_lines() {
    check_with_pdb(Fixture::PredictRust, RUST);
    // The unknown value's reason points at the store to the global that
    // stops the analysis, by address and by line.
    let source = std::fs::read_to_string(Fixture::PredictRust.source_path()).unwrap();
    let load = source
        .lines()
        .position(|l| l.contains("write_volatile(&raw mut POOL_TYPE"))
        .unwrap()
        + 1;
    let (_, file) = scan_one(&Fixture::PredictRust.path(), &[]);
    let site = sites(&file)
        .into_iter()
        .find(|s| s["verdict"] == "unknown")
        .unwrap();
    let reason = site["reason"].as_str().unwrap();
    assert!(
        reason.ends_with(&format!("(predict.rs:{load})")),
        "{reason}"
    );
    assert!(site["reason_rva"].is_u64());
}

#[test]
fn rust_arm64_fixture_sites_are_predicted_on_their_lines() {
    // The same source built for ARM64: the same verdicts, from A64 code.
    check_with_pdb(Fixture::PredictRustArm64, RUST);
    let (_, file) = scan_one(&Fixture::PredictRustArm64.path(), &[]);
    assert_eq!(file["machine"], "ARM64");
    // Its sites' blocks read as A64 code, each ending in the branch.
    let bytes = Fixture::PredictRustArm64.bytes();
    let pe = civ_engine::pe::PeImage::parse(&bytes, civ_engine::pe::Layout::File).unwrap();
    let sections = civctl::predict::code_sections(&pe);
    let predicted = civctl::predict::predict(&pe).unwrap().unwrap();
    assert!(!predicted.is_empty());
    for site in &predicted {
        let lines = civctl::predict::disasm::site_lines(&pe, &sections, site, 8);
        let mnemonic = lines
            .last()
            .and_then(|l| l.split("  ").nth(1))
            .and_then(|i| i.split(' ').next());
        assert!(
            matches!(mnemonic, Some("bl" | "blr" | "b" | "br")),
            "{lines:#?}"
        );
        assert!(lines.iter().all(|l| !l.contains("(bad)")), "{lines:#?}");
    }
}

#[test]
fn c_fixture_with_pdb_sites_are_predicted_on_their_lines() {
    check_with_pdb(Fixture::PredictClang, C);
    // The four ways of calling are all there.
    let (_, file) = scan_one(&Fixture::PredictClang.path(), &[]);
    let by_line: BTreeMap<u64, String> = sites(&file)
        .iter()
        .map(|s| {
            (
                s["line"].as_u64().unwrap(),
                s["via"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let lines = markers(&Fixture::PredictClang.source_path());
    assert_eq!(by_line[&lines["c-pool-tail"]], "tail-jump");
    assert_eq!(by_line[&lines["c-pool2-nx"]], "iat");
    assert_eq!(by_line[&lines["c-mdl-executable"]], "thunk");
    assert_eq!(by_line[&lines["c-pool-register"]], "register");
}

#[test]
fn mingw_build_of_the_same_source_gets_the_same_predictions() {
    let (status, file) = scan_one(&Fixture::PredictMingw.path(), &[]);
    assert_eq!(status, 1);
    assert_eq!(file.get("pdb"), None, "mingw writes no PDB");
    let sites = sites(&file);
    // Same calls, same order in the code as in the source.
    assert_eq!(sites.len(), C.len(), "{sites:#?}");
    for (site, e) in sites.iter().zip(C) {
        check_site(site, e, "mingw");
        assert_eq!(site.get("line"), None);
    }
}

#[test]
fn explicit_pdb_is_used_when_it_matches_and_refused_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("moved.sys");
    std::fs::copy(Fixture::PredictClang.path(), &image).unwrap();
    // No PDB beside the copy: no lines.
    let (_, file) = scan_one(&image, &[]);
    assert!(sites(&file).iter().all(|s| s.get("line").is_none()));
    assert_eq!(file.get("pdb_error"), None);
    // --pdb with the right one.
    let right = Fixture::PredictClang.pdb_path().unwrap();
    let (_, file) = scan_one(&image, &["--pdb", right.to_str().unwrap()]);
    assert!(sites(&file).iter().all(|s| s["line"].is_u64()), "{file}");
    // --pdb with another image's PDB: refused, said why.
    let wrong = Fixture::PredictRust.pdb_path().unwrap();
    let (_, file) = scan_one(&image, &["--pdb", wrong.to_str().unwrap()]);
    assert!(sites(&file).iter().all(|s| s.get("line").is_none()));
    assert!(
        file["pdb_error"]
            .as_str()
            .unwrap()
            .contains("does not match the image"),
        "{file}"
    );
    // A stale PDB beside the image is refused the same way.
    std::fs::copy(&wrong, image.with_extension("pdb")).unwrap();
    let (_, file) = scan_one(&image, &[]);
    assert!(
        file["pdb_error"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    // A --pdb that is not a PDB is a usage error.
    let not_pdb = dir.path().join("x.pdb");
    std::fs::write(&not_pdb, b"not a pdb").unwrap();
    let (code, _, err) = civctl([
        "scan".as_ref(),
        "--pdb".as_ref(),
        not_pdb.as_os_str(),
        image.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("x.pdb"), "{err}");
}

#[test]
fn human_output_shows_violations_and_unknowns_with_lines() {
    let path = Fixture::PredictClang.path();
    let lines = markers(&Fixture::PredictClang.source_path());
    let (code, out, _) = civctl(["scan".as_ref(), path.as_os_str()]);
    assert_eq!(code, 1);
    let site_lines: Vec<&str> = out.lines().filter(|l| l.contains("predicted")).collect();
    let line_of = |marker: &str| format!("predict.c:{})", lines[marker]);
    let find = |marker: &str| {
        site_lines
            .iter()
            .find(|l| l.contains(&line_of(marker)))
            .unwrap_or_else(|| panic!("no line for {marker}:\n{out}"))
            .to_string()
    };
    let l = find("c-pool-executable");
    assert!(
        l.contains("0x2000") && l.contains("predicted violation"),
        "{l}"
    );
    assert!(
        l.contains("ExAllocatePoolWithTag(PoolType 0x0 (NonPagedPool))"),
        "{l}"
    );
    assert!(l.contains("at DriverEntry ("), "{l}");
    let l = find("c-pool-default");
    assert!(
        l.contains("predicted unknown") && l.contains("PoolType unknown"),
        "{l}"
    );
    // Clean sites only with --all-sites.
    assert!(!out.contains(&line_of("c-pool-nx")), "{out}");
    assert!(out.contains("4 predicted call site(s) clean (shown with --all-sites)"));
    let (_, all, _) = civctl(["scan".as_ref(), "--all-sites".as_ref(), path.as_os_str()]);
    assert!(all.contains(&line_of("c-pool-nx")), "{all}");
    assert!(
        all.contains("call sites: 4 predicted violation(s), 1 unknown"),
        "{all}"
    );
}

#[test]
fn sarif_locates_predicted_violations_in_the_source() {
    let path = Fixture::PredictClang.path();
    let (code, out, _) = civctl([
        "scan".as_ref(),
        "--format".as_ref(),
        "sarif".as_ref(),
        path.as_os_str(),
        Fixture::PredictMingw.path().as_os_str(),
    ]);
    assert_eq!(code, 1);
    let log: Value = serde_json::from_str(&out).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let predicted: Vec<&Value> = results
        .iter()
        .filter(|r| r["properties"]["predicted"] == true)
        .collect();
    // 4 violations in each build.
    assert_eq!(predicted.len(), 8, "{predicted:#?}");
    let lines = markers(&Fixture::PredictClang.source_path());
    let with_region: Vec<&&Value> = predicted
        .iter()
        .filter(|r| r["locations"][0]["physicalLocation"]["region"].is_object())
        .collect();
    assert_eq!(with_region.len(), 4, "the clang build has a PDB, mingw not");
    let r = with_region
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["region"]["startLine"] == lines["c-io-executable"]
        })
        .expect("the MmMapIoSpaceEx result");
    assert_eq!(r["ruleId"], "0x2001");
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(
        rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "0x2001"
    );
    assert!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/predict.c")
    );
    assert!(r["relatedLocations"][0]["physicalLocation"]["address"]["relativeAddress"].is_u64());
    // Without a PDB: the binary address.
    let bare = predicted
        .iter()
        .find(|r| r["locations"][0]["physicalLocation"]["region"].is_null())
        .unwrap();
    assert!(bare["locations"][0]["physicalLocation"]["address"]["relativeAddress"].is_u64());
}

/// Cuts the raw data of every executable section at each length, down to
/// nothing: the sweep and the tracker must never read past it or panic.
#[test]
fn truncated_code_sections_do_not_panic() {
    for fixture in [
        Fixture::PredictClang,
        Fixture::PredictRust,
        Fixture::FlowClang,
        Fixture::FlowClangX86,
        Fixture::FlowClangArm64,
    ] {
        let bytes = fixture.bytes();
        let pe = PeImage::parse(&bytes, Layout::File).unwrap();
        let text: Vec<(usize, u32)> = pe
            .sections()
            .filter(|s| s.is_executable())
            .map(|s| (s.header_offset, s.raw_size()))
            .collect();
        let full = civctl::predict::predict(&pe).unwrap().unwrap().len();
        assert!(full > 0);
        for (header, raw_size) in text {
            for cut in (0..raw_size).step_by(3) {
                let mut b = bytes.clone();
                // SizeOfRawData at offset 16 of the section header.
                b[header + 16..header + 20].copy_from_slice(&cut.to_le_bytes());
                let pe = PeImage::parse(&b, Layout::File).unwrap();
                let sites = civctl::predict::predict(&pe).unwrap().unwrap();
                assert!(sites.len() <= full);
                let report = civctl::scan::analyze::analyze("cut.sys".into(), &b);
                assert_eq!(report.error, None);
            }
        }
        // And the file itself cut anywhere: an error or a report, no panic.
        for cut in (0..bytes.len()).step_by(61) {
            let _ = civctl::scan::analyze::analyze("cut.sys".into(), &bytes[..cut]);
        }
    }
}

/// A damaged PDB is an error, never a crash: cut and overwritten copies of
/// a real one. (civctl is built with panic=abort, so a panic in the pdb
/// crate would end the scan: none may happen, even caught.)
#[test]
fn damaged_pdbs_are_errors() {
    let pdb = std::fs::read(Fixture::PredictClang.pdb_path().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.pdb");
    let mut x: u32 = 0x9E37_79B9;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for cut in (0..pdb.len()).step_by(pdb.len() / 97 + 1) {
        std::fs::write(&path, &pdb[..cut]).unwrap();
        no_panic(civctl::symbols::Symbols::load(&path).map(|_| ()));
    }
    for round in 0..600 {
        let mut b = pdb.clone();
        // Half the rounds hit the stream directory and the first streams,
        // where a bad count or offset matters most.
        let span = if round % 2 == 0 {
            b.len().min(0x6000)
        } else {
            b.len()
        };
        for _ in 0..4 {
            let at = rand() as usize % span;
            b[at] = rand() as u8;
        }
        std::fs::write(&path, &b).unwrap();
        let loaded = civctl::symbols::Symbols::load(&path);
        if let Ok(s) = &loaded {
            let _ = s.lookup(0x1040);
        }
        no_panic(loaded.map(|_| ()));
    }
}

/// The error of a PDB load is not a caught panic.
fn no_panic(r: Result<(), String>) {
    if let Err(e) = r {
        assert!(!e.contains("malformed PDB"), "the pdb crate panicked: {e}");
    }
}
