//! The checks alone, in memory: reads every PE file under the given folders
//! first (not timed), then times civctl's image checks and hooked-import
//! listing over the bytes on one thread. Prints JSON in `civctl scan`'s
//! shape plus `seconds` and `per_file_us`, for bench/lief/run.sh to compare
//! against the same checks written with LIEF (`checks_lief.py --in-memory`).

use civctl::scan::analyze::{analyze_unhashed, sha256_hex};
use std::time::Instant;

fn main() {
    let mut files = Vec::new();
    for arg in std::env::args_os().skip(1) {
        for entry in walkdir::WalkDir::new(arg).sort_by_file_name() {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(data) = std::fs::read(entry.path()) else {
                continue;
            };
            if data.starts_with(b"MZ") {
                let path = std::path::absolute(entry.path())
                    .unwrap_or_else(|_| entry.path().to_path_buf());
                files.push((path.display().to_string(), data));
            }
        }
    }
    let start = Instant::now();
    let mut reports: Vec<_> = files
        .iter()
        .map(|(p, d)| analyze_unhashed(p.clone(), d))
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    for (r, (_, d)) in reports.iter_mut().zip(&files) {
        r.sha256 = sha256_hex(d);
    }
    let out = serde_json::json!({
        "tool": "civ-engine",
        "files": reports,
        "errors": [],
        "seconds": seconds,
        "per_file_us": seconds / files.len().max(1) as f64 * 1e6,
    });
    println!("{out}");
}
