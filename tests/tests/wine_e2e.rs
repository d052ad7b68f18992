//! civ.sys end to end under Wine: the portable WDM build, linked here with
//! rust-lld, loaded as a kernel service with fixture target drivers built
//! from source (Rust and C). It hooks them as they load, catches their
//! executable requests with DV's code and arguments and the call stack of
//! each site's first hit, leaves their NX requests alone, answers civctl's
//! IOCTLs (well-formed or not), notices targets that unload, and, once it
//! has hooked anything, refuses to unload until reboot.

use civ_engine::code::Counter;
use civ_engine::pe::{Layout, PeImage};
use civ_engine::protocol::{
    self, GetEvents, GetSites, Kind, Request, SetSettings, TargetRecord, Targets,
};
use civ_engine::settings::Action;
use civ_fixtures::wine::{self, Prefix};
use civ_fixtures::{Fixture, WINE_APIS, c_fixture, call_fixture, guard_fixture, ioctl_probe};
use std::path::PathBuf;

mod rows;

/// The fixtures of the runtime scenarios: (API or "pool_c", file name, path).
fn runtime_fixtures() -> Vec<(String, String, PathBuf)> {
    let mut v: Vec<(String, String, PathBuf)> = WINE_APIS
        .iter()
        .map(|api| {
            (
                api.to_string(),
                format!("call_{api}.sys"),
                call_fixture(api),
            )
        })
        .collect();
    v.push(("pool_c".into(), "pool_c.sys".into(), c_fixture()));
    v
}

/// Batch lines that send one request through the IOCTL client; the reply
/// lands in `C:\civ\<name>.out`.
fn probe(prefix: &Prefix, name: &str, ioctl: u32, input: &[u8], out_size: usize) -> String {
    prefix.write(&format!("{name}.in"), input);
    format!("C:\\civ\\ioctl_probe.exe C:\\civ\\{name}.in {ioctl:x} {out_size} C:\\civ\\{name}.out")
}

fn encode(r: &Request<'_>) -> (u32, Vec<u8>) {
    let mut buf = vec![0u8; r.encoded_len().unwrap()];
    r.encode(&mut buf).unwrap();
    (r.kind().ioctl(), buf)
}

