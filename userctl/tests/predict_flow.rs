//! The data-flow side of call-site prediction, on flow.c built from source
//! for x64, 32-bit x86 and ARM64 (clang + lld-link, with a PDB): each
//! `civ-site` marker's call gets the verdict a careful reader gives it, and
//! the reason names the evidence (the driver runtime's NX opt-in and its
//! version test, known bits, the paths, the wrapper's callers).

mod common;
use civ_fixtures::Fixture;
use common::scan_json;
use serde_json::Value;
use std::collections::BTreeMap;

/// The line of each `civ-site: NAME` marker.
fn markers(fixture: Fixture) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(fixture.source_path()).expect("source");
    text.lines()
        .enumerate()
        .filter_map(|(n, l)| {
            let (_, rest) = l.split_once("civ-site: ")?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            // The header's "`civ-site: NAME`" is not a marker.
            (name != "NAME").then_some((name, n as u64 + 1))
        })
        .collect()
}

/// The one predicted site on each marker's line.
fn sites(fixture: Fixture) -> BTreeMap<String, Value> {
    let (status, v) = scan_json(&[&fixture.path()], &[]);
    assert_eq!(status, 1, "the fixture has predicted violations");
    let file = &v["files"][0];
    assert!(file["pdb"].is_string(), "{file}");
    let all = file["predicted"].as_array().expect("predicted").clone();
    let lines = markers(fixture);
    assert_eq!(all.len(), lines.len(), "one site per marker: {all:#?}");
    lines
        .into_iter()
        .map(|(name, line)| {
            let on: Vec<&Value> = all.iter().filter(|s| s["line"] == line).collect();
            assert_eq!(on.len(), 1, "{name} (line {line}): {all:#?}");
            (name, on[0].clone())
        })
        .collect()
}

fn reason(site: &Value) -> &str {
    site["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {site}"))
}

