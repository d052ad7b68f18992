//! Where a Windows installation keeps what the audit reads, and how a
//! service's ImagePath becomes a file: on a live system, the paths as they
//! are; offline, the same paths under a mounted volume's root, with each
//! component matched case-insensitively (a volume mounted on Linux is
//! case-sensitive, Windows' names are not).

use std::path::{Path, PathBuf};

/// A Windows installation's folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The system drive's root (`C:\`, or the mount point).
    pub root: PathBuf,
    /// The Windows folder (`%SystemRoot%`).
    pub windows: PathBuf,
}

/// Joins a Windows relative path under `base`, matching each component
/// case-insensitively when the exact name is not there.
pub fn find(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut at = base.to_path_buf();
    for comp in rel
        .split(['\\', '/'])
        .filter(|c| !c.is_empty() && *c != ".")
    {
        let exact = at.join(comp);
        if exact.exists() {
            at = exact;
            continue;
        }
        let entry = std::fs::read_dir(&at).ok()?.flatten().find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(comp))
        })?;
        at = entry.path();
    }
    Some(at)
}

/// Joins a Windows relative path component by component (the platform's
/// separator, whatever the path was written with).
fn join(base: &Path, rel: &str) -> PathBuf {
    rel.split(['\\', '/'])
        .filter(|c| !c.is_empty() && *c != ".")
        .fold(base.to_path_buf(), |at, c| at.join(c))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &s[prefix.len()..])
}

impl Layout {
    /// A mounted Windows volume: its root holds the Windows folder.
    pub fn offline(root: &Path) -> Result<Layout, String> {
        if !root.is_dir() {
            return Err(format!("{}: not a folder", root.display()));
        }
        let windows = find(root, "Windows")
            .filter(|w| w.is_dir())
            .ok_or_else(|| {
                format!(
                    "{}: no Windows folder: give the root of a Windows volume",
                    root.display()
                )
            })?;
        Ok(Layout {
            root: root.to_path_buf(),
            windows,
        })
    }

    /// A path under the Windows folder.
    pub fn under_windows(&self, rel: &str) -> PathBuf {
        find(&self.windows, rel).unwrap_or_else(|| join(&self.windows, rel))
    }

    /// The SYSTEM hive.
    pub fn system_hive(&self) -> PathBuf {
        self.under_windows("System32\\config\\SYSTEM")
    }

    /// The Driver Store's FileRepository.
    pub fn file_repository(&self) -> PathBuf {
        self.under_windows("System32\\DriverStore\\FileRepository")
    }

    /// The INF folder (where the published `oemNN.inf` are).
    pub fn inf_folder(&self) -> PathBuf {
        self.under_windows("INF")
    }

    /// The file a service's ImagePath names: `\SystemRoot\...`,
    /// `%SystemRoot%\...`, `System32\...` (relative to the Windows folder),
    /// `\??\C:\...`, `C:\...` or `\Windows\...` (on the system drive).
    pub fn resolve_image(&self, image_path: &str) -> PathBuf {
        let p = image_path.trim().trim_matches('"');
        let p = strip_prefix_ci(p, "\\??\\").unwrap_or(p);
        for prefix in ["\\SystemRoot\\", "%SystemRoot%\\", "%windir%\\"] {
            if let Some(rest) = strip_prefix_ci(p, prefix) {
                return self.under_windows(rest);
            }
        }
        let bytes = p.as_bytes();
        if bytes.len() > 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
            let rest = &p[2..];
            return find(&self.root, rest).unwrap_or_else(|| join(&self.root, rest));
        }
        if let Some(rest) = p.strip_prefix('\\') {
            return find(&self.root, rest).unwrap_or_else(|| join(&self.root, rest));
        }
        self.under_windows(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_resolve_case_insensitively_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let drivers = dir.path().join("WINDOWS/system32/Drivers");
        std::fs::create_dir_all(&drivers).unwrap();
        std::fs::write(drivers.join("Foo.SYS"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("Tools")).unwrap();
        std::fs::write(dir.path().join("Tools/bar.sys"), b"x").unwrap();
        let l = Layout::offline(dir.path()).unwrap();
        let foo = drivers.join("Foo.SYS");
        for p in [
            "\\SystemRoot\\System32\\drivers\\foo.sys",
            "System32\\DRIVERS\\foo.sys",
            "\\??\\C:\\Windows\\System32\\drivers\\FOO.sys",
            "%SystemRoot%\\system32\\drivers\\foo.sys",
            "\\Windows\\System32\\drivers\\foo.sys",
        ] {
            assert_eq!(l.resolve_image(p), foo, "{p}");
        }
        assert_eq!(
            l.resolve_image("C:\\tools\\BAR.sys"),
            dir.path().join("Tools/bar.sys")
        );
        assert!(!l.resolve_image("System32\\drivers\\none.sys").exists());
        assert!(
            Layout::offline(&dir.path().join("Tools"))
                .unwrap_err()
                .contains("no Windows folder")
        );
    }
}