#[test]
fn log_mode_records_every_violation_and_serves_it_over_ioctl() {
    let prefix = Prefix::new("log");
    prefix.put(&wine::civ_sys(), "civ.sys");
    prefix.put(&ioctl_probe(), "ioctl_probe.exe");
    let fixtures = runtime_fixtures();
    let mut lines = wine::install_civ(
        "civlog",
        "glog",
        "0x02000000",
        "call_*.sys pool_c.sys clean.sys wx_data.sys",
        1,
    );
    lines.push("net start civlog".into());
    for (i, (_, file, path)) in fixtures.iter().enumerate() {
        prefix.put(path, file);
        lines.extend(wine::install_and_start(&format!("fx{i}"), "glog", file));
    }
    for f in [Fixture::Clean, Fixture::WriteExecuteData] {
        prefix.put(&f.path(), f.file_name());
        lines.extend(wine::install_and_start(
            f.file_name().trim_end_matches(".sys"),
            "glog",
            f.file_name(),
        ));
    }
    // The reads civctl makes.
    let requests = [
        ("version", encode(&Request::QueryVersion), 64),
        ("status", encode(&Request::GetStatus), 16384),
        (
            "sites",
            encode(&Request::GetSites(GetSites { start: 0, max: 100 })),
            16384,
        ),
        (
            "events",
            encode(&Request::GetEvents(GetEvents {
                since_seq: 0,
                max: 100,
            })),
            16384,
        ),
    ];
    for (name, (code, input), size) in &requests {
        lines.push(probe(&prefix, name, *code, input, *size));
    }
    // Bad requests: a clear status each, and the driver goes on.
    let (status_code, status_in) = encode(&Request::GetStatus);
    let (_, version_in) = encode(&Request::QueryVersion);
    let mut bad_magic = status_in.clone();
    bad_magic[0] ^= 0xFF;
    let bad: Vec<(&str, u32, Vec<u8>, usize)> = vec![
        ("empty", status_code, vec![], 4096),
        ("short", status_code, status_in[..7].to_vec(), 4096),
        ("magic", status_code, bad_magic, 4096),
        ("oversized", status_code, vec![0x41; 20000], 4096),
        ("wrongkind", status_code, version_in, 4096),
        ("unknown", 0x0022_3FFC, status_in.clone(), 4096),
        ("tinyout", status_code, status_in.clone(), 4),
    ];
    for (name, code, input, size) in &bad {
        lines.push(probe(&prefix, name, *code, input, *size));
    }
    // civctl enable while civ runs: new settings take effect at once.
    let names = ["later.sys"];
    let (set_code, set_in) = encode(&Request::SetSettings(SetSettings {
        verify_level: 0x0200_0000,
        action: Action::Log,
        targets: Targets::new(&names),
    }));
    lines.push(probe(&prefix, "set", set_code, &set_in, 64));
    lines.push(probe(&prefix, "status2", status_code, &status_in, 16384));
    // A target unloads: the next status says so.
    lines.push("net stop fx0".into());
    lines.push(probe(&prefix, "status3", status_code, &status_in, 16384));
    lines.push("net stop civlog".into());
    let out = prefix.run("log", &lines);

    let hooked = wine::hooked(&out);
    let results = wine::probe_results(&out);
    assert_eq!(
        results.len(),
        requests.len() + bad.len() + 3,
        "every IOCTL answered:\n{out}"
    );
    for (i, (name, ..)) in requests.iter().enumerate() {
        assert!(results[i].0, "{name} failed: {:?}\n{out}", results[i]);
    }
    let version = protocol::decode_reply_version(&prefix.read("version.out")).unwrap();
    assert_eq!(version.protocol, protocol::PROTOCOL_VERSION);

    // Status: every fixture hooked, with exactly its one violation.
    let status_bytes = prefix.read("status.out");
    let status = protocol::decode_reply_status(&status_bytes).unwrap();
    assert_eq!(
        (status.head.verify_level, status.head.action),
        (0x0200_0000, Action::Log)
    );
    let targets: Vec<TargetRecord> = status.targets.iter().collect();
    let sites_bytes = prefix.read("sites.out");
    let sites = protocol::decode_reply_sites(&sites_bytes).unwrap();
    assert_eq!(sites.dropped, 0);
    for (api, file, path) in &fixtures {
        // The C fixture calls from DriverEntry itself: its caller is Wine's.
        let t = rows::check(
            &out,
            &targets,
            &sites,
            (api, file, path),
            file != "pool_c.sys",
        );
        assert_eq!(
            t.flags & TargetRecord::LATE,
            0,
            "{file} was loaded after civ"
        );
        // `call_*.sys` matched a pattern; pool_c.sys was named.
        assert_eq!(
            t.flags & TargetRecord::NAMED != 0,
            file == "pool_c.sys",
            "{file}: named or by pattern"
        );
        assert_ne!(t.flags & TargetRecord::IMAGE_CHECKED, 0, "{file}");
        let h = hooked.iter().find(|h| &h.name == file).unwrap();
        assert_eq!(
            (h.base, h.size),
            (t.base, t.size),
            "{file}: status agrees with civ's log line"
        );
    }
    let clean = targets
        .iter()
        .find(|t| t.name() == "clean.sys")
        .expect("clean.sys is a target");
    assert!(
        Counter::ALL.iter().all(|c| clean.counter(*c) == 0),
        "clean.sys has no violation"
    );
    assert_eq!(clean.hooked_slots, 3);
    let wx = targets
        .iter()
        .find(|t| t.name() == "wx_data.sys")
        .expect("wx_data.sys is a target");
    assert_eq!(
        wx.counter(Counter::ExecuteWriteSection),
        1,
        "log mode records the image finding"
    );
    let wx_index = targets
        .iter()
        .position(|t| t.name() == "wx_data.sys")
        .unwrap();
    let finding = sites
        .sites
        .iter()
        .find(|s| usize::from(s.target) == wx_index)
        .expect("the image finding is a site");
    assert_eq!(
        finding.arg4.to_le_bytes(),
        *b".data\0\0\0",
        "the log keeps the section's name"
    );

    // Events: one per violation, none lost.
    let events_bytes = prefix.read("events.out");
    let events = protocol::decode_reply_events(&events_bytes).unwrap();
    assert_eq!(events.lost, 0);
    assert_eq!(events.events.len(), fixtures.len() + 1);

    // Bad requests: refused with a status (ERROR_* as Wine maps NTSTATUS).
    for (i, (name, ..)) in bad.iter().enumerate() {
        let (ok, error, _) = results[requests.len() + i];
        assert!(
            !ok && error != 0,
            "{name} was accepted: {:?}",
            results[requests.len() + i]
        );
    }
    assert_eq!(
        results[requests.len() + 5].1,
        1,
        "an unknown IOCTL is ERROR_INVALID_FUNCTION"
    );

    // SetSettings took effect.
    let set = results[requests.len() + bad.len()];
    assert!(set.0, "SetSettings failed: {set:?}");
    protocol::decode_reply_ack(Kind::SetSettings, &prefix.read("set.out")).unwrap();
    let status2_bytes = prefix.read("status2.out");
    let status2 = protocol::decode_reply_status(&status2_bytes).unwrap();
    assert_eq!(status2.head.action, Action::Log);
    assert_eq!(status2.head.flags, protocol::StatusHead::PINNED);

    // fx0 stopped: marked unloaded; the others still loaded.
    let status3_bytes = prefix.read("status3.out");
    let status3 = protocol::decode_reply_status(&status3_bytes).unwrap();
    for (i, (_, file, _)) in fixtures.iter().enumerate() {
        let t = status3.targets.iter().find(|t| t.name() == file).unwrap();
        assert_eq!(
            t.flags & TargetRecord::UNLOADED != 0,
            i == 0,
            "{file}: unloaded only if stopped:\n{out}"
        );
    }

    // civ hooked its targets: it pinned itself, once, and its unload left
    // every hook in place.
    assert_eq!(
        out.matches("civ now sits in a driver's calls").count(),
        1,
        "civ did not pin itself once:\n{out}"
    );
    assert_eq!(
        out.matches("civ: stopping, but drivers call into civ")
            .count(),
        1,
        "a pinned civ's unload:\n{out}"
    );
}

