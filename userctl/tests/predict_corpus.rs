//! Call-site prediction on the real drivers of tests/corpus: every
//! predicted site of the x64, x86 and ARM64 drivers, with its verdict's
//! reason and the disassembly of its block, is compared with a reviewed
//! snapshot (tests/snapshots/predict_corpus.txt;
//! `CIV_BLESS=1 cargo test -p civctl --test predict_corpus` rewrites it for
//! review after a deliberate change).

mod common;
use civ_engine::pe::{Layout, PeImage};
use civ_fixtures::{corpus_dir, corpus_expected};
use civctl::predict::{self, PredictedSite, Verdict, disasm};
use common::scan_json;
use std::fmt::Write;

/// Instructions shown before each call, at most.
const CONTEXT: usize = 14;

fn snapshot() -> String {
    let corpus = corpus_dir();
    let mut rows = corpus_expected();
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    let mut summary = String::new();
    let mut body = String::new();
    writeln!(
        summary,
        "{:<32} {:>5} {:>8} {:>10} {:>7} {:>7}",
        "driver", "sites", "constant", "violations", "clean", "unknown"
    )
    .unwrap();
    for row in rows
        .iter()
        .filter(|r| matches!(r.machine.as_str(), "AMD64" | "I386" | "ARM64"))
    {
        let data = std::fs::read(corpus.join(&row.path)).unwrap();
        let pe = PeImage::parse(&data, Layout::File).unwrap();
        let Some(sites) = predict::predict(&pe).unwrap() else {
            continue;
        };
        let sections = predict::code_sections(&pe);
        let count = |v: Verdict| sites.iter().filter(|s| s.verdict == v).count();
        let constant = sites.iter().filter(|s| s.value.is_some()).count();
        writeln!(
            summary,
            "{:<32} {:>5} {:>8} {:>10} {:>7} {:>7}",
            row.path,
            sites.len(),
            constant,
            count(Verdict::Violation),
            count(Verdict::Clean),
            count(Verdict::Unknown)
        )
        .unwrap();
        writeln!(body, "\n== {}", row.path).unwrap();
        for s in &sites {
            let r = PredictedSite::from_site(s);
            let value = match (r.value, &r.value_name) {
                (Some(v), Some(n)) => format!("{v:#x} ({n})"),
                _ => "not one constant".into(),
            };
            writeln!(
                body,
                "-- {:#x} {} {} via {:?}: {} = {value} -> {:?}",
                r.rva, r.code, r.api, r.via, r.argument, r.verdict
            )
            .unwrap();
            writeln!(body, "   because {}", r.reason.as_deref().unwrap_or("?")).unwrap();
            for line in disasm::site_lines(&pe, &sections, s, CONTEXT) {
                writeln!(body, "     {line}").unwrap();
            }
        }
    }
    summary + &body
}

#[test]
fn corpus_sites_match_the_reviewed_snapshot() {
    let got = snapshot();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/predict_corpus.txt");
    if std::env::var_os("CIV_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "predicted corpus sites differ from {} at line {}:\n  got:  {:?}\n  want: {:?}\n\
             (review, then CIV_BLESS=1 to accept)",
            path.display(),
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        );
    }
}

#[test]
fn windivert_2_2_opts_in_to_nx_pool_and_is_clean_on_windows_8() {
    // WinDivert 2.2 is built with POOL_NX_OPTIN=1: every pool type and
    // mapping priority is read from the globals ExInitializeDriverRuntime
    // sets after its version test. Every site is clean, on Windows 8 and
    // later, and says where the globals are set.
    let path = corpus_dir().join("windivert-2.2/WinDivert64.sys");
    let (code, v) = scan_json(&[&path], &[]);
    let file = &v["files"][0];
    assert_eq!(code, 0, "{file}");
    let sites = file["predicted"].as_array().unwrap();
    assert_eq!(sites.len(), 9);
    for s in sites {
        assert_eq!(s["verdict"], "clean", "{s}");
        assert!(s["value"].is_null(), "{s}");
        let reason = s["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("clean on Windows 8 and later"),
            "{reason}"
        );
        assert!(reason.contains("RtlGetVersion"), "{reason}");
        let store = if s["api"] == "ExAllocatePoolWithTag" {
            "the global at 0x12130 holds 0x0 from the image, is set to 0x200 at 0x2f21"
        } else {
            "the global at 0x12138 holds 0x0 from the image, is set to 0x40000000 at 0x2f2b"
        };
        assert!(reason.contains(store), "{reason}");
    }
    assert_eq!(v["summary"]["unknown_sites"], 0);
    assert_eq!(v["summary"]["with_findings"], 0);
}

