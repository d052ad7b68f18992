//! `civctl audit` live under Wine: civctl.exe (cross-built for
//! x86_64-pc-windows-gnu) reads a real registry and service manager.
//! Kernel services of every start type are created with `sc create`
//! pointing at real corpus drivers; the audit must find each with its
//! start type, type and file, judge the files as `civctl scan` does on
//! this host, and name the command that removes them.

use civ_fixtures::wine::{self, Prefix};
use civ_fixtures::{bcrypt_stand_in, corpus_dir, corpus_expected};
use serde_json::Value;

const CIVCTL: &str = "C:\\civ\\civctl.exe";

fn sha256_of(path: &str) -> String {
    corpus_expected()
        .into_iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("{path} not in expected.tsv"))
        .sha256
}

#[test]
fn live_audit_finds_kernel_services_created_with_sc_and_their_start_types() {
    let prefix = Prefix::new("audit-live");
    prefix.put(&wine::civctl_exe(), "civctl.exe");
    prefix.put(&bcrypt_stand_in(), "bcryptprimitives.dll");
    let corpus = corpus_dir();
    prefix.put(&corpus.join("windivert-1.3/WinDivert64.sys"), "wdboot.sys");
    prefix.put(&corpus.join("windivert-2.2/WinDivert64.sys"), "wd22.sys");
    prefix.put(&corpus.join("vigembus-1.17/x64/ViGEmBus.sys"), "vigem.sys");
    // (service, type, start, file)
    let services = [
        ("civaboot", "kernel", "boot", "wdboot.sys"),
        ("civasys", "kernel", "system", "wd22.sys"),
        ("civaauto", "filesys", "auto", "vigem.sys"),
        ("civademand", "kernel", "demand", "vigem.sys"),
        ("civaoff", "kernel", "disabled", "gone.sys"),
    ];
    let mut lines = vec!["@echo off".to_string()];
    for (name, kind, start, file) in services {
        lines.push(format!(
            "sc create {name} type= {kind} start= {start} binPath= C:\\civ\\{file} group= civaudit"
        ));
    }
    lines.push(format!(
        "{CIVCTL} audit --format json > C:\\civ\\audit.json 2> C:\\civ\\audit.err"
    ));
    lines.push("echo audit rc=%errorlevel%".into());
    lines.push(format!("{CIVCTL} audit > C:\\civ\\audit.txt 2>&1"));
    let out = prefix.run("audit", &lines);
    let rc: i32 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("audit rc="))
        .unwrap_or_else(|| panic!("no rc line:\n{out}"))
        .trim()
        .parse()
        .unwrap();
    let err = String::from_utf8_lossy(&prefix.read("audit.err")).into_owned();
    let json = prefix.read("audit.json");
    let r: Value = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "audit.json is not JSON ({e}):\n{}\nstderr: {err}\n{out}",
            String::from_utf8_lossy(&json)
        )
    });
    // wdboot.sys (WinDivert 1.3) has findings: exit 1.
    assert_eq!(rc, 1, "{err}\n{r:#}");
    assert_eq!(r["schema"], "civ-audit/1");
    assert!(
        r["source"].as_str().unwrap().starts_with("HKLM\\SYSTEM"),
        "{}",
        r["source"]
    );
    let drivers = r["drivers"].as_array().unwrap();
    let by_service = |name: &str| {
        drivers
            .iter()
            .find(|d| {
                d["services"].as_array().unwrap().iter().any(|s| {
                    s["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            })
            .unwrap_or_else(|| panic!("no driver of service {name}:\n{r:#}"))
    };
    let start_value = |s: &str| match s {
        "boot" => 0,
        "system" => 1,
        "auto" => 2,
        "demand" => 3,
        _ => 4,
    };
    for (name, kind, start, file) in services {
        let d = by_service(name);
        let svc = d["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"].as_str().unwrap().eq_ignore_ascii_case(name))
            .unwrap();
        assert_eq!(svc["start"], start_value(start), "{name}");
        assert_eq!(
            svc["service_type"],
            if kind == "filesys" { 2 } else { 1 },
            "{name}"
        );
        assert_eq!(svc["group"], "civaudit", "{name}");
        assert!(
            d["path"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase()
                .ends_with(&format!("\\civ\\{file}")),
            "{name}: {}",
            d["path"]
        );
        if file == "gone.sys" {
            assert_eq!(d["verdict"], "missing", "{name}");
        }
    }
    // Two services of one file: one driver, both services, the earliest start.
    let vigem = by_service("civaauto");
    assert_eq!(vigem["services"].as_array().unwrap().len(), 2, "{vigem:#}");
    assert_eq!(vigem["start"], "auto");
    assert_eq!(
        vigem["identity"]["sha256"],
        sha256_of("vigembus-1.17/x64/ViGEmBus.sys")
    );
    // Boot and system start are marked.
    assert!(
        by_service("civaboot")["boot_critical"]
            .as_str()
            .unwrap()
            .contains("boot")
    );
    assert!(
        by_service("civasys")["boot_critical"]
            .as_str()
            .unwrap()
            .contains("system")
    );
    // The verdicts and commands: as on this host.
    let wdboot = by_service("civaboot");
    assert_eq!(
        wdboot["identity"]["sha256"],
        sha256_of("windivert-1.3/WinDivert64.sys")
    );
    assert_eq!(wdboot["verdict"], "incompatible");
    assert_eq!(wdboot["action"]["remove"], "sc delete civaboot");
    // WinDivert 2.2: the image codes the corpus's three PE readers agree
    // on, and a verdict that follows from what was found.
    let wd22 = by_service("civasys");
    let row = corpus_expected()
        .into_iter()
        .find(|r| r.path == "windivert-2.2/WinDivert64.sys")
        .unwrap();
    let codes: Vec<String> = wd22["image_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, row.codes, "{wd22:#}");
    let clean = codes.is_empty() && wd22["predicted_violations"] == serde_json::json!([]);
    assert_eq!(wd22["verdict"] == "ok", clean, "{wd22:#}");
    let text = String::from_utf8_lossy(&prefix.read("audit.txt")).into_owned();
    assert!(text.contains("remove: sc delete civaboot"), "{text}");
    assert!(
        text.contains("BOOT: service civaboot starts at boot"),
        "{text}"
    );
}