#[test]
fn civ_unloads_only_while_nothing_is_hooked() {
    let prefix = Prefix::new("unload");
    prefix.put(&wine::civ_sys(), "civ.sys");
    prefix.put(&call_fixture("ExAllocatePoolWithTag"), "a.sys");
    prefix.put(&call_fixture("ExAllocatePool"), "b.sys");
    prefix.put(&c_fixture(), "c.sys");
    // civa's target never loads: nothing hooked, so it goes, and a driver
    // loading afterwards in its group runs untouched.
    let mut lines = wine::install_civ("civa", "ga", "0x02000000", "never.sys a.sys", 1);
    lines.push("net start civa".into());
    lines.push("net stop civa".into());
    lines.extend(wine::install_and_start("ua", "ga", "a.sys"));
    // civb hooks b.sys, so its unload leaves every hook in place (and, on
    // Windows, the image: its reference on the driver object outlives the
    // unload; Wine unmaps a driver at unload whatever its references, so
    // b.sys must not call again here); c.sys, loading after civb's unload,
    // is no longer hooked.
    lines.extend(wine::install_civ(
        "civb",
        "gb",
        "0x02000000",
        "b.sys c.sys",
        1,
    ));
    lines.push("net start civb".into());
    lines.extend(wine::install_and_start("ub", "gb", "b.sys"));
    lines.push("net stop civb".into());
    lines.extend(wine::install_and_start("uc", "gb", "c.sys"));
    let out = prefix.run("unload", &lines);
    assert_eq!(
        out.matches("civ: stopping: nothing was hooked").count(),
        1,
        "civa goes:\n{out}"
    );
    assert_eq!(
        out.matches("civ: stopping, but drivers call into civ")
            .count(),
        1,
        "civb stays:\n{out}"
    );
    assert_eq!(
        out.matches("civ now sits in a driver's calls").count(),
        1,
        "{out}"
    );
    for done in [
        "The civa service was stopped successfully",
        "The ua service was started successfully",
        "The civb service was stopped successfully",
        "The uc service was started successfully",
    ] {
        assert!(out.contains(done), "no '{done}':\n{out}");
    }
    let hooked = wine::hooked(&out);
    let names: Vec<&str> = hooked.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["b.sys"], "{out}");
}