fn check(fixture: Fixture) {
    let what = fixture.file_name();
    let s = sites(fixture);
    let verdict = |m: &str| s[m]["verdict"].as_str().unwrap().to_string();
    let value = |m: &str| s[m]["value"].as_u64();

    // The driver runtime's NX opt-in: the pool type and the mapping
    // protection come from the driver's globals, set to the NX values after
    // RtlGetVersion's answer is tested.
    for (m, stored) in [
        ("flow-optin-pool", "0x200"),
        ("flow-optin-mdl", "0x40000000"),
    ] {
        assert_eq!(verdict(m), "clean", "{what} {m}: {}", s[m]);
        assert_eq!(value(m), None, "{what} {m}");
        let r = reason(&s[m]);
        assert!(
            r.starts_with("clean on Windows 8 and later"),
            "{what} {m}: {r}"
        );
        assert!(
            r.contains(&format!("is set to {stored} at ")),
            "{what} {m}: {r}"
        );
        assert!(
            r.contains("after RtlGetVersion (call at "),
            "{what} {m}: {r}"
        );
        assert!(r.contains("the version test `cmp "), "{what} {m}: {r}");
        assert!(r.contains("holds 0x0 from the image"), "{what} {m}: {r}");
    }
    // A global never set to NX stays NonPagedPool: a violation.
    assert_eq!(verdict("flow-never-set"), "violation", "{what}");
    assert_eq!(value("flow-never-set"), Some(0), "{what}");
    assert!(
        reason(&s["flow-never-set"]).contains("never written"),
        "{what}"
    );
    // A global set from memory: unknown, and the reason names the store.
    assert_eq!(verdict("flow-picked"), "unknown", "{what}");
    assert!(
        reason(&s["flow-picked"]).contains("writes it with a value not known"),
        "{what}: {}",
        s["flow-picked"]
    );

    // Known bits: `| 0x40000010` and `bts 30` set MdlMappingNoExecute
    // whatever the rest; `& 0xF` clears it.
    for (m, v) in [
        ("flow-bits-or", "clean"),
        ("flow-bits-bts", "clean"),
        ("flow-bits-and", "violation"),
    ] {
        assert_eq!(verdict(m), v, "{what} {m}: {}", s[m]);
        assert_eq!(value(m), None, "{what} {m}");
        assert!(
            reason(&s[m]).contains("its known bits decide"),
            "{what} {m}"
        );
    }

    // A constant the ARM64 code loads from a literal pool in its (read-only)
    // code: the constant, and the `ldr` that loads it.
    assert_eq!(
        verdict("flow-literal"),
        "clean",
        "{what}: {}",
        s["flow-literal"]
    );
    assert_eq!(value("flow-literal"), Some(0x4000_0010), "{what}");
    if fixture == Fixture::FlowClangArm64 {
        let r = reason(&s["flow-literal"]);
        assert!(r.contains("is a constant, set by `ldr w"), "{what}: {r}");
    }

    // A conditional move or select between two values: judged for both.
    assert_eq!(
        verdict("flow-choice"),
        "clean",
        "{what}: {}",
        s["flow-choice"]
    );
    let r = reason(&s["flow-choice"]);
    assert!(r.contains("is chosen by `"), "{what}: {r}");
    assert!(
        r.contains("0x1 (PagedPool)") && r.contains("0x200 (NonPagedPoolNx)"),
        "{what}: {r}"
    );
    assert!(r.contains("clean either way"), "{what}: {r}");
    // One of the two NonPagedPool: not one answer, and said so.
    assert_eq!(verdict("flow-choice-mixed"), "unknown", "{what}");
    let r = reason(&s["flow-choice-mixed"]);
    assert!(
        r.contains("0x0 (NonPagedPool) (a violation)") && r.contains("not one answer"),
        "{what}: {r}"
    );

    // On the path where `test r, r` / `cbnz` found a register zero, it is:
    // `flags + 1` is PagedPool there.
    assert_eq!(verdict("flow-zero"), "clean", "{what}: {}", s["flow-zero"]);
    assert_eq!(value("flow-zero"), Some(1), "{what}");

    // A value set before a branch and live across it: the constant, set
    // before the call inside the branch.
    assert_eq!(verdict("flow-branch"), "clean", "{what}");
    assert_eq!(value("flow-branch"), Some(0x200), "{what}");
    let set_at = s["flow-branch"]["reason_rva"].as_u64().unwrap();
    assert!(
        set_at < s["flow-branch-inner"]["rva"].as_u64().unwrap(),
        "{what}: set before the branch: {}",
        s["flow-branch"]
    );
    assert_eq!(value("flow-branch-inner"), Some(0x40), "{what}");
    // Paths that disagree: unknown, and said so with each path's value
    // (the ARM64 analysis does not follow the stack, where the unoptimized
    // function keeps it).
    assert_eq!(verdict("flow-paths-differ"), "unknown", "{what}");
    let r = reason(&s["flow-paths-differ"]);
    if fixture == Fixture::FlowClangArm64 {
        assert!(r.contains("`ldr w0, [sp"), "{what}: {r}");
    } else {
        assert!(
            r.contains("differs between the 2 paths into ")
                && r.contains("0x0 (NonPagedPool) (a violation)")
                && r.contains("0x200 (NonPagedPoolNx) (clean)"),
            "{what}: {r}"
        );
    }

    // Paths that disagree, each clean: clean either way (x86 and x64; the
    // ARM64 build keeps the value on the stack, which it does not follow).
    let r = reason(&s["flow-paths-agree"]);
    if fixture == Fixture::FlowClangArm64 {
        assert_eq!(verdict("flow-paths-agree"), "unknown", "{what}: {r}");
    } else {
        assert_eq!(verdict("flow-paths-agree"), "clean", "{what}: {r}");
        assert!(
            r.contains("differs between the 2 paths into ")
                && r.contains("0x1 (PagedPool)")
                && r.contains("clean either way"),
            "{what}: {r}"
        );
    }

    // Wrappers: the verdict is over what each caller passes.
    let callers = |m: &str| -> Vec<(u64, String)> {
        s[m]["callers"]
            .as_array()
            .unwrap_or_else(|| panic!("{what} {m}: no callers: {}", s[m]))
            .iter()
            .map(|c| {
                (
                    c["value"].as_u64().unwrap(),
                    c["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(verdict("flow-wrapper-mixed"), "violation", "{what}");
    let mut mixed = callers("flow-wrapper-mixed");
    mixed.sort();
    assert_eq!(
        mixed,
        [(0, "violation".to_string()), (0x200, "clean".to_string())],
        "{what}"
    );
    assert_eq!(verdict("flow-wrapper-nx"), "clean", "{what}");
    let mut nx = callers("flow-wrapper-nx");
    nx.sort();
    assert_eq!(
        nx,
        [(0x200, "clean".to_string()), (0x201, "clean".to_string())],
        "{what}"
    );
    // The reason points at a caller, whose line the PDB gives.
    assert!(
        reason(&s["flow-wrapper-mixed"]).contains("its callers: "),
        "{what}"
    );
}

#[test]
fn x64_flow_patterns_are_resolved_with_their_evidence() {
    check(Fixture::FlowClang);
}

#[test]
fn x86_stdcall_flow_patterns_are_resolved_with_their_evidence() {
    check(Fixture::FlowClangX86);
}

#[test]
fn arm64_flow_patterns_are_resolved_with_their_evidence() {
    check(Fixture::FlowClangArm64);
}

#[test]
fn predicting_decodes_only_the_functions_that_matter() {
    // x64 with .pdata: the byte scan picks the functions; fewer bytes than
    // the code are decoded. x86 (no .pdata) is swept whole.
    for (fixture, whole) in [(Fixture::FlowClang, false), (Fixture::FlowClangX86, true)] {
        let bytes = fixture.bytes();
        let pe = civ_engine::pe::PeImage::parse(&bytes, civ_engine::pe::Layout::File).unwrap();
        let p = civctl::predict::predict_with_cost(&pe).unwrap().unwrap();
        assert!(p.code > 0 && !p.sites.is_empty());
        if whole {
            assert!(
                p.decoded >= p.code,
                "{}: {} of {}",
                fixture.file_name(),
                p.decoded,
                p.code
            );
        } else {
            assert!(
                p.decoded < p.code,
                "{}: {} of {}",
                fixture.file_name(),
                p.decoded,
                p.code
            );
        }
    }
}

#[test]
fn sarif_says_why_a_site_without_one_constant_is_a_violation() {
    let path = Fixture::FlowClang.path();
    let (code, out, _) = common::civctl([
        "scan".as_ref(),
        "--format".as_ref(),
        "sarif".as_ref(),
        path.as_os_str(),
    ]);
    assert_eq!(code, 1);
    let log: Value = serde_json::from_str(&out).unwrap();
    let messages: Vec<&str> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["properties"]["predicted"] == true)
        .map(|r| r["message"]["text"].as_str().unwrap())
        .collect();
    // The wrapper's violation: its callers are the evidence.
    assert!(
        messages
            .iter()
            .any(|m| m.contains("not one constant") && m.contains("its callers: ")),
        "{messages:#?}"
    );
    assert!(messages.iter().all(|m| !m.contains(" ?:")), "{messages:#?}");
}
