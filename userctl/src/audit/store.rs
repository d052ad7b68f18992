//! The Driver Store: each package folder of
//! `System32\DriverStore\FileRepository` with its INF and its driver
//! images, and the package's published name (`oemNN.inf` in the INF
//! folder is a copy of the package's INF: the two are matched by content).

use super::inf::{self, InfService};
use super::layout::Layout;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// INF files larger than this are not read.
const MAX_INF: u64 = 16 << 20;

/// One Driver Store package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The FileRepository folder's name (`vigembus.inf_amd64_…`).
    pub folder: String,
    /// The INF's file name in it.
    pub inf: String,
    /// The published name, `oemNN.inf`, when the INF folder has a copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `[Version] Provider`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `[Version] Class`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// `[Version] DriverVer`'s version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The services the INF installs.
    pub services: Vec<InfService>,
    /// The driver images (`.sys`) in the folder.
    #[serde(skip)]
    pub images: Vec<PathBuf>,
    /// The folder.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn read_small(path: &Path) -> Option<Vec<u8>> {
    let len = std::fs::metadata(path).ok()?.len();
    (len <= MAX_INF).then(|| std::fs::read(path).ok()).flatten()
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The INF folder's `oem*.inf`, by the SHA-256 of their content.
fn published_names(layout: &Layout) -> BTreeMap<[u8; 32], String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(layout.inf_folder()) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let lower = name.to_ascii_lowercase();
        if !(lower.starts_with("oem") && lower.ends_with(".inf")) {
            continue;
        }
        if let Some(bytes) = read_small(&e.path()) {
            out.insert(Sha256::digest(&bytes).into(), name);
        }
    }
    out
}

/// Reads every package of the Driver Store; notes say what could not be read.
pub fn read(layout: &Layout, notes: &mut Vec<String>) -> Vec<Package> {
    let repo = layout.file_repository();
    let Ok(entries) = std::fs::read_dir(&repo) else {
        notes.push(format!("no Driver Store at {}", repo.display()));
        return Vec::new();
    };
    let published = published_names(layout);
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut out = Vec::new();
    for dir in folders {
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut infs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && has_ext(p, "inf"))
            .collect();
        infs.sort();
        let images: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
            .max_depth(4)
            .sort_by_file_name()
            .into_iter()
            .flatten()
            .map(|e| e.into_path())
            .filter(|p| p.is_file() && has_ext(p, "sys"))
            .collect();
        if infs.is_empty() {
            notes.push(format!(
                "{}: a Driver Store folder without an INF",
                dir.display()
            ));
        }
        for inf_path in infs {
            let Some(bytes) = read_small(&inf_path) else {
                notes.push(format!("{}: cannot read", inf_path.display()));
                continue;
            };
            let parsed = inf::parse(&inf::decode(&bytes));
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            out.push(Package {
                folder: folder.clone(),
                inf: inf_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                published: published.get(&digest).cloned(),
                provider: parsed.provider,
                class: parsed.class,
                driver_version: parsed.driver_version,
                services: parsed.services,
                images: images.clone(),
                dir: dir.clone(),
            });
        }
    }
    out
}