#[test]
fn bugcheck_mode_stops_with_dvs_code_and_the_callers_address() {
    let prefix = Prefix::new("bugcheck");
    prefix.put(&wine::civ_sys(), "civ.sys");
    let fixtures = runtime_fixtures();
    let mut lines = Vec::new();
    for (i, (_, file, path)) in fixtures.iter().enumerate() {
        prefix.put(path, file);
        let group = format!("gb{i}");
        lines.extend(wine::install_civ(
            &format!("civb{i}"),
            &group,
            "0x02000000",
            file,
            0,
        ));
        lines.push(format!("net start civb{i}"));
        lines.extend(wine::install_and_start(&format!("fb{i}"), &group, file));
    }
    let out = prefix.run("bugcheck", &lines);
    let hooked = wine::hooked(&out);
    let checks = wine::bug_checks(&out);
    assert_eq!(
        checks.len(),
        fixtures.len(),
        "one bug check per fixture:\n{out}"
    );
    for (i, (api, file, path)) in fixtures.iter().enumerate() {
        rows::check_bug_check(&out, &hooked, checks[i], (api, file, path));
    }
}

#[test]
fn image_checks_bugcheck_with_dvs_arguments() {
    let prefix = Prefix::new("image");
    prefix.put(&wine::civ_sys(), "civ.sys");
    // Wine's loader refuses an image linked /ALIGN:0x200 as a driver
    // (STATUS_DLL_INIT_FAILED before any notification), so 0x2004 is proven
    // by the engine's pipeline test (engine/tests/serve.rs) instead.
    let cases = [
        (Fixture::WriteExecuteData, 0x2003u64, ".data"),
        (Fixture::IatInText, 0x2005, ".text"),
    ];
    let mut lines = Vec::new();
    for (i, (f, ..)) in cases.iter().enumerate() {
        prefix.put(&f.path(), f.file_name());
        let group = format!("gi{i}");
        lines.extend(wine::install_civ(
            &format!("civi{i}"),
            &group,
            "0x02000000",
            f.file_name(),
            0,
        ));
        lines.push(format!("net start civi{i}"));
        lines.extend(wine::install_and_start(
            &format!("fi{i}"),
            &group,
            f.file_name(),
        ));
    }
    // A W+X INIT (old linkers; Windows 10+ maps it read-only) is recorded,
    // never a bug check: the driver starts.
    let init = Fixture::WriteExecuteInit;
    prefix.put(&init.path(), init.file_name());
    lines.extend(wine::install_civ(
        "civinit",
        "ginit",
        "0x02000000",
        init.file_name(),
        0,
    ));
    lines.push("net start civinit".into());
    lines.extend(wine::install_and_start("finit", "ginit", init.file_name()));
    let out = prefix.run("image", &lines);
    assert!(
        out.contains(&format!("{}: target", init.file_name()))
            && out.contains("1 image finding(s)")
            && out.contains("The finit service was started successfully"),
        "INIT's finding recorded, no bug check:\n{out}"
    );
    let checks = wine::bug_checks(&out);
    assert_eq!(
        checks.len(),
        cases.len(),
        "one bug check per defective image:\n{out}"
    );
    let bases: Vec<(String, u64)> = out
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("civ: ")? + 5..];
            let (name, rest) = rest.split_once(": image violation ")?;
            let at = rest.split_whitespace().nth(2)?;
            Some((
                name.to_string(),
                u64::from_str_radix(at.trim_start_matches("0x").trim_end_matches(':'), 16).ok()?,
            ))
        })
        .collect();
    for (i, (f, code, section)) in cases.iter().enumerate() {
        let [bc, a1, name_ptr, a3, section_ptr] = checks[i];
        assert_eq!((bc, a1), (0xC4, *code), "{f:?}");
        assert_ne!(
            name_ptr, 0,
            "{f:?}: Arg2 is the image name's UNICODE_STRING"
        );
        assert_ne!(section_ptr, 0, "{f:?}: Arg4 is the section name");
        let (_, logged) = &bases[i];
        assert_eq!(*logged, a3, "{f:?}: civ's log names the same address");
        // Arg3 is base + the section header's (or IAT's) RVA: its low 12
        // bits are the file's, since images load page aligned.
        let bytes = f.bytes();
        let pe = PeImage::parse(&bytes, Layout::File).unwrap();
        let rva = if *code == 0x2005 {
            u64::from(pe.data_directory(civ_engine::pe::DIR_IAT).unwrap().0)
        } else {
            pe.sections()
                .find(|s| s.name() == section.as_bytes())
                .unwrap()
                .header_offset as u64
        };
        assert_eq!(a3 & 0xFFF, rva & 0xFFF, "{f:?}: Arg3 {a3:#x}");
    }
}

