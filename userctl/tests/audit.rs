//! `civctl audit --root` over offline Windows trees made here from the
//! real corpus drivers: a SYSTEM hive written with Debian's hivex
//! (hivexsh) holding services of each start type, Driver Store folders
//! with INF files written for them, and an INF folder with their
//! `oemNN.inf` copies. The JSON is checked field by field against what
//! the tree was made of, the corpus's expected.tsv, and `civctl scan`'s
//! own verdicts; the block lists are files written here in Microsoft's
//! SiPolicy XML and LOLDrivers' CSV/JSON forms.

use serde_json::Value;
use sha1::{Digest, Sha1};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

/// A minimal empty hive (base block, one bin, a root key and its security
/// cell): hivex edits hives but does not create them.
fn empty_hive() -> Vec<u8> {
    fn cell(body: &[u8]) -> Vec<u8> {
        let size = (body.len() + 4).div_ceil(8) * 8;
        let mut c = (-(size as i32)).to_le_bytes().to_vec();
        c.extend_from_slice(body);
        c.resize(size, 0);
        c
    }
    let nk = |sk: u32| {
        let mut b = b"nk".to_vec();
        b.extend_from_slice(&0x2Cu16.to_le_bytes()); // root, no delete, ASCII name
        b.extend_from_slice(&[0; 8 + 4 + 4 + 4 + 4]); // time, spare, parent, subkeys, volatile
        b.extend_from_slice(&u32::MAX.to_le_bytes()); // subkey list
        b.extend_from_slice(&u32::MAX.to_le_bytes()); // volatile list
        b.extend_from_slice(&0u32.to_le_bytes()); // values
        b.extend_from_slice(&u32::MAX.to_le_bytes()); // value list
        b.extend_from_slice(&sk.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes()); // class
        b.extend_from_slice(&[0; 20]);
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(b"ROOT");
        b
    };
    let sk_at = 0x20 + cell(&nk(0)).len() as u32;
    let sd = [
        1u8, 0, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut sk = b"sk\0\0".to_vec();
    for v in [sk_at, sk_at, 1, sd.len() as u32] {
        sk.extend_from_slice(&v.to_le_bytes());
    }
    sk.extend_from_slice(&sd);
    let mut bin = b"hbin".to_vec();
    bin.extend_from_slice(&0u32.to_le_bytes());
    bin.extend_from_slice(&4096u32.to_le_bytes());
    bin.resize(32, 0);
    bin.extend(cell(&nk(sk_at)));
    bin.extend(cell(&sk));
    let free = 4096 - bin.len();
    bin.extend_from_slice(&(free as i32).to_le_bytes());
    bin.resize(4096, 0);
    let mut base = vec![0u8; 4096];
    base[..4].copy_from_slice(b"regf");
    for (i, v) in [1u32, 1, 0, 0, 1, 3, 0, 1, 0x20, 4096, 1]
        .iter()
        .enumerate()
    {
        base[4 + 4 * i..8 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    let sum = (0..127).fold(0u32, |a, i| {
        a ^ u32::from_le_bytes(base[4 * i..4 * i + 4].try_into().unwrap())
    });
    base[508..512].copy_from_slice(&sum.to_le_bytes());
    base.extend(bin);
    base
}

/// A service for the hive.
struct Svc<'a> {
    name: &'a str,
    kind: u32,
    start: u32,
    image: &'a str,
    group: Option<&'a str>,
}

/// hivexsh lines that go to a key from the root, adding the parts not
/// made yet, and set its values.
fn add_key(made: &mut BTreeSet<String>, path: &str, values: &[String]) -> String {
    let mut s = String::from("cd \\\n");
    let mut at = String::new();
    for part in path.split('\\') {
        at.push_str(part);
        at.push('\\');
        if made.insert(at.clone()) {
            s.push_str(&format!("add {part}\n"));
        }
        s.push_str(&format!("cd {part}\n"));
    }
    if !values.is_empty() {
        s.push_str(&format!("setval {}\n", values.len() / 2));
        for v in values {
            s.push_str(v);
            s.push('\n');
        }
    }
    s
}

fn multi_sz(items: &[&str]) -> String {
    let mut bytes = Vec::new();
    for i in items {
        for u in i.encode_utf16().chain([0]) {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
    }
    bytes.extend_from_slice(&[0, 0]);
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("hex:7:{}", hex.join(","))
}

/// Writes a SYSTEM hive with hivexsh: `set` is the control set in force;
/// each (set, services) pair goes under ControlSet00N.
fn write_hive(path: &Path, current: u32, sets: &[(u32, &[Svc<'_>])], disallowed: &[&str]) {
    std::fs::write(path, empty_hive()).unwrap();
    let mut made = BTreeSet::new();
    let mut script = add_key(
        &mut made,
        "Select",
        &["Current".into(), format!("dword:{current}")],
    );
    for (n, services) in sets {
        let set = format!("ControlSet{n:03}");
        script.push_str(&add_key(&mut made, &format!("{set}\\Services"), &[]));
        for s in *services {
            let mut v = vec![
                "Type".into(),
                format!("dword:{}", s.kind),
                "Start".into(),
                format!("dword:{}", s.start),
                "ImagePath".into(),
                format!("expandstring:{}", s.image),
            ];
            if let Some(g) = s.group {
                v.extend(["Group".into(), format!("string:{g}")]);
            }
            script.push_str(&add_key(
                &mut made,
                &format!("{set}\\Services\\{}", s.name),
                &v,
            ));
        }
        if !disallowed.is_empty() {
            script.push_str(&add_key(
                &mut made,
                &format!("{set}\\Control\\CI"),
                &["HvciDisallowedImages".into(), multi_sz(disallowed)],
            ));
        }
    }
    script.push_str("commit\n");
    let mut child = Command::new("hivexsh")
        .arg("-w")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hivexsh (apt-get install libhivex-bin; scripts/setup.sh does)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "hivexsh failed:\n{}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn corpus(path: &str) -> PathBuf {
    civ_fixtures::corpus_dir().join(path)
}

fn expected_sha256(path: &str) -> String {
    civ_fixtures::corpus_expected()
        .into_iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("{path} not in expected.tsv"))
        .sha256
}

fn put(root: &Path, rel: &str, from: &Path) {
    let to = root.join(rel);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

fn write(root: &Path, rel: &str, text: &str) {
    let to = root.join(rel);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(&to, text).unwrap();
}

fn inf(
    provider: &str,
    class: &str,
    version: &str,
    service: &str,
    binary: &str,
    start: u32,
) -> String {
    format!(
        "[Version]\r\nSignature=\"$WINDOWS NT$\"\r\nClass={class}\r\nProvider=%P%\r\nDriverVer=01/02/2020,{version}\r\n\
         [Install.NTamd64.Services]\r\nAddService={service},0x2,Svc ; the service\r\n\
         [Svc]\r\nServiceType=1\r\nStartType={start}\r\nServiceBinary=%13%\\{binary}\r\n\
         [SourceDisksFiles]\r\n{binary}=1\r\n[Strings]\r\nP=\"{provider}\"\r\n"
    )
}

const STORE: &str = "Windows/System32/DriverStore/FileRepository";
const VIGEM_DIR: &str = "vigembus.inf_amd64_0a1b2c3d";
const WD32_DIR: &str = "windivert.inf_x86_9f8e7d6c";

/// The Windows tree: services of every start type (in ControlSet002, the
/// one Select\Current names; ControlSet001 holds a decoy), two Driver
/// Store packages (one installed, one not), the INF folder's copies.
fn make_tree(root: &Path, disallowed: &[&str]) {
    put(
        root,
        "Windows/System32/drivers/wdboot.sys",
        &corpus("windivert-1.3/WinDivert64.sys"),
    );
    put(
        root,
        "Windows/System32/drivers/wd22.sys",
        &corpus("windivert-2.2/WinDivert64.sys"),
    );
    put(
        root,
        "Tools/fsd.sys",
        &corpus("vigembus-1.17/x86/ViGEmBus.sys"),
    );
    put(
        root,
        &format!("{STORE}/{VIGEM_DIR}/ViGEmBus.sys"),
        &corpus("vigembus-1.17/x64/ViGEmBus.sys"),
    );
    put(
        root,
        &format!("{STORE}/{WD32_DIR}/x86/WinDivert32.sys"),
        &corpus("windivert-1.3/WinDivert32.sys"),
    );
    let vigem_inf = inf(
        "Nefarius Software Solutions e.U.",
        "System",
        "1.17.333.0",
        "ViGEmBus",
        "ViGEmBus.sys",
        3,
    );
    let wd_inf = inf(
        "Basil",
        "Net",
        "1.3.0.0",
        "WinDivert13",
        "WinDivert32.sys",
        3,
    );
    write(
        root,
        &format!("{STORE}/{VIGEM_DIR}/vigembus.inf"),
        &vigem_inf,
    );
    write(root, &format!("{STORE}/{WD32_DIR}/windivert.inf"), &wd_inf);
    write(root, "Windows/INF/oem3.inf", &vigem_inf);
    write(root, "Windows/INF/oem5.inf", &wd_inf);
    write(root, "Windows/INF/oem9.inf", "[Version]\r\nClass=Other\r\n");
    let services = [
        Svc {
            name: "WdBoot",
            kind: 1,
            start: 0,
            image: "\\SystemRoot\\System32\\drivers\\wdboot.sys",
            group: Some("Boot Bus Extender"),
        },
        Svc {
            name: "Wd22",
            kind: 1,
            start: 1,
            image: "System32\\drivers\\wd22.sys",
            group: None,
        },
        Svc {
            name: "Fsd",
            kind: 2,
            start: 2,
            image: "\\??\\C:\\Tools\\fsd.sys",
            group: None,
        },
        Svc {
            name: "ViGEmBus",
            kind: 1,
            start: 3,
            image: &format!(
                "\\SystemRoot\\System32\\DriverStore\\FileRepository\\{VIGEM_DIR}\\ViGEmBus.sys"
            ),
            group: Some("Extended Base"),
        },
        Svc {
            name: "Ghost",
            kind: 1,
            start: 4,
            image: "System32\\drivers\\ghost.sys",
            group: None,
        },
        Svc {
            name: "Spooler",
            kind: 0x110,
            start: 2,
            image: "C:\\Windows\\System32\\spoolsv.exe",
            group: None,
        },
    ];
    let decoy = [Svc {
        name: "Decoy",
        kind: 1,
        start: 0,
        image: "System32\\drivers\\wdboot.sys",
        group: None,
    }];
    std::fs::create_dir_all(root.join("Windows/System32/config")).unwrap();
    write_hive(
        &root.join("Windows/System32/config/SYSTEM"),
        2,
        &[(1, &decoy), (2, &services)],
        disallowed,
    );
}

fn audit_json(root: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args: Vec<std::ffi::OsString> = vec![
        "audit".into(),
        "--format".into(),
        "json".into(),
        "--root".into(),
        root.into(),
    ];
    args.extend(extra.iter().map(|s| s.into()));
    let (code, out, err) = common::civctl(args);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}\n{err}"));
    (code, v, err)
}

fn driver<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no driver {name} in {report:#}"))
}

/// What the audit's verdict must be for a file, from `civctl scan`'s own
/// report of it.
fn scan_verdict(path: &Path) -> &'static str {
    let r = civctl::scan::scan_file(path);
    assert!(r.error.is_none(), "{:?}", r.error);
    let violations = r.predicted_count(civctl::predict::Verdict::Violation);
    if violations > 0 || r.findings.iter().any(|f| !f.init && f.code != "relocs") {
        "incompatible"
    } else if !r.findings.is_empty() {
        "review"
    } else {
        "ok"
    }
}

#[test]
fn offline_tree_is_inventoried_and_judged_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(root, &["\\SystemRoot\\System32\\drivers\\WD22.SYS"]);
    let (code, r, err) = audit_json(root, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(r["schema"], "civ-audit/1");
    assert!(
        r["source"].as_str().unwrap().ends_with("(ControlSet002)"),
        "{}",
        r["source"]
    );
    let mut names: Vec<&str> = r["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    names.sort();
    // The decoy control set and the Win32 service are not there.
    assert_eq!(
        names,
        [
            "ViGEmBus.sys",
            "WinDivert32.sys",
            "fsd.sys",
            "ghost.sys",
            "wd22.sys",
            "wdboot.sys"
        ]
    );
    // Services, start types, sources, boot marks.
    let cases = [
        (
            "wdboot.sys",
            "WdBoot",
            1,
            "boot",
            true,
            "windivert-1.3/WinDivert64.sys",
        ),
        (
            "wd22.sys",
            "Wd22",
            1,
            "system",
            true,
            "windivert-2.2/WinDivert64.sys",
        ),
        (
            "fsd.sys",
            "Fsd",
            2,
            "auto",
            false,
            "vigembus-1.17/x86/ViGEmBus.sys",
        ),
        (
            "ViGEmBus.sys",
            "ViGEmBus",
            1,
            "demand",
            false,
            "vigembus-1.17/x64/ViGEmBus.sys",
        ),
    ];
    for (name, service, kind, start, boot, corpus_path) in cases {
        let d = driver(&r, name);
        assert_eq!(d["services"][0]["name"], service, "{name}");
        assert_eq!(d["services"][0]["service_type"], kind, "{name}");
        assert_eq!(d["start"], start, "{name}");
        assert_eq!(
            d["boot_critical"].is_string(),
            boot,
            "{name}: {}",
            d["boot_critical"]
        );
        assert_eq!(
            d["identity"]["sha256"],
            expected_sha256(corpus_path),
            "{name}"
        );
        assert!(
            d["sources"].as_array().unwrap().contains(&"service".into()),
            "{name}"
        );
        let file = PathBuf::from(d["path"].as_str().unwrap());
        assert!(
            file.starts_with(root) && file.is_file(),
            "{name}: {}",
            file.display()
        );
        // The version resource gives the version and vendor.
        assert!(
            d["version"]
                .as_str()
                .is_some_and(|v| v.split('.').count() == 4),
            "{name}"
        );
        assert!(d["vendor"].is_string(), "{name}");
        // Image codes: at least those three PE readers agree on.
        let row = civ_fixtures::corpus_expected()
            .into_iter()
            .find(|x| x.path == corpus_path)
            .unwrap();
        let codes: Vec<&str> = d["image_findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        for c in &row.codes {
            assert!(codes.contains(&c.as_str()), "{name}: {c} not in {codes:?}");
        }
    }
    // The boot group alone marks a driver too, and the start type.
    assert!(
        driver(&r, "wdboot.sys")["boot_critical"]
            .as_str()
            .unwrap()
            .contains("boot")
    );
    // HvciDisallowedImages (written as a path) blocks wd22.sys.
    let wd22 = driver(&r, "wd22.sys");
    assert_eq!(wd22["hvci_disallowed"], true);
    assert_eq!(wd22["verdict"], "blocked");
    assert_eq!(
        r["disallowed_images"][0],
        "\\SystemRoot\\System32\\drivers\\WD22.SYS"
    );
    assert_eq!(wd22["action"]["remove"], "sc delete Wd22");
    // The others: the verdict scan gives.
    for name in ["wdboot.sys", "fsd.sys", "ViGEmBus.sys", "WinDivert32.sys"] {
        let d = driver(&r, name);
        assert_eq!(
            d["verdict"],
            scan_verdict(Path::new(d["path"].as_str().unwrap())),
            "{name}"
        );
    }
    // The installed package: linked to its service, published as oem3.inf.
    let vigem = driver(&r, "ViGEmBus.sys");
    assert_eq!(
        vigem["sources"],
        serde_json::json!(["service", "driver-store"])
    );
    assert_eq!(vigem["package"]["folder"], VIGEM_DIR);
    assert_eq!(vigem["package"]["published"], "oem3.inf");
    assert_eq!(
        vigem["package"]["provider"],
        "Nefarius Software Solutions e.U."
    );
    assert_eq!(vigem["package"]["class"], "System");
    assert_eq!(vigem["package"]["services"][0]["start"], 3);
    if vigem["verdict"] != "ok" {
        assert_eq!(
            vigem["action"]["remove"],
            "pnputil /delete-driver oem3.inf /uninstall"
        );
        assert_eq!(vigem["action"]["newer_version_fixes"], true);
    }
    // The package no service loads: from the store alone, oem5.inf.
    let wd32 = driver(&r, "WinDivert32.sys");
    assert_eq!(wd32["sources"], serde_json::json!(["driver-store"]));
    assert_eq!(wd32["services"], serde_json::json!([]));
    assert_eq!(wd32["package"]["published"], "oem5.inf");
    assert_eq!(
        wd32["identity"]["sha256"],
        expected_sha256("windivert-1.3/WinDivert32.sys")
    );
    if wd32["verdict"] != "ok" {
        assert_eq!(
            wd32["action"]["remove"],
            "pnputil /delete-driver oem5.inf /uninstall"
        );
    }
    // A service whose file is gone: missing, not a finding.
    let ghost = driver(&r, "ghost.sys");
    assert_eq!(ghost["verdict"], "missing");
    assert_eq!(ghost["start"], "disabled");
    assert!(ghost.get("action").is_none());
    // The boot-start driver with a finding is flagged as such.
    let wdboot = driver(&r, "wdboot.sys");
    assert_eq!(wdboot["verdict"], "incompatible");
    assert_eq!(wdboot["action"]["remove"], "sc delete WdBoot");
    assert!(r["summary"]["boot_critical_findings"].as_u64().unwrap() >= 1);
    assert_eq!(r["summary"]["drivers"], 6);
    assert_eq!(r["summary"]["missing"], 1);
    assert_eq!(r["summary"]["blocked"], 1);

    // CSV: a header and one row per driver, the same verdicts.
    let (code, csv_text, _) =
        common::civctl(["audit", "--format", "csv", "--root", root.to_str().unwrap()]);
    assert_eq!(code, 1);
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let headers: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(headers, civctl::audit::output::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 6);
    for row in &rows {
        let d = driver(&r, &row[0]);
        assert_eq!(&row[2], d["verdict"].as_str().unwrap());
        assert_eq!(&row[12], d["identity"]["sha256"].as_str().unwrap_or(""));
    }
    // Human: the table, the commands, the boot warning.
    let (code, text, _) = common::civctl(["audit", "--root", root.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(text.contains("remove: sc delete WdBoot"), "{text}");
    assert!(
        text.contains("BOOT: service WdBoot starts at boot"),
        "{text}"
    );
    assert!(text.contains("6 driver(s): 1 blocked"), "{text}");
}

#[test]
fn a_clean_tree_exits_0_and_bad_input_exits_2_without_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(
        root,
        "Windows/System32/drivers/wd22.sys",
        &corpus("windivert-2.2/WinDivert64.sys"),
    );
    std::fs::create_dir_all(root.join("Windows/System32/config")).unwrap();
    let only = [Svc {
        name: "Wd22",
        kind: 1,
        start: 3,
        image: "System32\\drivers\\wd22.sys",
        group: None,
    }];
    write_hive(
        &root.join("Windows/System32/config/SYSTEM"),
        1,
        &[(1, &only)],
        &[],
    );
    assert_eq!(
        scan_verdict(&root.join("Windows/System32/drivers/wd22.sys")),
        "ok"
    );
    let (code, r, err) = audit_json(root, &[]);
    assert_eq!(code, 0, "{err}\n{r:#}");
    assert_eq!(r["drivers"][0]["verdict"], "ok");

    let list = |name: &str, text: &str| {
        let p = root.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let bad = [
        (
            vec![
                "--blocklist".to_string(),
                list(
                    "bad.xml",
                    "<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"><FileRules>",
                ),
            ],
            "not XML",
        ),
        (
            vec!["--blocklist".to_string(), list("other.xml", "<Policy/>")],
            "not a SiPolicy",
        ),
        (
            vec![
                "--blocklist".to_string(),
                list(
                    "none.xml",
                    "<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"/>",
                ),
            ],
            "denies nothing",
        ),
        (
            vec![
                "--blocklist".to_string(),
                root.join("absent.xml").to_str().unwrap().to_string(),
            ],
            "absent.xml",
        ),
        (
            vec![
                "--loldrivers".to_string(),
                list(
                    "bad.csv",
                    "Id,KnownVulnerableSamples_SHA256,KnownVulnerableSamples_Authentihash_SHA256\n1,\"a\n",
                ),
            ],
            "row",
        ),
        (
            vec![
                "--loldrivers".to_string(),
                list("cols.csv", "Id,Hash\n1,2\n"),
            ],
            "not LOLDrivers",
        ),
        (
            vec!["--loldrivers".to_string(), list("bad.json", "[{\"Id\": 1,")],
            "not JSON",
        ),
    ];
    for (args, says) in bad {
        let mut a = vec![
            "audit".to_string(),
            "--root".into(),
            root.to_str().unwrap().into(),
        ];
        a.extend(args.clone());
        let (code, out, err) = common::civctl(&a);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: a report was printed: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // No Windows folder; a Windows folder without a hive; a broken hive.
    let (code, _, err) =
        common::civctl(["audit", "--root", root.join("Windows").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no Windows folder"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("Windows")).unwrap();
    let (code, _, err) = common::civctl(["audit", "--root", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no SYSTEM hive"), "{err}");
    write(empty.path(), "Windows/System32/config/SYSTEM", "not a hive");
    let (code, _, err) = common::civctl(["audit", "--root", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("SYSTEM"), "{err}");
    // Without --root, off Windows: a clear error.
    let (code, _, err) = common::civctl(["audit"]);
    assert_eq!(code, 2);
    assert!(err.contains("--root"), "{err}");
}

/// The first page's SHA-1 as a "Hash Page" rule holds it, computed here
/// from the PE headers: the headers without the checksum and the
/// certificate-table entry, zero-padded to 4 KiB.
fn page_sha1(data: &[u8]) -> String {
    let pe = u32::from_le_bytes(data[0x3c..0x40].try_into().unwrap()) as usize;
    let opt = pe + 24;
    let magic = u16::from_le_bytes(data[opt..opt + 2].try_into().unwrap());
    let checksum = opt + 64;
    let dirs = opt + if magic == 0x20b { 112 } else { 96 };
    let cert_dir = dirs + 4 * 8;
    let headers = u32::from_le_bytes(data[opt + 60..opt + 64].try_into().unwrap()) as usize;
    let mut page = Vec::new();
    page.extend_from_slice(&data[..checksum]);
    page.extend_from_slice(&data[checksum + 4..cert_dir]);
    page.extend_from_slice(&data[cert_dir + 8..headers.min(4096)]);
    page.resize(4096, 0);
    Sha1::digest(&page)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[test]
fn block_rules_and_loldrivers_match_by_hash_page_hash_name_version_and_signer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_tree(root, &[]);
    let (_, plain, _) = audit_json(root, &[]);
    let id = |name: &str| driver(&plain, name)["identity"].clone();

    // ViGEmBus x64 by its Authenticode SHA-256, as its vendor's signature
    // carries it.
    let vigem_auth = id("ViGEmBus.sys")["authenticode"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // wdboot.sys by its first page's SHA-1, computed here.
    let wdboot = std::fs::read(corpus("windivert-1.3/WinDivert64.sys")).unwrap();
    let page = page_sha1(&wdboot);
    // wd22.sys by OriginalFileName and a version range holding only its
    // version (WinDivert 1.3 has the same OriginalFileName, an older one).
    let wd22 = id("wd22.sys");
    let wd22_name = wd22["version"]["original_filename"]
        .as_str()
        .unwrap()
        .to_string();
    let wd22_version = wd22["version"]["file_version"]
        .as_str()
        .unwrap()
        .to_string();
    // WinDivert32.sys by its signer: a CA certificate's TBS hash, the
    // publisher's CN, and a FileAttrib up to its version.
    let wd32 = id("WinDivert32.sys");
    let sig = &wd32["signature"];
    let publisher = sig["publisher"].as_str().unwrap().to_string();
    let ca_tbs = sig["certificates"][1]["tbs_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let wd32_name = wd32["version"]["original_filename"]
        .as_str()
        .unwrap()
        .to_string();
    let wd32_version = wd32["version"]["file_version"]
        .as_str()
        .unwrap()
        .to_string();
    // fsd.sys's signer named only in the user-mode scenario: not a driver rule.
    let fsd_tbs = id("fsd.sys")["signature"]["certificates"][0]["tbs_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy">
  <VersionEx>10.0.27685.0</VersionEx>
  <FileRules>
    <Allow ID="ID_ALLOW_ALL_1" FriendlyName="" FileName="*" />
    <Deny ID="ID_DENY_VIGEM_SHA256" FriendlyName="ViGEmBus Hash Sha256" Hash="{vigem_auth}" />
    <Deny ID="ID_DENY_WDBOOT_PAGE_SHA1" FriendlyName="wdboot Hash Page Sha1" Hash="{page}" />
    <Deny ID="ID_DENY_WD22" FriendlyName="" FileName="{wd22_name}" MinimumFileVersion="{wd22_version}" MaximumFileVersion="{wd22_version}" />
    <Deny ID="ID_DENY_WD22_NEWER" FriendlyName="" FileName="{wd22_name}" MinimumFileVersion="65535.0.0.0" />
    <FileAttrib ID="ID_FILEATTRIB_WD32" FriendlyName="" FileName="{wd32_name}" MinimumFileVersion="0.0.0.0" MaximumFileVersion="{wd32_version}" />
    <FileAttrib ID="ID_FILEATTRIB_WD32_OLD" FriendlyName="" FileName="{wd32_name}" MaximumFileVersion="0.0.0.1" />
  </FileRules>
  <Signers>
    <Signer ID="ID_SIGNER_WD32" Name="CA">
      <CertRoot Type="TBS" Value="{ca_tbs}" />
      <CertPublisher Value="{publisher}" />
      <FileAttribRef RuleID="ID_FILEATTRIB_WD32" />
    </Signer>
    <Signer ID="ID_SIGNER_WD32_OLD" Name="CA">
      <CertRoot Type="TBS" Value="{ca_tbs}" />
      <CertPublisher Value="{publisher}" />
      <FileAttribRef RuleID="ID_FILEATTRIB_WD32_OLD" />
    </Signer>
    <Signer ID="ID_SIGNER_WRONG_PUBLISHER" Name="CA">
      <CertRoot Type="TBS" Value="{ca_tbs}" />
      <CertPublisher Value="Someone Else" />
    </Signer>
    <Signer ID="ID_SIGNER_FSD_UMCI" Name="leaf">
      <CertRoot Type="TBS" Value="{fsd_tbs}" />
    </Signer>
  </Signers>
  <SigningScenarios>
    <SigningScenario Value="131" ID="ID_SIGNINGSCENARIO_DRIVERS_1" FriendlyName="drivers">
      <ProductSigners>
        <DeniedSigners>
          <DeniedSigner SignerId="ID_SIGNER_WD32" />
          <DeniedSigner SignerId="ID_SIGNER_WD32_OLD" />
          <DeniedSigner SignerId="ID_SIGNER_WRONG_PUBLISHER" />
        </DeniedSigners>
      </ProductSigners>
    </SigningScenario>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="user mode">
      <ProductSigners>
        <DeniedSigners>
          <DeniedSigner SignerId="ID_SIGNER_FSD_UMCI" />
        </DeniedSigners>
      </ProductSigners>
    </SigningScenario>
  </SigningScenarios>
</SiPolicy>
"#
    );
    let xml_path = root.join("SiPolicy.xml");
    std::fs::write(&xml_path, xml).unwrap();
    let (code, r, err) = audit_json(root, &["--blocklist", xml_path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        r["blocklist"]["entries"]
            .as_str()
            .unwrap()
            .starts_with("2 hash rule(s), 2 file rule(s), 3 denied signer(s)"),
        "{}",
        r["blocklist"]
    );
    let rules = |name: &str| -> Vec<(String, String)> {
        driver(&r, name)["blocklist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["rule"].as_str().unwrap().to_string(),
                    m["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        rules("ViGEmBus.sys"),
        [pair("ID_DENY_VIGEM_SHA256", "hash")]
    );
    // wdboot.sys is WinDivert 1.3 too: same signer, OriginalFileName and
    // version as WinDivert32.sys, so the signer rule denies it as well.
    let wdboot_id = id("wdboot.sys");
    assert_eq!(wdboot_id["signature"]["publisher"], sig["publisher"]);
    assert_eq!(
        wdboot_id["version"]["original_filename"],
        wd32["version"]["original_filename"]
    );
    assert_eq!(
        wdboot_id["version"]["file_version"],
        wd32["version"]["file_version"]
    );
    assert!(
        wdboot_id["signature"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["tbs_hash"] == ca_tbs.as_str())
    );
    assert_eq!(
        rules("wdboot.sys"),
        [
            pair("ID_DENY_WDBOOT_PAGE_SHA1", "page-hash"),
            pair("ID_SIGNER_WD32", "signer")
        ]
    );
    assert_eq!(rules("wd22.sys"), [pair("ID_DENY_WD22", "file")]);
    assert_eq!(rules("WinDivert32.sys"), [pair("ID_SIGNER_WD32", "signer")]);
    assert_eq!(rules("fsd.sys"), []);
    for name in ["ViGEmBus.sys", "wdboot.sys", "wd22.sys", "WinDivert32.sys"] {
        assert_eq!(driver(&r, name)["verdict"], "blocked", "{name}");
        // A version range or hash rule: a newer version is the usual fix.
        assert_eq!(
            driver(&r, name)["action"]["newer_version_fixes"],
            true,
            "{name}"
        );
    }

    // LOLDrivers: fsd.sys by its file SHA-256 (among others in the cell),
    // wd22.sys by its Authentihash; as CSV and as JSON.
    let fsd_sha = expected_sha256("vigembus-1.17/x86/ViGEmBus.sys");
    let wd22_auth = wd22["authenticode"]["sha256"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let other = "0".repeat(64);
    let csv_text = format!(
        "\"Id\",\"Category\",\"KnownVulnerableSamples_MD5\",\"KnownVulnerableSamples_SHA1\",\"KnownVulnerableSamples_SHA256\",\"KnownVulnerableSamples_Authentihash_SHA1\",\"KnownVulnerableSamples_Authentihash_SHA256\",\"Tags\"\n\
         \"aaaa-1\",\"vulnerable driver\",\"\",\"\",\"{other}, {fsd_sha}\",\"\",\"\",\"fsd.sys\"\n\
         \"bbbb-2\",\"malicious\",\"\",\"\",\"\",\"\",\"{other}, {wd22_auth}\",\"wd22.sys, x.sys\"\n\
         \"cccc-3\",\"vulnerable driver\",\"\",\"\",\"{other}\",\"\",\"\",\"none.sys\"\n"
    );
    let json_text = serde_json::json!([
        {"Id": "aaaa-1", "Category": "vulnerable driver", "Tags": ["fsd.sys"],
         "KnownVulnerableSamples": [{"SHA256": other}, {"SHA256": fsd_sha.to_uppercase()}]},
        {"Id": "bbbb-2", "Category": "malicious", "Tags": ["wd22.sys"],
         "KnownVulnerableSamples": [{"Authentihash": {"SHA256": wd22_auth, "SHA1": "", "MD5": ""}}]},
    ])
    .to_string();
    for (file, text) in [("drivers.csv", csv_text), ("drivers.json", json_text)] {
        let p = root.join(file);
        std::fs::write(&p, text).unwrap();
        let (code, r, err) = audit_json(root, &["--loldrivers", p.to_str().unwrap()]);
        assert_eq!(code, 1, "{file}: {err}");
        let fsd = driver(&r, "fsd.sys");
        assert_eq!(fsd["loldrivers"][0]["id"], "aaaa-1", "{file}");
        assert_eq!(fsd["loldrivers"][0]["by"], "file sha256", "{file}");
        assert_eq!(fsd["verdict"], "blocked", "{file}");
        let w = driver(&r, "wd22.sys");
        assert_eq!(w["loldrivers"][0]["id"], "bbbb-2", "{file}");
        assert_eq!(w["loldrivers"][0]["by"], "authentihash sha256", "{file}");
        // Malicious: no version is the fix.
        assert_eq!(w["action"]["newer_version_fixes"], false, "{file}");
        assert_eq!(
            driver(&r, "ViGEmBus.sys")["loldrivers"],
            serde_json::json!([]),
            "{file}"
        );
    }
}
