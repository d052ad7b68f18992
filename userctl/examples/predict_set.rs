//! Call-site prediction alone, in memory: reads every PE file under the
//! given folders first (not timed), then times the prediction of each on
//! one thread. Prints JSON: files, images predicted (x64 and x86 with
//! hooked imports), sites, bytes of code, bytes decoded, seconds; for
//! bench/lief/run.sh.

use civ_engine::pe::{Layout, PeImage};
use std::time::Instant;

fn main() {
    let mut files = Vec::new();
    for arg in std::env::args_os().skip(1) {
        for entry in walkdir::WalkDir::new(arg).sort_by_file_name() {
            let Ok(entry) = entry else { continue };
            if entry.file_type().is_file()
                && let Ok(data) = std::fs::read(entry.path())
                && data.starts_with(b"MZ")
            {
                files.push(data);
            }
        }
    }
    let (mut predicted, mut sites, mut code, mut decoded) = (0usize, 0usize, 0usize, 0usize);
    let start = Instant::now();
    let mut each = Vec::new();
    for d in &files {
        let t = Instant::now();
        let Ok(pe) = PeImage::parse(d, Layout::File) else {
            continue;
        };
        if let Ok(Some(p)) = civctl::predict::predict_with_cost(&pe)
            && !p.sites.is_empty()
        {
            predicted += 1;
            sites += p.sites.len();
            code += p.code;
            decoded += p.decoded;
            each.push((
                t.elapsed().as_secs_f64(),
                d.len(),
                p.code,
                p.decoded,
                p.sites.len(),
            ));
        }
    }
    if std::env::var_os("PREDICT_SET_SLOWEST").is_some() {
        each.sort_by(|a, b| b.0.total_cmp(&a.0));
        for e in each.iter().take(8) {
            eprintln!(
                "{:.6} s  file {} code {} decoded {} sites {}",
                e.0, e.1, e.2, e.3, e.4
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "files": files.len(),
        "images_with_sites": predicted,
        "sites": sites,
        "code_bytes": code,
        "decoded_bytes": decoded,
        "seconds": seconds,
    });
    println!("{out}");
}
