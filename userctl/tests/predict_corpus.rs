//! Call-site prediction on the real drivers of tests/corpus: every
//! predicted site of the x64 drivers, with the disassembly of its block, is
//! compared with a reviewed snapshot (tests/snapshots/predict_corpus.txt;
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
    for row in rows.iter().filter(|r| r.machine == "AMD64") {
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
                _ => format!("unknown: {}", r.reason.as_deref().unwrap_or("?")),
            };
            writeln!(
                body,
                "-- {:#x} {} {} via {:?}: {} = {value} -> {:?}",
                r.rva, r.code, r.api, r.via, r.argument, r.verdict
            )
            .unwrap();
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
fn unknown_sites_alone_do_not_fail_the_scan() {
    // WinDivert 2.2 takes its pool type from a global: every site is
    // unknown, nothing is a finding, so the exit status is 0.
    let path = corpus_dir().join("windivert-2.2/WinDivert64.sys");
    let (code, v) = scan_json(&[&path], &[]);
    let file = &v["files"][0];
    assert_eq!(code, 0, "{file}");
    let sites = file["predicted"].as_array().unwrap();
    assert!(!sites.is_empty());
    assert!(
        sites
            .iter()
            .all(|s| s["verdict"] == "unknown" && s["value"].is_null())
    );
    assert_eq!(v["summary"]["unknown_sites"], sites.len());
    assert_eq!(v["summary"]["with_findings"], 0);
}

#[test]
fn x86_drivers_are_not_disassembled() {
    let path = corpus_dir().join("windivert-1.3/WinDivert32.sys");
    let (_, v) = scan_json(&[&path], &[]);
    assert_eq!(v["files"][0].get("predicted"), None);
}
