//! The link of a KMDF image, as rustc asks for it: a linker wrapper that
//! records rustc's link line and links with lld-link; link.exe's library
//! search rule applied to that line; and the imports of the image.

use super::archive;
use civ_engine::pe::{ImportName, Layout, PeImage};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The modules a KMDF civ.sys may import from.
pub const KERNEL_MODULES: [&str; 3] = ["ntoskrnl.exe", "HAL.dll", "WDFLDR.SYS"];

/// Writes `dir/link-kmdf`: it records its arguments, one a line, in the
/// file `$CIV_LINK_ARGS` (libraries in rustc's temporary folder, which
/// rustc deletes after the link, are copied to `$CIV_LINK_ARGS.d` and
/// recorded there), then runs lld-link with them, less the link.exe options
/// that lld-link does not know and wdk-build passes (/KERNEL,
/// /MAPINFO:EXPORTS). Give it to cargo as the MSVC target's linker.
pub fn wrapper(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("link-kmdf");
    let script = r#"#!/bin/sh
# Written by tests/tests/kmdf_build.rs (kmdf_link/link.rs).
keep="$CIV_LINK_ARGS.d"
rm -rf "$keep" && mkdir -p "$keep" && : > "$CIV_LINK_ARGS" || exit 1
for arg; do
  case "$arg" in
    */rustc*/*.rlib | */rustc*/*.lib) cp "$arg" "$keep/" && arg="$keep/${arg##*/}" ;;
  esac
  printf '%s\n' "$arg" >> "$CIV_LINK_ARGS"
done
for arg; do
  shift
  case "$arg" in /KERNEL | /MAPINFO:*) ;; *) set -- "$@" "$arg" ;; esac
done
exec lld-link "$@"
"#;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// The libraries on a link line, in order, with their paths resolved the
/// way the linker resolves them (as given, else in each /LIBPATH: folder).
/// Options (`/NAME` or `/NAME:value`) and objects are left out; so are
/// names no folder holds.
pub fn libraries(args: &[String]) -> Vec<PathBuf> {
    let is_option = |a: &str| {
        a.strip_prefix('/')
            .is_some_and(|rest| !rest.split(':').next().unwrap_or_default().contains('/'))
    };
    let lib_dirs: Vec<PathBuf> = args
        .iter()
        .filter_map(|a| {
            a.get(..9)
                .filter(|p| p.eq_ignore_ascii_case("/LIBPATH:"))
                .map(|_| PathBuf::from(&a[9..]))
        })
        .collect();
    args.iter()
        .filter(|a| !is_option(a))
        .filter(|a| {
            let lower = a.to_ascii_lowercase();
            lower.ends_with(".lib") || lower.ends_with(".rlib") || lower.ends_with(".a")
        })
        .filter_map(|a| {
            let given = PathBuf::from(a);
            if given.is_file() {
                return Some(given);
            }
            lib_dirs.iter().map(|d| d.join(a)).find(|p| p.is_file())
        })
        .collect()
}

/// The library link.exe takes `symbol` from, when an object that needs it
/// comes from the library defining `entry` (the /ENTRY symbol, undefined
/// from the start, so taken from the first library that defines it).
/// link.exe looks for what such an object needs in its own library, then
/// in the libraries after it on the command line, then from the first one
/// on (learn.microsoft.com/cpp/build/reference/link-input-files); lld-link
/// instead takes the first library on the line that defines the name.
pub fn linkexe_source(libraries: &[PathBuf], entry: &str, symbol: &str) -> Result<PathBuf, String> {
    let mut tables: HashMap<&Path, Vec<String>> = HashMap::new();
    for lib in libraries {
        if !tables.contains_key(lib.as_path()) {
            let data = std::fs::read(lib).map_err(|e| format!("{}: {e}", lib.display()))?;
            let symbols = archive::symbols(&data).map_err(|e| format!("{}: {e}", lib.display()))?;
            tables.insert(lib, symbols);
        }
    }
    let defines = |i: usize, name: &str| tables[libraries[i].as_path()].iter().any(|s| s == name);
    let from = (0..libraries.len())
        .find(|&i| defines(i, entry))
        .ok_or_else(|| format!("no library on the link line defines the entry {entry}"))?;
    (0..libraries.len())
        .map(|k| (from + k) % libraries.len())
        .find(|&i| defines(i, symbol))
        .map(|i| libraries[i].clone())
        .ok_or_else(|| format!("no library on the link line defines {symbol}"))
}

/// `(module, function)` for each import of a PE image.
pub fn imports(image: &Path) -> Result<Vec<(String, String)>, String> {
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let pe =
        PeImage::parse(&bytes, Layout::File).map_err(|e| format!("{}: {e:?}", image.display()))?;
    let mut list = Vec::new();
    pe.for_each_import(|i| {
        let name = match i.name {
            ImportName::Name(n) => String::from_utf8_lossy(n).into_owned(),
            ImportName::Ordinal(o) => format!("#{o}"),
        };
        list.push((String::from_utf8_lossy(i.module).into_owned(), name));
    })
    .map_err(|e| format!("{}: imports: {e:?}", image.display()))?;
    Ok(list)
}

/// Checks that `image` imports only from [`KERNEL_MODULES`] and takes
/// `function` from ntoskrnl.exe.
pub fn assert_kernel_imports(image: &Path, function: &str) {
    let imports = imports(image).unwrap_or_else(|e| panic!("{e}"));
    let foreign: Vec<_> = imports
        .iter()
        .filter(|(m, _)| !KERNEL_MODULES.iter().any(|k| k.eq_ignore_ascii_case(m)))
        .collect();
    assert!(
        foreign.is_empty(),
        "{} imports from outside {KERNEL_MODULES:?}: {foreign:?}",
        image.display()
    );
    let from: Vec<_> = imports.iter().filter(|(_, f)| f == function).collect();
    assert!(
        !from.is_empty()
            && from
                .iter()
                .all(|(m, _)| m.eq_ignore_ascii_case("ntoskrnl.exe")),
        "{} takes {function} from {from:?}, not from ntoskrnl.exe",
        image.display()
    );
}
