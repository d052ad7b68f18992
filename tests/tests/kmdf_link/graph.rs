//! A stand-in crate graph shaped like civ's KMDF build, for the parts that
//! build without the WDK: civ's own `civ` and `nt` modules (driver/src,
//! included by path), civ-engine and windows-sys as civ.sys uses them, and
//! stand-ins for wdk-sys (the WDK libraries' `#[link]` directives, as
//! wdk-build renders them), wdk-alloc, wdk-panic and kmdf.rs
//! (tests/fixtures/kmdf). Its build script is civ's own `kmdf_link_order`
//! (driver/build.rs) with the link arguments wdk-build gives a KMDF driver.

use super::{fixture, root};
use std::path::{Path, PathBuf};

/// The stand-in driver's package and file stem.
pub const PACKAGE: &str = "civ-kmdf-standin";
/// Its image's file stem.
pub const STEM: &str = "civ_kmdf_standin";

/// windows-sys as civ.sys depends on it: version requirement and features,
/// from `cargo metadata`.
fn windows_sys_dependency() -> Result<(String, Vec<String>), String> {
    let out = super::output(
        super::cargo().current_dir(root()).args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ]),
        "cargo metadata of the workspace",
    )?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| format!("cargo metadata: {e}"))?;
    let dep = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "civ")
        .flat_map(|p| p["dependencies"].as_array().into_iter().flatten())
        .find(|d| d["name"] == "windows-sys")
        .ok_or("civ has no windows-sys dependency in cargo metadata")?;
    let req = dep["req"].as_str().unwrap_or("*").to_string();
    let features = dep["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    Ok((req, features))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Rewritten only when different, so that cargo sees no change.
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A `[package]` with its library at `lib`.
fn package(name: &str, lib: &Path, crate_type: &str, deps: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\npath = \"{}\"\ncrate-type = [\"{crate_type}\"]\n\n[dependencies]\n{deps}",
        lib.display()
    )
}

/// Writes the stand-in workspace into `dir` (with a copy of the
/// workspace's Cargo.lock, so that it builds offline with the same
/// versions), its build script linking from `km` and `kmdf`. Returns the
/// workspace's folder.
pub fn write_workspace(dir: &Path, km: &Path, kmdf: &Path) -> Result<PathBuf, String> {
    let root = root();
    let (req, features) = windows_sys_dependency()?;
    let features = features
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        &dir.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"driver\", \"wdk-sys\", \"wdk-alloc\", \"wdk-panic\"]\n\n\
         # dev: no LTO (rlibs in dependency order); release: LTO, as `cargo make`.\n\
         [profile.dev]\npanic = \"abort\"\n\n[profile.release]\npanic = \"abort\"\nlto = true\n",
    )?;
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| e.to_string())?;
    write(&dir.join("Cargo.lock"), &lock)?;
    let sys = "wdk-sys = { path = \"../wdk-sys\" }\n";
    write(
        &dir.join("wdk-sys/Cargo.toml"),
        &package("wdk-sys", &fixture("wdk_sys.rs"), "rlib", ""),
    )?;
    write(
        &dir.join("wdk-alloc/Cargo.toml"),
        &package("wdk-alloc", &fixture("wdk_alloc.rs"), "rlib", sys),
    )?;
    write(
        &dir.join("wdk-panic/Cargo.toml"),
        &package("wdk-panic", &fixture("wdk_panic.rs"), "rlib", sys),
    )?;
    let driver_deps = format!(
        "civ-engine = {{ path = \"{engine}\" }}\n\
         windows-sys = {{ version = \"{req}\", default-features = false, features = [{features}] }}\n\
         wdk-alloc = {{ path = \"../wdk-alloc\" }}\n\
         wdk-panic = {{ path = \"../wdk-panic\" }}\n\
         wdk-sys = {{ path = \"../wdk-sys\" }}\n",
        engine = root.join("engine").display(),
    );
    write(
        &dir.join("driver/Cargo.toml"),
        &package(PACKAGE, &dir.join("driver/lib.rs"), "cdylib", &driver_deps),
    )?;
    let src = root.join("driver/src");
    write(
        &dir.join("driver/lib.rs"),
        &format!(
            "//! Written by tests/tests/kmdf_build.rs: civ's shared modules and a\n\
             //! stand-in for its KMDF shell.\n\
             #![no_std]\n\n\
             extern crate alloc;\n\n\
             #[path = \"{nt}\"]\npub mod nt;\n\n\
             #[path = \"{civ}\"]\npub mod civ;\n\n\
             #[path = \"{shell}\"]\nmod shell;\n\n\
             // wdk-sys' link directives, as kmdf.rs gets them through wdk_sys.\n\
             extern crate wdk_sys;\n",
            nt = src.join("nt/mod.rs").display(),
            civ = src.join("civ.rs").display(),
            shell = fixture("shell.rs").display(),
        ),
    )?;
    write(
        &dir.join("driver/build.rs"),
        &format!(
            "//! Written by tests/tests/kmdf_build.rs: civ's KMDF link order (unless\n\
             //! CIV_WITHOUT_KMDF_LINK_ORDER is set) and wdk-build's KMDF link arguments.\n\n\
             #[allow(dead_code, unexpected_cfgs)]\n#[path = \"{build}\"]\nmod civ_build;\n\n\
             fn main() {{\n\
             \x20   println!(\"cargo::rerun-if-env-changed=CIV_WITHOUT_KMDF_LINK_ORDER\");\n\
             \x20   println!(\"cargo::rerun-if-changed={build}\");\n\
             \x20   println!(\"cargo::rustc-link-search={km}\");\n\
             \x20   println!(\"cargo::rustc-link-search={kmdf}\");\n\
             \x20   for arg in [\"/DRIVER\", \"/NODEFAULTLIB\", \"/SUBSYSTEM:NATIVE\", \"/KERNEL\", \"/ENTRY:FxDriverEntry\"] {{\n\
             \x20       println!(\"cargo::rustc-cdylib-link-arg={{arg}}\");\n\
             \x20   }}\n\
             \x20   if std::env::var_os(\"CIV_WITHOUT_KMDF_LINK_ORDER\").is_none() {{\n\
             \x20       civ_build::kmdf_link_order();\n\
             \x20   }}\n\
             }}\n",
            build = root.join("driver/build.rs").display(),
            km = km.display(),
            kmdf = kmdf.display(),
        ),
    )?;
    Ok(dir.to_path_buf())
}
