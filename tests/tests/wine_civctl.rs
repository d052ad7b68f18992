//! civctl.exe end to end under Wine: cross-compiled for
//! x86_64-pc-windows-gnu, run against the registry and against civ.sys (the
//! WDM build) in a Wine prefix. Every command is checked against `reg query`
//! and against the driver's own replies (the IOCTL client reads them raw),
//! with the exit codes verifier.exe would give: 0 done, 1 error, 2 reboot
//! needed.
//!
//! Each scenario is one batch file in one `wine cmd /c` (civ.sys's host
//! lives only while a Wine program runs); each civctl command is framed by
//! `==== begin NAME` / `==== end NAME rc=%errorlevel%` lines, so the test
//! reads each command's output and exit code.

use civ_engine::code::Counter;
use civ_engine::protocol::{self, GetSites, Request};
use civ_engine::settings::Action;
use civ_fixtures::wine::{self, Prefix};
use civ_fixtures::{bcrypt_stand_in, call_fixture, ioctl_probe};
use std::collections::BTreeMap;

const CIVCTL: &str = "C:\\civ\\civctl.exe";
const KEY: &str = "HKLM\\System\\CurrentControlSet\\Services\\civ\\Parameters";

/// A batch file of framed steps.
#[derive(Default)]
struct Script(Vec<String>);

impl Script {
    fn new() -> Script {
        Script(vec!["@echo off".into()])
    }

    /// Any command, stdout and stderr together.
    fn step(&mut self, name: &str, command: &str) -> &mut Script {
        self.0.push(format!("echo ==== begin {name}"));
        self.0.push(format!("{command} 2>&1"));
        self.0.push(format!("echo ==== end {name} rc=%errorlevel%"));
        self
    }

    /// A civctl command.
    fn civctl(&mut self, name: &str, args: &str) -> &mut Script {
        self.step(name, &format!("{CIVCTL} {args}"))
    }

    /// A civctl command whose stdout goes to `C:\civ\<name>.json` (stderr
    /// to `<name>.err`).
    fn json(&mut self, name: &str, args: &str) -> &mut Script {
        self.0.push(format!("echo ==== begin {name}"));
        self.0.push(format!(
            "{CIVCTL} {args} > C:\\civ\\{name}.json 2> C:\\civ\\{name}.err"
        ));
        self.0.push(format!("echo ==== end {name} rc=%errorlevel%"));
        self
    }

    /// A line as is.
    fn raw(&mut self, line: &str) -> &mut Script {
        self.0.push(line.into());
        self
    }

    /// Waits about `seconds` (Wine's ping waits a second between echoes).
    fn wait(&mut self, seconds: u32) -> &mut Script {
        self.raw(&format!("ping -n {} 127.0.0.1 >nul", seconds + 1))
    }
}

/// Each step's output and exit code, by name.
struct Steps {
    out: BTreeMap<String, (String, i32)>,
    all: String,
}

impl Steps {
    fn parse(all: String) -> Steps {
        let mut out = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in all.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(name) = line.strip_prefix("==== begin ") {
                current = Some((name.to_string(), String::new()));
            } else if let Some(rest) = line.strip_prefix("==== end ") {
                let (name, rc) = rest.rsplit_once(" rc=").expect("end line");
                let (n, text) = current.take().expect("a step began");
                assert_eq!(n, name, "steps are not nested");
                out.insert(n, (text, rc.trim().parse().expect("rc")));
            } else if let Some((_, text)) = current.as_mut() {
                text.push_str(line);
                text.push('\n');
            }
        }
        Steps { out, all }
    }

    /// A step's output and exit code.
    fn get(&self, name: &str) -> (&str, i32) {
        let (text, rc) = self
            .out
            .get(name)
            .unwrap_or_else(|| panic!("no step {name}:\n{}", self.all));
        (text.as_str(), *rc)
    }

    /// A step's output, asserting its exit code.
    fn rc(&self, name: &str, rc: i32) -> &str {
        let (text, got) = self.get(name);
        assert_eq!(got, rc, "{name}: exit code {got}, expected {rc}:\n{text}");
        text
    }

    /// A step's output, asserting its exit code and that it says each of `says`.
    fn says(&self, name: &str, rc: i32, says: &[&str]) -> &str {
        let text = self.rc(name, rc);
        for s in says {
            assert!(text.contains(s), "{name}: no '{s}' in:\n{text}");
        }
        text
    }
}

