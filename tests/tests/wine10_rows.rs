//! The catalog rows a real loader can run, beyond Wine 8's: civ.sys under
//! Debian 13's Wine 10 (the chroot `scripts/wine10.sh` makes and caches),
//! in log mode, with a `call_<API>.sys` fixture for every row Wine 10's
//! ntoskrnl implements. Each fixture makes an NX call, then an executable
//! one; civ must record exactly the second, with DV's counter, the API,
//! arg3 and arg4, and the caller at a call instruction in the fixture.
//!
//! Which rows a loader can run at all is read from its own ntoskrnl.exe
//! (missing export, spec-file stub, or code), for Wine 8 and Wine 10 both:
//! docs/loaders.md's table rests on it. Without the chroot (no root, no
//! Debian mirror) these tests fail, saying why.

use civ_engine::catalog::CATALOG;
use civ_engine::protocol::{self, GetSites, Request, TargetRecord};
use civ_engine::settings::Action;
use civ_fixtures::unwind::image::Image;
use civ_fixtures::wine::{self, Export, Loader, Prefix};
use civ_fixtures::{WINE_APIS, WINE10_NEW_APIS, call_fixture, ioctl_probe, wine10_apis};

mod rows;

/// The catalog rows whose API `loader`'s ntoskrnl.exe implements, and what
/// it has for each of the others.
fn rows(loader: Loader) -> (Vec<&'static str>, Vec<(&'static str, Export)>) {
    let path = loader.ntoskrnl().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let image = Image::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut runs, mut not) = (Vec::new(), Vec::new());
    for h in &CATALOG {
        match wine::ntoskrnl_export(&image, h.name) {
            Export::Implemented => runs.push(h.name),
            other => not.push((h.name, other)),
        }
    }
    (runs, not)
}

fn in_catalog_order(apis: &[&str]) -> Vec<&'static str> {
    CATALOG
        .iter()
        .map(|h| h.name)
        .filter(|n| apis.contains(n))
        .collect()
}

#[test]
fn each_loader_implements_exactly_the_rows_its_tests_run() {
    for (loader, listed) in [
        (Loader::Host, &WINE_APIS[..]),
        (Loader::Wine10, &wine10_apis()[..]),
    ] {
        let (runs, not) = rows(loader);
        for (api, export) in &not {
            println!("{}: {api}: {export:?}", loader.label());
        }
        assert_eq!(
            runs,
            in_catalog_order(listed),
            "{}: the rows its ntoskrnl.exe implements are not the rows the tests run \
             (others: {not:?})",
            loader.label()
        );
    }
    // What keeps the other rows out, as docs/loaders.md says.
    let (_, wine10_not) = rows(Loader::Wine10);
    assert_eq!(
        wine10_not,
        [
            ("ExAllocatePoolWithTagPriority", Export::Stub),
            ("ExAllocatePool3", Export::Missing),
            ("ExInitializeLookasideListEx", Export::Missing),
            ("MmMapIoSpaceEx", Export::Missing),
            ("MmAllocateContiguousNodeMemory", Export::Missing),
            ("MmMapLockedPages", Export::Stub),
        ]
    );
}

fn encode(r: &Request<'_>) -> (u32, Vec<u8>) {
    let mut buf = vec![0u8; r.encoded_len().unwrap()];
    r.encode(&mut buf).unwrap();
    (r.kind().ioctl(), buf)
}

#[test]
fn wine10_log_mode_records_each_row_it_implements() {
    let prefix = Prefix::with_loader("wine10-log", Loader::Wine10);
    let version = prefix.wine_version();
    assert!(version.starts_with("wine-10."), "not Wine 10: {version}");
    prefix.put(&wine::civ_sys(), "civ.sys");
    prefix.put(&ioctl_probe(), "ioctl_probe.exe");
    let fixtures: Vec<(&str, String, std::path::PathBuf)> = wine10_apis()
        .into_iter()
        .map(|api| (api, format!("call_{api}.sys"), call_fixture(api)))
        .collect();
    let mut lines = wine::install_civ("civ10", "g10", "0x02000000", "call_*.sys", 1);
    lines.push("net start civ10".into());
    for (i, (_, file, path)) in fixtures.iter().enumerate() {
        prefix.put(path, file);
        lines.extend(wine::install_and_start(&format!("fx{i}"), "g10", file));
    }
    let replies = [
        ("status", encode(&Request::GetStatus)),
        (
            "sites",
            encode(&Request::GetSites(GetSites { start: 0, max: 100 })),
        ),
    ];
    for (name, (code, input)) in &replies {
        prefix.write(&format!("{name}.in"), input);
        lines.push(format!(
            "C:\\civ\\ioctl_probe.exe C:\\civ\\{name}.in {code:x} 16384 C:\\civ\\{name}.out"
        ));
    }
    let out = prefix.run("wine10-log", &lines);
    assert_eq!(
        wine::probe_results(&out)
            .iter()
            .filter(|(ok, ..)| *ok)
            .count(),
        replies.len(),
        "every IOCTL answered:\n{out}"
    );
    assert!(wine::bug_checks(&out).is_empty(), "log mode:\n{out}");

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
    assert_eq!(
        sites.sites.len(),
        fixtures.len(),
        "one site per row:\n{out}"
    );
    for (api, file, path) in &fixtures {
        rows::check(&out, &targets, &sites, (api, file, path), true);
    }
}

#[test]
fn wine10_bugcheck_mode_stops_the_rows_wine8_cannot_run_with_dvs_arguments() {
    let new = WINE10_NEW_APIS;
    let prefix = Prefix::with_loader("wine10-bugcheck", Loader::Wine10);
    prefix.put(&wine::civ_sys(), "civ.sys");
    let mut lines = Vec::new();
    let mut paths = Vec::new();
    for (i, api) in new.iter().enumerate() {
        let file = format!("call_{api}.sys");
        let path = call_fixture(api);
        prefix.put(&path, &file);
        let group = format!("gb{i}");
        lines.extend(wine::install_civ(
            &format!("civb{i}"),
            &group,
            "0x02000000",
            &file,
            0,
        ));
        lines.push(format!("net start civb{i}"));
        lines.extend(wine::install_and_start(&format!("fb{i}"), &group, &file));
        paths.push((file, path));
    }
    let out = prefix.run("wine10-bugcheck", &lines);
    let hooked = wine::hooked(&out);
    let checks = wine::bug_checks(&out);
    assert_eq!(checks.len(), new.len(), "one bug check per fixture:\n{out}");
    for (i, api) in new.iter().enumerate() {
        let (file, path) = &paths[i];
        rows::check_bug_check(&out, &hooked, checks[i], (api, file, path));
    }
}
