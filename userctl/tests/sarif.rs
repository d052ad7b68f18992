//! civctl's SARIF output is valid SARIF 2.1.0: checked against the OASIS
//! schema (sarif-2.1.0-rtm.5.json), with one rule per code and one result
//! per finding.

mod common;
use civ_fixtures::Fixture;
use common::civctl;
use std::path::PathBuf;

fn schema_path() -> PathBuf {
    let p = std::env::var_os("CIV_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/civ-sarif/sarif-2.1.0-rtm.5.json")
        });
    assert!(
        p.exists(),
        "SARIF schema missing at {}: run scripts/fetch-test-data.sh",
        p.display()
    );
    p
}

#[test]
fn sarif_is_valid_and_complete() {
    let text = std::fs::read_to_string(schema_path()).unwrap();
    // rtm.5's pattern for run.language has a stray `]` that strict regex
    // engines reject; escape it (the meaning lenient engines give it).
    let bad = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#;
    let fixed = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$""#;
    let schema: serde_json::Value = serde_json::from_str(&text.replace(bad, fixed)).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad name.sys");
    std::fs::write(&bad, b"MZ").unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["scan".into(), "--format".into(), "sarif".into()];
    let fixtures = [
        Fixture::Clean,
        Fixture::WriteExecuteInit,
        Fixture::LowAlignment,
        Fixture::IatInText,
        Fixture::StraddlingReloc,
        // Predicted violations, located in the source (clang, with a PDB)
        // and in the image (mingw, without).
        Fixture::PredictClang,
        Fixture::PredictMingw,
    ];
    args.extend(fixtures.iter().map(|f| f.path().into_os_string()));
    args.push(bad.clone().into_os_string());
    let (code, out, _) = civctl(args);
    assert_eq!(code, 2);
    let log: serde_json::Value = serde_json::from_str(&out).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "invalid SARIF: {errors:#?}");
    // The validator does reject what is not SARIF 2.1.0.
    let mut broken = log.clone();
    broken["version"] = "2.0.0".into();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(validator.iter_errors(&broken).count() >= 2);
    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "0x2000", "0x2001", "0x2002", "0x2003", "0x2004", "relocs", "0x2005"
        ]
    );
    let results = run["results"].as_array().unwrap();
    for id in [
        "0x2000", "0x2001", "0x2002", "0x2003", "0x2004", "0x2005", "relocs",
    ] {
        assert!(results.iter().any(|r| r["ruleId"] == id), "no {id} result");
    }
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx], r["ruleId"].as_str().unwrap());
    }
    // The INIT finding is a warning, the others errors.
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "0x2003" && r["level"] == "warning")
    );
    assert_eq!(run["artifacts"].as_array().unwrap().len(), fixtures.len());
    let notes = run["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0]["message"]["text"]
            .as_str()
            .unwrap()
            .contains("bad name.sys")
    );
    assert_eq!(run["invocations"][0]["executionSuccessful"], false);
}