#[test]
fn bad_registry_values_leave_civ_running_and_checking_nothing() {
    let prefix = Prefix::new("settings");
    prefix.put(&wine::civ_sys(), "civ.sys");
    let fx = call_fixture("ExAllocatePoolWithTag");
    prefix.put(&fx, "fx.sys");
    let key = "HKLM\\System\\CurrentControlSet\\Services\\civs\\Parameters";
    let mut lines = vec![
        format!("reg add {key} /v VerifyDriverLevel /t REG_SZ /d 0x02000000 /f"),
        format!("reg add {key} /v VerifyDrivers /t REG_DWORD /d 5 /f"),
        format!("reg add {key} /v ViolationAction /t REG_DWORD /d 7 /f"),
        "sc create civs type= kernel start= demand binPath= C:\\civ\\civ.sys group= gs".into(),
        "net start civs".into(),
    ];
    lines.extend(wine::install_and_start("fxs", "gs", "fx.sys"));
    let out = prefix.run("settings", &lines);
    for note in [
        "VerifyDriverLevel is not a REG_DWORD",
        "VerifyDrivers is not REG_SZ",
        "ViolationAction is not 0",
    ] {
        assert!(out.contains(note), "no note '{note}':\n{out}");
    }
    assert!(
        out.contains("The fxs service was started successfully"),
        "{out}"
    );
    assert!(wine::hooked(&out).is_empty(), "nothing is a target:\n{out}");
    assert!(wine::bug_checks(&out).is_empty());
}

#[test]
fn long_registry_values_are_read_whole_or_reported() {
    // VerifyDrivers longer than any fixed buffer civ once had (16 KiB):
    // read whole, so the name at its end is a target. One longer than civ's
    // 64 KiB limit: reported and ignored, civ checks nothing.
    let prefix = Prefix::new("longreg");
    prefix.put(&wine::civ_sys(), "civ.sys");
    let fx = call_fixture("ExAllocatePoolWithTag");
    prefix.put(&fx, "fx.sys");
    prefix.put(&fx, "fy.sys");
    let key = |service: &str| {
        format!("HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{service}\\Parameters")
    };
    let value = |padding: usize, name: &str| format!("{}{name}", " ".repeat(padding));
    let reg = format!(
        "Windows Registry Editor Version 5.00\r\n\r\n[{}]\r\n\"VerifyDriverLevel\"=dword:02000000\r\n\"ViolationAction\"=dword:00000001\r\n\"VerifyDrivers\"=\"{}\"\r\n\r\n[{}]\r\n\"VerifyDriverLevel\"=dword:02000000\r\n\"ViolationAction\"=dword:00000001\r\n\"VerifyDrivers\"=\"{}\"\r\n",
        key("civlong"),
        value(20_000, "fx.sys"),
        key("civhuge"),
        value(40_000, "fy.sys"),
    );
    prefix.write("long.reg", reg.as_bytes());
    let mut lines = vec![
        "reg import C:\\civ\\long.reg".to_string(),
        "sc create civlong type= kernel start= demand binPath= C:\\civ\\civ.sys group= glong"
            .into(),
        "net start civlong".into(),
    ];
    lines.extend(wine::install_and_start("fxlong", "glong", "fx.sys"));
    lines.extend([
        "sc create civhuge type= kernel start= demand binPath= C:\\civ\\civ.sys group= ghuge"
            .into(),
        "net start civhuge".into(),
    ]);
    lines.extend(wine::install_and_start("fyhuge", "ghuge", "fy.sys"));
    let out = prefix.run("longreg", &lines);
    let hooked = wine::hooked(&out);
    assert!(
        hooked.iter().any(|h| h.name == "fx.sys" && h.slots == 1),
        "the name at the end of a 40 KB value is a target:\n{out}"
    );
    // 40,000 spaces and a name in UTF-16: 80,014 bytes with the NUL.
    assert!(
        out.contains("settings: VerifyDrivers is 80014 bytes, over civ's limit of 65536: ignored"),
        "{out}"
    );
    assert!(
        !hooked.iter().any(|h| h.name == "fy.sys"),
        "an ignored value names no target:\n{out}"
    );
}

