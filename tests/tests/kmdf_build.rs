//! What a Windows machine would say about civ.sys's KMDF build in its first
//! minute, checked on Linux (issue 9):
//! - wdk-build's own `cargo metadata` runs find it, and the lock pins one
//!   wdk-build that every wdk crate, the makefile and the MSRV agree with;
//! - the MSVC target's rustflags, as cargo resolves them for the driver
//!   (`cargo make` in driver/) and for `cargo wdm`, have `+crt-static`, and
//!   the WDM image still links to the kernel only;
//! - the KMDF link order, reproduced with stand-ins for the WDK's libraries
//!   and a crate graph shaped like the KMDF build, binds FxDriverEntry's
//!   RtlCopyUnicodeString to ntoskrnl.exe, for lld-link and by link.exe's
//!   search rule, with and without LTO;
//! - (ignored, run by scripts/kmdf-check.sh where the KMDF headers are) the
//!   same for the real KMDF civ.sys, linked against the stand-ins.

mod kmdf_link;

/// civ's build script: its KMDF link order is what the link tests check.
/// (Its `kmdf` feature is civ's, unknown here.)
#[allow(dead_code, unexpected_cfgs)]
#[path = "../../driver/build.rs"]
mod civ_build;

use kmdf_link::{cargo, cargo_link, graph, link, root, standins};
use std::path::{Path, PathBuf};

/// The symbol WdfDriverEntry.lib's FxDriverEntry imports, and the name
/// windows-sys also declares against ntdll.dll.
const COPY: &str = "RtlCopyUnicodeString";

fn metadata(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = kmdf_link::output(
        cargo()
            .current_dir(dir)
            .args(["metadata", "--format-version", "1"])
            .args(extra),
        "cargo metadata as wdk-build runs it",
    )
    .unwrap_or_else(|e| panic!("in {}: {e}", dir.display()));
    serde_json::from_slice(&out).expect("cargo metadata prints JSON")
}

fn packages<'a>(meta: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .collect()
}