#[test]
fn x86_drivers_are_predicted_too() {
    // The 32-bit builds of WinDivert 1.3 make the same calls as the 64-bit
    // one: pushed arguments, stdcall.
    let path = corpus_dir().join("windivert-1.3/WinDivert32.sys");
    let (_, v) = scan_json(&[&path], &[]);
    let sites = v["files"][0]["predicted"].as_array().unwrap().clone();
    let (_, v64) = scan_json(&[&corpus_dir().join("windivert-1.3/WinDivert64.sys")], &[]);
    let sites64 = v64["files"][0]["predicted"].as_array().unwrap();
    let count = |s: &[serde_json::Value], verdict: &str| {
        s.iter().filter(|x| x["verdict"] == verdict).count()
    };
    assert_eq!(sites.len(), sites64.len(), "{sites:#?}");
    assert_eq!(count(&sites, "violation"), count(sites64, "violation"));
    assert!(sites.iter().all(|s| s["value"].is_u64()), "{sites:#?}");
}

#[test]
fn winfsp_is_resolved_alike_on_arm64_x64_and_x86() {
    // WinFsp 2.1's driver, one source built by MSVC for ARM64 and x64:
    // every site is clean on both, each for a reason a careful reader
    // gives.
    let site = |sites: &[serde_json::Value], rva: u64| -> serde_json::Value {
        sites
            .iter()
            .find(|s| s["rva"] == rva)
            .unwrap_or_else(|| panic!("no site at {rva:#x}"))
            .clone()
    };
    let mut all = Vec::new();
    for (path, n) in [
        ("winfsp-2.1/winfsp-a64.sys", 67),
        ("winfsp-2.1/winfsp-x64.sys", 66),
    ] {
        let (code, v) = scan_json(&[&corpus_dir().join(path)], &[]);
        let sites = v["files"][0]["predicted"].as_array().unwrap().clone();
        assert_eq!(code, 0, "{path}");
        assert_eq!(sites.len(), n, "{path}");
        for s in &sites {
            assert_eq!(s["verdict"], "clean", "{path}: {s}");
        }
        all.push(sites);
    }
    let (a64, x64) = (&all[0], &all[1]);
    // ARM64: MSVC loads 0x40000010 from a literal pool beside the code.
    let s = site(a64, 0x10a5c);
    assert_eq!(s["value"], 0x4000_0010u64, "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("set by `ldr w5, $+0x490`"),
        "{s}"
    );
    // ARM64: a pool type chosen by csel between two clean constants.
    let s = site(a64, 0x1b7f0);
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("chosen by `csel w0, w10, w8, ne` at 0x1b728 between 0x200"),
        "{s}"
    );
    // x64: the same choice reads the NX opt-in's global.
    let s = site(x64, 0x1dacf);
    let r = s["reason"].as_str().unwrap();
    assert!(
        r.starts_with("clean on Windows 8 and later: PoolType is chosen by `cmovne ecx, [0A2E0h]`"),
        "{r}"
    );
    // x64: the wrapper's callers, one of which passes `lea ecx, [rax+1]`
    // where `test rax, rax` / `jne` found rax zero, one the global, one
    // the choice.
    let s = site(x64, 0x44ff);
    let callers = s["callers"].as_array().unwrap();
    assert!(callers.iter().all(|c| c["verdict"] == "clean"), "{s}");
    let by = |rva: u64| callers.iter().find(|c| c["rva"] == rva).unwrap().clone();
    assert_eq!(by(0x17fe1)["value"], 1, "{s}");
    assert!(by(0x1da28)["value"].is_null(), "{s}");
    let r = s["reason"].as_str().unwrap();
    assert!(
        r.contains("0x1da28 passes the global at 0xa2e0 (clean on Windows 8 and later")
            && r.contains("0x1da08 passes the value `cmovne ecx, [0A2E0h]` at 0x1da01 chooses"),
        "{r}"
    );

    // The x86 build: the same, but for one parameter read through ebp
    // after calls (the stack is forgotten at an x86 call).
    let (_, v) = scan_json(&[&corpus_dir().join("winfsp-2.1/winfsp-x86.sys")], &[]);
    let x86 = v["files"][0]["predicted"].as_array().unwrap().clone();
    assert_eq!(x86.len(), 66);
    let unknown: Vec<&serde_json::Value> = x86.iter().filter(|s| s["verdict"] != "clean").collect();
    assert_eq!(unknown.len(), 1, "{unknown:#?}");
    assert_eq!(unknown[0]["rva"], 0x3d62);
    assert!(
        unknown[0]["reason"]
            .as_str()
            .unwrap()
            .contains("`push dword ptr [ebp+8]`")
    );
    // Arguments pushed after a store through ebp (which stays the frame
    // pointer across calls): the constant pushed.
    let s = site(&x86, 0x8736);
    assert_eq!(s["value"], 1, "{s}");
    // Two paths into the call's block, the NX opt-in's global on one and
    // `xor ecx, ecx` / `inc ecx` on the other.
    let r = site(&x86, 0x1606d)["reason"].as_str().unwrap().to_string();
    assert!(
        r.starts_with(
            "clean on Windows 8 and later: PoolType differs between the 2 paths into 0x1605f"
        ) && r.contains("0x1 (PagedPool)"),
        "{r}"
    );
}