#[test]
fn drivers_loaded_before_civ_are_looked_for_and_wines_made_up_list_is_not_trusted() {
    // Wine answers SystemModuleInformation with a made-up list (ntoskrnl.exe,
    // hal.dll, mountmgr.sys at bases where nothing is mapped). Under `*`
    // civ leaves the kernel and the HAL alone whatever, and every image
    // whose signer it cannot know; a civ that names mountmgr.sys looks at
    // it, finds its pages unmapped, and says why it does not hook it. Both
    // go on to hook what loads later.
    let prefix = Prefix::new("late");
    prefix.put(&wine::civ_sys(), "civ.sys");
    let fx = call_fixture("ExAllocatePoolWithTag");
    prefix.put(&fx, "fx.sys");
    prefix.put(&fx, "fy.sys");
    let mut lines = wine::install_civ("civl", "gl", "0x02000000", "*", 1);
    lines.push("net start civl".into());
    lines.extend(wine::install_and_start("fxl", "gl", "fx.sys"));
    lines.extend(wine::install_civ(
        "civm",
        "gm",
        "0x02000000",
        "mountmgr.sys fy.sys",
        1,
    ));
    lines.push("net start civm".into());
    lines.extend(wine::install_and_start("fym", "gm", "fy.sys"));
    let out = prefix.run("late", &lines);
    for (name, why) in [
        ("ntoskrnl.exe", "not verified: the kernel, HAL"),
        ("hal.dll", "not verified: the kernel, HAL"),
        (
            "mountmgr.sys",
            "not verified: loaded before civ, signer unknown",
        ),
    ] {
        assert!(
            out.contains(&format!("{name}: {why}")),
            "no '{name}: {why}':\n{out}"
        );
    }
    assert_eq!(
        out.matches("mountmgr.sys: loaded before civ and not fully mapped")
            .count(),
        1,
        "the named civ looks at mountmgr.sys's pages:\n{out}"
    );
    let hooked = wine::hooked(&out);
    for fx in ["fx.sys", "fy.sys"] {
        assert!(
            hooked.iter().any(|h| h.name == fx && h.slots == 1),
            "{fx}, loading later, is still hooked:\n{out}"
        );
    }
    assert!(wine::bug_checks(&out).is_empty());
}

#[test]
fn the_exception_guard_turns_a_raised_exception_into_a_status() {
    // civ.sys calls MmProbeAndLockPages inside this guard; Wine's version
    // of it never raises, so a fixture drives the same guard with
    // RtlRaiseStatus, through Wine's real unwinder and __C_specific_handler.
    let prefix = Prefix::new("guard");
    prefix.put(&guard_fixture(), "guard.sys");
    let lines = wine::install_and_start("sehguard", "gg", "guard.sys");
    let out = prefix.run("guard", &lines);
    assert!(
        out.contains("The sehguard service was started successfully"),
        "the guard did not hand the exception back as a status:\n{out}"
    );
}