/// The values `reg query KEY` lists: name -> (type, data).
fn reg_values(text: &str) -> BTreeMap<String, (String, String)> {
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| w.starts_with("REG_"))?;
            (at == 1).then(|| {
                (
                    words[0].to_string(),
                    (words[1].to_string(), words[2..].join(" ")),
                )
            })
        })
        .collect()
}

fn expect_values(text: &str, want: &[(&str, &str, &str)]) {
    let got = reg_values(text);
    let want: BTreeMap<String, (String, String)> = want
        .iter()
        .map(|(n, t, d)| (n.to_string(), (t.to_string(), d.to_string())))
        .collect();
    assert_eq!(got, want, "reg query:\n{text}");
}

fn json(prefix: &Prefix, name: &str) -> serde_json::Value {
    let bytes = prefix.read(&format!("{name}.json"));
    let err = String::from_utf8_lossy(&prefix.read(&format!("{name}.err"))).into_owned();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{name}.json is not JSON ({e}):\n{}\nstderr: {err}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// A prefix with civctl.exe and the bcryptprimitives stand-in Rust std needs under Wine 8.
fn prefix_with_civctl(name: &str) -> Prefix {
    let prefix = Prefix::new(name);
    prefix.put(&wine::civctl_exe(), "civctl.exe");
    prefix.put(&bcrypt_stand_in(), "bcryptprimitives.dll");
    prefix
}

fn probe_line(prefix: &Prefix, name: &str, request: &Request<'_>) -> String {
    let mut input = vec![0u8; request.encoded_len().unwrap()];
    request.encode(&mut input).unwrap();
    prefix.write(&format!("{name}.in"), &input);
    format!(
        "C:\\civ\\ioctl_probe.exe C:\\civ\\{name}.in {:x} 65536 C:\\civ\\{name}.out",
        request.kind().ioctl()
    )
}

#[test]
fn enable_applies_live_to_a_driver_loaded_later_and_status_and_log_show_it() {
    let prefix = prefix_with_civctl("civctl-live");
    prefix.put(&wine::civ_sys(), "civ.sys");
    prefix.put(&call_fixture("ExAllocatePoolWithTag"), "late.sys");
    prefix.put(&ioctl_probe(), "ioctl_probe.exe");
    let mut s = Script::new();
    // Clean prefix: nothing set, civ not installed.
    s.civctl("query0", "query")
        .json("query0j", "query --format json")
        // civ not running: written, reboot needed.
        .civctl("enable0", "enable --driver fx.sys --log")
        .step("reg0", &format!("reg query {KEY}"))
        .json("query1j", "query --format json")
        .civctl("status0", "status")
        // civ.sys installed as `civ` and started: it reads fx.sys at start.
        .step(
            "create",
            "sc create civ type= kernel start= demand binPath= C:\\civ\\civ.sys group= gctl",
        )
        .step("start", "net start civ")
        .json("status1j", "status --format json")
        // Watch in the background from before late.sys loads.
        .raw(&format!(
            "start /b {CIVCTL} log --follow --for 6 --format json > C:\\civ\\follow.json 2> C:\\civ\\follow.err"
        ))
        .wait(1)
        // enable while civ runs: applies now, no reboot.
        .civctl("enable1", "enable --driver late.sys --log")
        .step("reg1", &format!("reg query {KEY}"))
        .step(
            "late",
            "sc create late type= kernel start= demand binPath= C:\\civ\\late.sys group= gctl",
        )
        .step("startlate", "net start late")
        .json("status2j", "status --format json")
        .civctl("status2", "status")
        .json("log2j", "log --format json")
        .civctl("log2", "log")
        .json("follow1", "log --follow --count 1 --format json")
        .step(
            "probe_status",
            &probe_line(&prefix, "status", &Request::GetStatus),
        )
        .step(
            "probe_sites",
            &probe_line(
                &prefix,
                "sites",
                &Request::GetSites(GetSites { start: 0, max: 100 }),
            ),
        )
        .civctl("query2", "query")
        // Let the background follow finish.
        .wait(5)
        // disable: values gone, civ stops checking new loads, reboot needed.
        .civctl("disable", "disable")
        .step("reg2", &format!("reg query {KEY}"))
        .json("query3j", "query --format json")
        .json("status3j", "status --format json")
        .step("stoplate", "net stop late")
        .step("stopciv", "net stop civ");
    let t = std::time::Instant::now();
    let steps = Steps::parse(prefix.run("civctl-live", &s.0));
    eprintln!("civctl-live: {:.1} s in Wine", t.elapsed().as_secs_f64());

    // (a) A clean prefix.
    steps.says(
        "query0",
        0,
        &["not installed (civctl install, or the INF)", "no settings"],
    );
    let q0 = json(&prefix, "query0j");
    assert_eq!(
        (q0["configured"].as_bool(), q0["installed"].as_bool()),
        (Some(false), Some(false))
    );

    // enable with civ not running: exit 2, and the three values.
    steps.says(
        "enable0",
        2,
        &[
            "reboot (or start civ) for the settings to take effect",
            "civ is not installed",
        ],
    );
    expect_values(
        steps.rc("reg0", 0),
        &[
            ("VerifyDriverLevel", "REG_DWORD", "0x2000000"),
            ("VerifyDrivers", "REG_SZ", "fx.sys"),
            ("ViolationAction", "REG_DWORD", "0x1"),
        ],
    );
    let q1 = json(&prefix, "query1j");
    assert_eq!(q1["drivers"], serde_json::json!(["fx.sys"]));
    assert_eq!(
        (q1["flags"].as_u64(), q1["action"].as_str()),
        (Some(0x0200_0000), Some("log"))
    );
    steps.says(
        "status0",
        1,
        &["civ.sys is not running: civctl install, then sc start civ / reboot"],
    );

    // civ.sys started with fx.sys as its only target.
    steps.says("start", 0, &["started successfully"]);
    let st1 = json(&prefix, "status1j");
    assert_eq!(st1["running"], true);
    assert_eq!(st1["flags_hex"], "0x02000000");
    assert_eq!(st1["action"], "log");
    assert_eq!(st1["targets"], serde_json::json!([]));

    // enable while civ runs: exit 0, applied now.
    steps.says("enable1", 0, &["the settings apply now"]);
    expect_values(
        steps.rc("reg1", 0),
        &[
            ("VerifyDriverLevel", "REG_DWORD", "0x2000000"),
            ("VerifyDrivers", "REG_SZ", "late.sys"),
            ("ViolationAction", "REG_DWORD", "0x1"),
        ],
    );
    // late.sys, not in civ's settings at its start, was caught.
    steps.says("startlate", 0, &["started successfully"]);
    let st2 = json(&prefix, "status2j");
    let late = &st2["targets"][0];
    assert_eq!(late["name"], "late.sys", "{st2}");
    assert_eq!(late["counters"]["Execute Pool Type"], 1, "{st2}");
    for c in Counter::ALL {
        if c != Counter::ExecutePoolType {
            assert_eq!(late["counters"][c.label()], 0, "{}", c.label());
        }
    }
    assert_eq!(
        (late["late"].as_bool(), late["image_checked"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(late["hooked_slots"], 1);
    let human = steps.says("status2", 0, &["late.sys  base 0x", "1 hooked slot(s)"]);
    for c in Counter::ALL {
        assert!(
            human.contains(c.label()),
            "status: no {}:\n{human}",
            c.label()
        );
    }
    let log = json(&prefix, "log2j");
    let site = &log["sites"][0];
    assert_eq!(log["total"], 1, "{log}");
    assert_eq!(site["driver"], "late.sys");
    assert_eq!(site["api"], "ExAllocatePoolWithTag");
    assert_eq!(site["code"], "0x2000");
    assert_eq!(site["arg3"], 0);
    assert_eq!(site["arg4"], u64::from(u32::from_le_bytes(*b"fxCI")));
    assert_eq!(site["hits"], 1);
    steps.says(
        "log2",
        0,
        &[
            "0x2000 Execute Pool Type  late.sys+0x",
            "(load 1)  ExAllocatePoolWithTag  hits 1  arg3 0x0",
            "POOL_TYPE NonPagedPool (executable); pool tag 'fxCI'",
            // The call site, then its caller, both in late.sys.
            "    stack: late.sys+0x",
        ],
    );
    let frames = site["stack"].as_array().expect("a call stack");
    assert!(frames.len() >= 2, "{site}");
    assert_eq!(frames[0]["offset"], site["offset"], "{site}");
    assert_eq!(frames[1]["driver"], "late.sys", "{site}");
    // --follow --count 1: the event still in civ's ring.
    steps.rc("follow1", 0);
    let f1 = String::from_utf8_lossy(&prefix.read("follow1.json")).into_owned();
    let events: Vec<serde_json::Value> = f1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{f1}");
    assert_eq!(events[0]["api"], "ExAllocatePoolWithTag");
    assert_eq!(events[0]["driver"], "late.sys");

    // civctl agrees with the driver's raw replies.
    steps.says("probe_status", 0, &["ok=1"]);
    let raw = prefix.read("status.out");
    let status = protocol::decode_reply_status(&raw).unwrap();
    let t = status.targets.get(0).expect("a target");
    assert_eq!(
        (
            t.name(),
            t.base,
            t.size,
            t.counter(Counter::ExecutePoolType)
        ),
        (
            "late.sys",
            late["base"].as_u64().unwrap(),
            late["size"].as_u64().unwrap(),
            1
        )
    );
    assert_eq!(
        (status.head.verify_level, status.head.action),
        (0x0200_0000, Action::Log)
    );
    let raw = prefix.read("sites.out");
    let sites = protocol::decode_reply_sites(&raw).unwrap();
    let s0 = sites.sites.get(0).unwrap();
    assert_eq!(
        (s0.offset, s0.arg3, s0.arg4, s0.hits),
        (
            site["offset"].as_u64().unwrap(),
            0,
            site["arg4"].as_u64().unwrap(),
            1
        )
    );
    steps.says(
        "query2",
        0,
        &["installed, running", "drivers:      late.sys"],
    );

    // The background follow saw late.sys's violation as it happened.
    let follow = String::from_utf8_lossy(&prefix.read("follow.json")).into_owned();
    let err = String::from_utf8_lossy(&prefix.read("follow.err")).into_owned();
    assert!(err.is_empty(), "follow: {err}");
    let followed: Vec<serde_json::Value> = follow
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(followed.len(), 1, "{follow}");
    assert_eq!(followed[0]["driver"], "late.sys");
    assert_eq!(followed[0]["api"], "ExAllocatePoolWithTag");

    // (e) disable: exit 2, values gone, civ.sys checks no new load.
    steps.says(
        "disable",
        2,
        &[
            "removed 3 value(s)",
            "not checked",
            "it stays in memory until a reboot removes it",
        ],
    );
    expect_values(steps.rc("reg2", 0), &[]);
    let q3 = json(&prefix, "query3j");
    assert_eq!(
        (q3["configured"].as_bool(), q3["running"].as_bool()),
        (Some(false), Some(true))
    );
    let st3 = json(&prefix, "status3j");
    assert_eq!(st3["flags"], 0);
    assert_eq!(st3["action"], "log", "disable keeps the action in force");
    // civ.sys hooked late.sys: its unload at `net stop` leaves every hook.
    assert!(
        steps.all.contains("civ now sits in a driver's calls")
            && steps
                .all
                .contains("civ: stopping, but drivers call into civ"),
        "{}",
        steps.all
    );
}

#[test]
fn verifier_syntax_and_bad_input_behave_as_verifier_does() {
    let prefix = prefix_with_civctl("civctl-syntax");
    let long = format!("{}.sys", "x".repeat(70));
    let mut s = Script::new();
    // (b) verifier's forms and civctl's write the same values.
    s.civctl("v_enable", "/flags 0x02000000 /driver a.sys b.sys")
        .step("v_reg", &format!("reg query {KEY}"))
        .civctl("c_enable", "enable --flags 0x02000000 --driver a.sys b.sys")
        .step("c_reg", &format!("reg query {KEY}"))
        .civctl("v_query", "/querysettings")
        .civctl("c_query", "query")
        .json("v_queryj", "/querysettings --format json")
        .civctl(
            "v_enable2",
            "/flags 33554433 /driver c.sys /log.code_integrity",
        )
        .step("v_reg2", &format!("reg query {KEY}"))
        .json("v_query2j", "/querysettings --format json")
        .civctl("v_reset", "/reset")
        .step("v_reg3", &format!("reg query {KEY}"))
        .civctl("c_reset", "reset")
        .civctl("v_status", "/query")
        // (c) bad input: a message and exit 1, nothing written.
        .civctl("bad_flags", "enable --driver a.sys --flags 0xZZ")
        .civctl("v_bad_flags", "/flags 0xZZ /driver a.sys")
        .civctl("bad_path", "enable --driver C:\\drivers\\a.sys")
        .civctl("bad_space", "enable --driver \"a b.sys\"")
        .civctl("bad_long", &format!("enable --driver {long}"))
        .civctl("no_driver", "enable --flags 0x02000000")
        .civctl("v_standard", "/standard /driver a.sys")
        .civctl("status", "status")
        .civctl("log", "log")
        .civctl("uninstall", "uninstall")
        .civctl("install_missing", "install --sys C:\\civ\\missing.sys")
        .step("reg_after", &format!("reg query {KEY}"));
    let t = std::time::Instant::now();
    let steps = Steps::parse(prefix.run("civctl-syntax", &s.0));
    eprintln!("civctl-syntax: {:.1} s in Wine", t.elapsed().as_secs_f64());

    let written = [
        ("VerifyDriverLevel", "REG_DWORD", "0x2000000"),
        ("VerifyDrivers", "REG_SZ", "a.sys b.sys"),
        ("ViolationAction", "REG_DWORD", "0x0"),
    ];
    steps.says("v_enable", 2, &["reboot (or start civ)"]);
    expect_values(steps.rc("v_reg", 0), &written);
    steps.says("c_enable", 2, &["reboot (or start civ)"]);
    expect_values(steps.rc("c_reg", 0), &written);
    let v = steps.says(
        "v_query",
        0,
        &["drivers:      a.sys b.sys", "action:       bugcheck (0)"],
    );
    assert_eq!(v, steps.rc("c_query", 0), "/querysettings is query");
    let q = json(&prefix, "v_queryj");
    assert_eq!(q["drivers"], serde_json::json!(["a.sys", "b.sys"]));

    steps.rc("v_enable2", 2);
    expect_values(
        steps.rc("v_reg2", 0),
        &[
            ("VerifyDriverLevel", "REG_DWORD", "0x2000001"),
            ("VerifyDrivers", "REG_SZ", "c.sys"),
            ("ViolationAction", "REG_DWORD", "0x1"),
        ],
    );
    let q2 = json(&prefix, "v_query2j");
    assert_eq!(q2["flag_bits"][0]["bit"], "0x00000001");
    assert_eq!(q2["flag_bits"][0]["used"], false);
    assert!(
        q2["notes"][0]
            .as_str()
            .unwrap()
            .contains("flags other than 0x02000000"),
        "{q2}"
    );
    steps.says("v_reset", 2, &["removed 3 value(s)"]);
    expect_values(steps.rc("v_reg3", 0), &[]);
    steps.says("c_reset", 0, &["no civ settings to remove"]);
    steps.says("v_status", 1, &["civ.sys is not running"]);

    steps.says("bad_flags", 1, &["'0xZZ' is not a hex number"]);
    steps.says("v_bad_flags", 1, &["'0xZZ' is not a hex number"]);
    steps.says("bad_path", 1, &["is a path", "(a.sys)"]);
    steps.says("bad_space", 1, &["space"]);
    steps.says("bad_long", 1, &["at most 64 bytes"]);
    steps.says("no_driver", 1, &["--driver"]);
    steps.says("v_standard", 1, &["does not implement"]);
    for cmd in ["status", "log"] {
        steps.says(
            cmd,
            1,
            &["civ.sys is not running: civctl install, then sc start civ / reboot"],
        );
    }
    steps.says(
        "uninstall",
        1,
        &["civ is not installed (civctl install, or the INF)"],
    );
    steps.says("install_missing", 1, &["cannot read C:\\civ\\missing.sys"]);
    expect_values(steps.rc("reg_after", 0), &[]);
}

#[test]
fn install_and_uninstall_the_wdm_service() {
    let prefix = prefix_with_civctl("civctl-install");
    prefix.put(&wine::civ_sys(), "civ.sys");
    let svc = "HKLM\\System\\CurrentControlSet\\Services\\civ";
    let file = "C:\\windows\\system32\\drivers\\civ.sys";
    let mut s = Script::new();
    s.civctl("install", "install --sys C:\\civ\\civ.sys --start demand")
        .step("sc_query", "sc query civ")
        .step("reg", &format!("reg query {svc}"))
        .step(
            "file",
            &format!("if exist {file} (echo present) else (echo absent)"),
        )
        .civctl("again", "install --sys C:\\civ\\civ.sys")
        .step("start", "net start civ")
        .step("sc_running", "sc query civ")
        .civctl("status", "status")
        .civctl("query", "query")
        .civctl("uninstall", "uninstall")
        .step("sc_gone", "sc query civ")
        .step("reg_gone", &format!("reg query {svc}"))
        .step(
            "file_gone",
            &format!("if exist {file} (echo present) else (echo absent)"),
        )
        .civctl("status_gone", "status")
        .civctl("uninstall_again", "uninstall");
    let t = std::time::Instant::now();
    let steps = Steps::parse(prefix.run("civctl-install", &s.0));
    eprintln!("civctl-install: {:.1} s in Wine", t.elapsed().as_secs_f64());

    steps.says(
        "install",
        0,
        &["installed service civ: kernel driver, start demand, group \"Boot Bus Extender\""],
    );
    steps.says("sc_query", 0, &["SERVICE_NAME: civ", "STOPPED"]);
    let reg = reg_values(steps.rc("reg", 0));
    let get = |n: &str| reg.get(n).map(|(t, d)| (t.as_str(), d.as_str()));
    assert_eq!(get("Type"), Some(("REG_DWORD", "0x1")), "kernel driver");
    assert_eq!(get("Start"), Some(("REG_DWORD", "0x3")), "demand start");
    assert_eq!(get("Group"), Some(("REG_SZ", "Boot Bus Extender")));
    assert_eq!(
        get("ImagePath"),
        Some(("REG_SZ", "\\SystemRoot\\System32\\drivers\\civ.sys"))
    );
    // (`if` leaves %errorlevel% as it was: only the text counts.)
    assert!(steps.get("file").0.contains("present"), "{}", steps.all);
    steps.says("again", 1, &["already exists"]);
    steps.says("start", 0, &["started successfully"]);
    steps.says("sc_running", 0, &["RUNNING"]);
    let running = format!(
        "civ.sys 0.1.0 (protocol {}), running since",
        civ_engine::protocol::PROTOCOL_VERSION
    );
    steps.says("status", 0, &[running.as_str()]);
    steps.says("query", 0, &["installed, running"]);
    steps.says("uninstall", 0, &["stopped civ.sys", "deleted service civ"]);
    let (gone, _) = steps.get("sc_gone");
    assert!(!gone.contains("SERVICE_NAME: civ"), "{gone}");
    let (_, rc) = steps.get("reg_gone");
    assert_ne!(rc, 0, "the service key is gone");
    assert!(steps.get("file_gone").0.contains("absent"), "{}", steps.all);
    steps.says(
        "status_gone",
        1,
        &["civ.sys is not running", "civ is not installed"],
    );
    steps.says("uninstall_again", 1, &["civ is not installed"]);
}
