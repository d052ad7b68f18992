//! Stand-ins for the WDK libraries a KMDF driver links (wdk-build's
//! `Config::base_libraries` for KMDF): import libraries made with
//! llvm-dlltool from .def files, and WdfDriverEntry.lib built from C with
//! clang and llvm-lib. ntoskrnl.exe's, HAL.dll's and WMILIB.SYS's export
//! lists are those of Debian's mingw-w64 import libraries (plus
//! tests/fixtures/kmdf/ntoskrnl-newer.def), so a routine the kernel does
//! not export is not found there either.

use super::{archive, fixture, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to do when a tool is missing.
pub const HINT: &str =
    "scripts/setup.sh installs them: apt-get install clang llvm gcc-mingw-w64-x86-64";

/// Writes ntoskrnl.lib, hal.lib, wmilib.lib and BufferOverflowFastFailK.lib
/// into `km`, and WdfLdr.lib and WdfDriverEntry.lib into `kmdf` (the WDK's
/// `Lib/<sdk>/km/x64` and `Lib/wdf/kmdf/x64/1.33`).
pub fn build(km: &Path, kmdf: &Path) -> Result<(), String> {
    for dir in [km, kmdf] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let newer = std::fs::read_to_string(fixture("ntoskrnl-newer.def"))
        .map_err(|e| format!("ntoskrnl-newer.def: {e}"))?;
    for (lib, dll, extra) in [
        ("ntoskrnl", "ntoskrnl.exe", def_exports(&newer)),
        ("hal", "HAL.dll", Vec::new()),
        ("wmilib", "WMILIB.SYS", Vec::new()),
    ] {
        let mut exports = mingw_exports(lib)?;
        exports.extend(extra.into_iter().map(|name| (name, false)));
        let def = km.join(format!("{lib}.def"));
        std::fs::write(&def, def_file(dll, &exports)).map_err(|e| e.to_string())?;
        dlltool(&def, &km.join(format!("{lib}.lib")))?;
    }
    dlltool(&fixture("wdfldr.def"), &kmdf.join("WdfLdr.lib"))?;
    let entry = kmdf.join("wdf_driver_entry.obj");
    clang(&fixture("wdf_driver_entry.c"), &entry)?;
    llvm_lib(&entry, &kmdf.join("WdfDriverEntry.lib"))?;
    // Its /GS helpers are never referenced here: an empty library will do.
    let empty = km.join("empty.c");
    std::fs::write(&empty, "/* nothing */\n").map_err(|e| e.to_string())?;
    let empty_obj = km.join("empty.obj");
    clang(&empty, &empty_obj)?;
    llvm_lib(&empty_obj, &km.join("BufferOverflowFastFailK.lib"))
}

/// The names in a .def file's EXPORTS section.
fn def_exports(def: &str) -> Vec<String> {
    def.lines()
        .skip_while(|l| l.trim() != "EXPORTS")
        .skip(1)
        .filter_map(|l| l.split(';').next()?.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `(name, is_data)` for each export of mingw-w64's `lib<name>.a`: an
/// `__imp_X` symbol is an export; without a plain `X` beside it, data.
fn mingw_exports(name: &str) -> Result<Vec<(String, bool)>, String> {
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .arg(format!("-print-file-name=lib{name}.a"))
        .output()
        .map_err(|e| format!("cannot run x86_64-w64-mingw32-gcc ({HINT}): {e}"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let data = std::fs::read(&path)
        .map_err(|e| format!("mingw-w64's lib{name}.a ({}): {e} ({HINT})", path.display()))?;
    let symbols = archive::symbols(&data).map_err(|e| format!("{}: {e}", path.display()))?;
    let plain: std::collections::HashSet<&str> = symbols.iter().map(String::as_str).collect();
    let mut exports: Vec<(String, bool)> = symbols
        .iter()
        .filter_map(|s| s.strip_prefix("__imp_"))
        .map(|n| (n.to_string(), !plain.contains(n)))
        .collect();
    exports.sort();
    exports.dedup();
    if exports.is_empty() {
        return Err(format!("{} lists no exports", path.display()));
    }
    Ok(exports)
}

fn def_file(dll: &str, exports: &[(String, bool)]) -> String {
    let mut def = format!("LIBRARY {dll}\nEXPORTS\n");
    for (name, data) in exports {
        def.push_str(&format!("    {name}{}\n", if *data { " DATA" } else { "" }));
    }
    def
}

fn dlltool(def: &Path, lib: &Path) -> Result<(), String> {
    run(
        Command::new("llvm-dlltool")
            .args(["-m", "i386:x86-64", "-d"])
            .arg(def)
            .arg("-l")
            .arg(lib),
        HINT,
    )
}

fn clang(source: &Path, obj: &Path) -> Result<(), String> {
    run(
        Command::new("clang")
            .args([
                "--target=x86_64-pc-windows-msvc",
                "-O1",
                "-ffreestanding",
                "-fno-stack-protector",
                "-c",
            ])
            .arg(source)
            .arg("-o")
            .arg(obj),
        HINT,
    )
}

fn llvm_lib(obj: &Path, lib: &Path) -> Result<(), String> {
    let mut out = std::ffi::OsString::from("/out:");
    out.push(lib);
    run(Command::new("llvm-lib").arg(out).arg(obj), HINT)
}
