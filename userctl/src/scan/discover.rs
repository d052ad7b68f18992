//! Which files `civctl scan` looks at: every file named on the command line,
//! and under each folder (recursively) the `.sys` files, or every file that
//! starts with `MZ` when asked for any PE.

use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A path that could not be walked.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PathError {
    /// The path.
    pub path: String,
    /// Why.
    pub error: String,
}

/// What discovery found.
#[derive(Debug, Default)]
pub struct Found {
    /// Files to scan, folders' contents sorted by path.
    pub files: Vec<PathBuf>,
    /// Paths that do not exist or could not be read.
    pub errors: Vec<PathError>,
}

fn is_sys(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("sys"))
}

fn starts_with_mz(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"MZ")
}

/// Expands the command line's paths into files.
pub fn discover(paths: &[PathBuf], all_pe: bool) -> Found {
    let mut found = Found::default();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => found.errors.push(PathError {
                path: path.display().to_string(),
                error: e.to_string(),
            }),
            Ok(m) if !m.is_dir() => found.files.push(path.clone()),
            Ok(_) => {
                let mut files = Vec::new();
                for entry in walkdir::WalkDir::new(path).follow_links(false) {
                    match entry {
                        Err(e) => found.errors.push(PathError {
                            path: e.path().unwrap_or(path).display().to_string(),
                            error: e.to_string(),
                        }),
                        Ok(e) if e.file_type().is_file() => {
                            let p = e.into_path();
                            if is_sys(&p) || (all_pe && starts_with_mz(&p)) {
                                files.push(p);
                            }
                        }
                        Ok(_) => {}
                    }
                }
                files.sort();
                found.files.extend(files);
            }
        }
    }
    found
}
