//! The floor of `civctl scan` on a set of files: only what every scan must
//! do, finding the files, reading each and computing its SHA-256, on every
//! core as `civctl scan` does, with nothing parsed, predicted or written.
//! bench/lief/run.sh times it from outside like civctl: LIEF's time over
//! this one is the most any scan that hashes every file could reach on
//! this machine and set.

use civctl::scan::analyze::sha256_hex;
use rayon::prelude::*;

fn main() {
    let mut paths = Vec::new();
    for arg in std::env::args_os().skip(1) {
        for entry in walkdir::WalkDir::new(arg).sort_by_file_name() {
            let Ok(entry) = entry else { continue };
            if entry.file_type().is_file() {
                paths.push(entry.into_path());
            }
        }
    }
    let hashed = paths
        .par_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|d| d.starts_with(b"MZ"))
        .map(|d| sha256_hex(&d))
        .count();
    println!("{hashed}");
}