/// wdk-build's cargo-make load_script (`load_wdk_build_makefile`: a plain
/// `cargo metadata` where cargo make runs, driver/) and its bindgen and
/// config setup (`get_rust_edition`, `Config::from_env_auto`: at the
/// workspace's root, with its manifest) need exactly one wdk-build package,
/// with no features asked for.
#[test]
fn cargo_metadata_lists_wdk_build_as_wdk_build_runs_it() {
    let root = root();
    let manifest = root.join("Cargo.toml");
    for (dir, extra) in [
        (root.join("driver"), vec![]),
        (
            root.clone(),
            vec!["--manifest-path", manifest.to_str().unwrap()],
        ),
    ] {
        let meta = metadata(&dir, &extra);
        let found = packages(&meta, "wdk-build");
        assert_eq!(
            found.len(),
            1,
            "cargo metadata in {} lists {} wdk-build packages (wdk-build's cargo-make and bindgen setup need exactly one: NoWdkBuildCrateDetected / WdkBuildPackageNotFoundInCargoMetadata)",
            dir.display(),
            found.len()
        );
        let civ = packages(&meta, "civ");
        let civ = civ.first().expect("civ in cargo metadata");
        assert_eq!(
            civ["metadata"]["wdk"]["driver-model"]["driver-type"], "KMDF",
            "civ's package.metadata.wdk is what wdk-build configures the build from"
        );
        let build_dep = civ["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["name"] == "wdk-build" && d["kind"] == "build" && d["optional"] == false);
        assert!(
            build_dep.is_some(),
            "civ must name wdk-build as a non-optional build-dependency (a cfg(windows) one is listed on every host)"
        );
    }
}

/// One `[[package]]` of Cargo.lock.
struct Locked {
    name: String,
    version: String,
    dependencies: Vec<String>,
}

fn lock() -> Vec<Locked> {
    let text = std::fs::read_to_string(root().join("Cargo.lock")).expect("read Cargo.lock");
    let field = |block: &str, key: &str| {
        block
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap_or_default()
    };
    text.split("[[package]]")
        .skip(1)
        .map(|block| Locked {
            name: field(block, "name"),
            version: field(block, "version"),
            dependencies: block
                .split("dependencies = [")
                .nth(1)
                .and_then(|rest| rest.split(']').next())
                .map(|list| {
                    list.lines()
                        .map(|l| l.trim().trim_end_matches(',').trim_matches('"').to_string())
                        .filter(|l| !l.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// `major.minor.patch` of a version string (missing parts are 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text
        .trim_start_matches(['^', '='])
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Whether `locked` meets the caret requirement `req` (cargo's default).
fn meets(locked: &str, req: &str) -> bool {
    let (l, r) = (version(locked), version(req));
    let same_line = if r.0 > 0 {
        l.0 == r.0
    } else {
        l.0 == 0 && l.1 == r.1
    };
    same_line && l >= r
}

/// cargo make's load_script finds wdk-build through `cargo metadata` and
/// stops at two (MultipleWdkBuildCratesDetected); the crates that configure
/// their builds with it must use the one the makefile's own scripts come
/// from; the load_script builds its own wdk-build from Makefile.toml's
/// requirement.
#[test]
fn lock_pins_one_wdk_build_that_every_wdk_crate_and_the_makefile_use() {
    let lock = lock();
    let builds: Vec<&Locked> = lock.iter().filter(|p| p.name == "wdk-build").collect();
    assert_eq!(
        builds.len(),
        1,
        "Cargo.lock holds {} wdk-build versions: {:?}",
        builds.len(),
        builds.iter().map(|p| &p.version).collect::<Vec<_>>()
    );
    let pinned = &builds[0].version;
    let users: Vec<&str> = lock
        .iter()
        .filter(|p| {
            p.dependencies
                .iter()
                .any(|d| d == "wdk-build" || d == &format!("wdk-build {pinned}"))
        })
        .map(|p| p.name.as_str())
        .collect();
    for crate_name in ["civ", "wdk-sys", "wdk-alloc", "wdk-panic", "wdk"] {
        assert!(
            users.contains(&crate_name),
            "{crate_name} does not build with the pinned wdk-build {pinned} (users: {users:?})"
        );
    }
    let makefile =
        std::fs::read_to_string(root().join("driver/Makefile.toml")).expect("read Makefile.toml");
    let req = makefile
        .lines()
        .find_map(|l| l.trim_start_matches("//! ").strip_prefix("wdk-build = \""))
        .map(|v| v.trim_end_matches('"'))
        .expect("Makefile.toml's load_script names wdk-build");
    assert!(
        meets(pinned, req),
        "Makefile.toml's load_script asks for wdk-build {req}, the lock pins {pinned}"
    );
}

/// wdk-build 0.6.0 declares rust-version 1.91: the workspace's must not be
/// lower, or the KMDF build's MSRV is not what Cargo.toml says.
#[test]
fn rust_version_covers_the_wdk_crates() {
    let meta = metadata(&root(), &["--features", "civ/kmdf"]);
    let ours = packages(&meta, "civ")[0]["rust_version"]
        .as_str()
        .map(version)
        .expect("civ declares a rust-version");
    let wdk: Vec<_> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("wdk")))
        .collect();
    assert!(
        wdk.len() >= 5,
        "the kmdf feature's wdk crates are missing from cargo metadata"
    );
    for p in wdk {
        if let Some(theirs) = p["rust_version"].as_str() {
            assert!(
                version(theirs) <= ours,
                "{} {} needs Rust {theirs}, the workspace says {ours:?}",
                p["name"],
                p["version"]
            );
        }
    }
}

/// Builds a probe crate named `civ` whose build script records the target
/// features and rustflags cargo gives it, with `cargo <args>` run in `dir`.
fn probe_flags(dir: &Path, args: &[&str], tag: &str) -> (Vec<String>, String) {
    let probe = root().join("target/kmdf-probe");
    std::fs::create_dir_all(&probe).expect("create the probe's folder");
    let files = [
        (
            "Cargo.toml",
            "[package]\nname = \"civ\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[lib]\npath = \"lib.rs\"\n\n[workspace]\n",
        ),
        ("lib.rs", "#![no_std]\n"),
        (
            "build.rs",
            "fn main() {\n\
             \x20   println!(\"cargo::rerun-if-env-changed=CIV_PROBE_OUT\");\n\
             \x20   let out = std::env::var(\"CIV_PROBE_OUT\").expect(\"CIV_PROBE_OUT\");\n\
             \x20   let features = std::env::var(\"CARGO_CFG_TARGET_FEATURE\").unwrap_or_default();\n\
             \x20   let flags = std::env::var(\"CARGO_ENCODED_RUSTFLAGS\").unwrap_or_default();\n\
             \x20   std::fs::write(out, format!(\"{features}\\n{}\\n\", flags.replace('\\x1f', \" \"))).expect(\"write\");\n\
             }\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(probe.join(name), text).expect("write the probe");
    }
    // A new output path each run: the build script runs again.
    let out = probe.join(format!("flags-{tag}-{}.txt", std::process::id()));
    kmdf_link::run(
        cargo()
            .current_dir(dir)
            .args(args)
            .arg("--manifest-path")
            .arg(probe.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", probe.join("target"))
            .env("CIV_PROBE_OUT", &out),
        "the rustflags probe",
    )
    .unwrap_or_else(|e| panic!("in {}: {e}", dir.display()));
    let text = std::fs::read_to_string(&out).expect("the probe's build script ran");
    let _ = std::fs::remove_file(&out);
    let mut lines = text.lines();
    let features = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    (features, lines.next().unwrap_or_default().to_string())
}

/// wdk-build's `configure_binary_build` fails with StaticCrtNotEnabled
/// unless the MSVC target has `+crt-static`. Cargo resolves rustflags from
/// the config files above the folder it runs in: driver/ for `cargo make`,
/// the root for `cargo wdm`, whose own `--config` rustflags must add to
/// them, not replace them.
#[test]
fn msvc_rustflags_resolve_with_crt_static() {
    let root = root();
    let (features, flags) = probe_flags(
        &root.join("driver"),
        &["check", "--target", kmdf_link::TARGET],
        "kmdf",
    );
    assert!(
        features.iter().any(|f| f == "crt-static"),
        "from driver/ (cargo make), the MSVC target's features lack crt-static: {features:?} (rustflags: {flags})"
    );
    let (features, flags) = probe_flags(&root, &["wdm"], "wdm");
    assert!(
        features.iter().any(|f| f == "crt-static"),
        "`cargo wdm` builds without crt-static: {features:?} (rustflags: {flags})"
    );
    assert!(
        flags.contains("linker-flavor=lld-link"),
        "`cargo wdm`'s own rustflags were lost: {flags}"
    );
}

/// The WDM civ.sys, built by `cargo wdm` with those rustflags, still links
/// as a kernel driver that imports from the kernel only. (The Wine tests
/// load and run it.)
#[test]
fn wdm_image_imports_only_from_the_kernel() {
    let image = civ_fixtures::wine::civ_sys();
    let imports = link::imports(&image).unwrap_or_else(|e| panic!("{e}"));
    assert!(!imports.is_empty(), "civ.sys imports nothing");
    let foreign: Vec<_> = imports
        .iter()
        .filter(|(m, _)| {
            !["ntoskrnl.exe", "HAL.dll"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(m))
        })
        .collect();
    assert!(foreign.is_empty(), "the WDM civ.sys imports {foreign:?}");
}

/// Where link.exe would take FxDriverEntry's `__imp_RtlCopyUnicodeString`
/// from, on this link line.
fn linkexe_copy_source(args: &[String]) -> PathBuf {
    link::linkexe_source(
        &link::libraries(args),
        "FxDriverEntry",
        &format!("__imp_{COPY}"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The file names of the libraries before the first rlib on a link line:
/// the crate's own (rustc names them right after its objects).
fn leading_libraries(args: &[String]) -> Vec<String> {
    link::libraries(args)
        .iter()
        .take_while(|l| l.extension().is_none_or(|e| e != "rlib"))
        .filter_map(|l| Some(l.file_name()?.to_string_lossy().into_owned()))
        .collect()
}

/// The link line without civ's own libraries (those before the first
/// rlib that [`civ_build::KMDF_FIRST_LIBRARIES`] names): without the fix.
fn without_civ_libraries(args: &[String]) -> Vec<String> {
    let first_rlib = args
        .iter()
        .position(|a| a.ends_with(".rlib"))
        .unwrap_or(args.len());
    let ours = civ_build::KMDF_FIRST_LIBRARIES.map(|l| format!("{l}.lib"));
    args.iter()
        .enumerate()
        .filter(|(i, a)| {
            *i >= first_rlib
                || !Path::new(a)
                    .file_name()
                    .is_some_and(|n| ours.iter().any(|o| n.eq_ignore_ascii_case(o.as_str())))
        })
        .map(|(_, a)| a.clone())
        .collect()
}

fn is_windows_sys(lib: &Path) -> bool {
    lib.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libwindows_sys-") && n.ends_with(".rlib"))
}

fn is_ntoskrnl(lib: &Path) -> bool {
    lib.file_name()
        .is_some_and(|n| n.eq_ignore_ascii_case("ntoskrnl.lib"))
}

/// With civ's link order: the image imports from the kernel only and takes
/// RtlCopyUnicodeString from ntoskrnl.exe, civ's libraries lead the link
/// line, and link.exe would take it from ntoskrnl.lib too.
fn assert_ordered(what: &str, linked: &kmdf_link::Linked) {
    link::assert_kernel_imports(&linked.image, COPY);
    assert_eq!(
        leading_libraries(&linked.args),
        civ_build::KMDF_FIRST_LIBRARIES.map(|l| format!("{l}.lib")),
        "{what}: civ's libraries are not the first on the link line, in order"
    );
    let source = linkexe_copy_source(&linked.args);
    assert!(
        is_ntoskrnl(&source),
        "{what}: link.exe would take {COPY} from {}",
        source.display()
    );
}

/// On this line (without civ's link order) link.exe would take
/// RtlCopyUnicodeString from windows-sys' rlib: its ntdll.dll import.
fn assert_linkexe_takes_windows_sys(what: &str, args: &[String]) {
    let source = linkexe_copy_source(args);
    assert!(
        is_windows_sys(&source),
        "{what}: link.exe would take {COPY} from {}, not windows-sys (the bug this reproduces)",
        source.display()
    );
}

/// Issue 9, point 3, reproduced and fixed with the project's own crates as
/// far as they build without the WDK. Without civ's link order the
/// stand-in image takes RtlCopyUnicodeString from ntdll.dll (lld-link,
/// no LTO: windows-sys' rlib comes before wdk-sys' ntoskrnl.lib) and
/// link.exe would too, with or without LTO (with LTO the windows-sys rlib
/// is the first library after WdfDriverEntry.lib); with it, both take it
/// from ntoskrnl.exe and the image imports from the kernel only.
#[test]
fn kmdf_link_order_binds_the_kernel_routines_to_ntoskrnl() {
    let base = root().join("target/kmdf-link");
    let (km, kmdf) = (base.join("lib/km"), base.join("lib/kmdf"));
    standins::build(&km, &kmdf).unwrap_or_else(|e| panic!("{e}"));
    let ws = graph::write_workspace(&base.join("ws"), &km, &kmdf).unwrap_or_else(|e| panic!("{e}"));
    let target = base.join("target");
    let build = |release: bool, link_order: bool| {
        let args: &[&str] = if release {
            &["--release", "--offline"]
        } else {
            &["--offline"]
        };
        cargo_link(&ws, &target, graph::PACKAGE, graph::STEM, args, link_order)
            .unwrap_or_else(|e| panic!("{e}"))
    };

    let unordered = build(false, false);
    let from: Vec<_> = link::imports(&unordered.image)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|(_, f)| f == COPY)
        .collect();
    assert!(
        from.iter()
            .any(|(m, _)| m.eq_ignore_ascii_case("ntdll.dll")),
        "the reproduction no longer reproduces: without civ's link order the stand-in takes {COPY} from {from:?}, not ntdll.dll"
    );
    assert_linkexe_takes_windows_sys("without civ's link order", &unordered.args);
    let unordered_lto = build(true, false);
    assert_linkexe_takes_windows_sys("with LTO, without civ's link order", &unordered_lto.args);
    for release in [false, true] {
        assert_ordered(
            &format!("with civ's link order (release: {release})"),
            &build(release, true),
        );
    }
}

/// The arguments `cargo make` gives `cargo build` (Makefile.toml's build
/// task, less cargo-make's own variables).
fn makefile_build_args() -> Vec<String> {
    let makefile =
        std::fs::read_to_string(root().join("driver/Makefile.toml")).expect("read Makefile.toml");
    let task = makefile
        .split("[tasks.build]")
        .nth(1)
        .and_then(|t| t.split("args = [").nth(1))
        .and_then(|t| t.split("\n]").next())
        .expect("Makefile.toml has a build task with args");
    task.lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter_map(|l| l.strip_prefix('"')?.strip_suffix('"'))
        .map(|a| a.replace("\\\"", "\""))
        .filter(|a| a != "build" && !a.starts_with("@@"))
        .collect()
}

/// The real KMDF civ.sys, linked against the stand-ins: needs wdk-sys'
/// bindings, so the KMDF headers and a folder laid out like a WDK
/// (WDKContentRoot), and a wdk-build that builds on Linux. Run by
/// scripts/kmdf-check.sh from its copy of the workspace.
#[test]
#[ignore = "needs the KMDF headers: scripts/kmdf-check.sh runs it"]
fn kmdf_civ_sys_links_to_the_kernel_only() {
    let wdk = PathBuf::from(
        std::env::var_os("WDKContentRoot")
            .expect("WDKContentRoot is not set: run scripts/kmdf-check.sh"),
    );
    let sdk = std::fs::read_dir(wdk.join("Lib"))
        .expect("WDKContentRoot/Lib")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("10."))
        .max()
        .expect("a Lib/10.x folder");
    let km = wdk.join("Lib").join(sdk).join("km/x64");
    let kmdf = wdk.join("Lib/wdf/kmdf/x64/1.33");
    standins::build(&km, &kmdf).unwrap_or_else(|e| panic!("{e}"));
    let make_args = makefile_build_args();
    // The same, less the `--config profile.*.lto=true` pairs.
    let mut no_lto: Vec<&str> = Vec::new();
    let mut args = make_args.iter().map(String::as_str).peekable();
    while let Some(arg) = args.next() {
        if arg == "--config" && args.peek().is_some_and(|v| v.contains(".lto=")) {
            args.next();
        } else {
            no_lto.push(arg);
        }
    }
    let make_args: Vec<&str> = make_args.iter().map(String::as_str).collect();
    let target = root().join("target/kmdf-link-real");
    for (what, args) in [
        ("as cargo make builds it", make_args),
        ("without LTO", no_lto),
    ] {
        let linked = cargo_link(&root(), &target, "civ", "civ", &args, true)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_ordered(what, &linked);
        // The same line without civ's own libraries is the bug.
        assert_linkexe_takes_windows_sys(
            &format!("{what}, without civ's libraries"),
            &without_civ_libraries(&linked.args),
        );
        println!(
            "{what}: {} links to the kernel only",
            linked.image.display()
        );
    }
}
