//! civ is `MIT OR Apache-2.0`: the repository carries both texts, every
//! crate of the workspace says so, and every dependency cargo resolves (for
//! any target, dev and build ones too) has a licence those two can ship
//! with: one of its `OR` alternatives made only of permissive licences.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Licences a dependency of an `MIT OR Apache-2.0` project may carry.
const PERMISSIVE: [&str; 14] = [
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "CC0-1.0",
    "Unlicense",
    "BSL-1.0",
    "0BSD",
];

/// Does an SPDX expression (as crates write them, `/` for OR included)
/// allow shipping under MIT or Apache-2.0?
fn permissive(expression: &str) -> bool {
    let expression = expression.replace(['(', ')'], " ").replace('/', " OR ");
    expression.split(" OR ").any(|alternative| {
        alternative
            .split(" AND ")
            .map(str::trim)
            .all(|part| PERMISSIVE.contains(&part))
    })
}

#[test]
fn the_expression_reader_tells_permissive_from_copyleft() {
    for ok in [
        "MIT OR Apache-2.0",
        "Apache-2.0/MIT",
        "(MIT OR Apache-2.0) AND Unicode-3.0",
        "MIT OR Apache-2.0 OR LGPL-2.1-or-later",
        "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT",
    ] {
        assert!(permissive(ok), "{ok}");
    }
    for bad in [
        "GPL-2.0-or-later",
        "LGPL-3.0",
        "MPL-2.0 AND MIT",
        "SSPL-1.0",
    ] {
        assert!(!permissive(bad), "{bad}");
    }
}

#[test]
fn every_crate_and_dependency_fits_mit_or_apache() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for text in ["LICENSE-MIT", "LICENSE-APACHE"] {
        let body = std::fs::read_to_string(root.join(text)).unwrap_or_default();
        assert!(body.len() > 500, "{text} is missing or empty");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let mut refused = Vec::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().unwrap_or("?");
        let licence = p["license"].as_str();
        if members.contains(p["id"].as_str().unwrap_or("")) {
            assert_eq!(licence, Some("MIT OR Apache-2.0"), "workspace crate {name}");
            continue;
        }
        match licence {
            Some(l) if permissive(l) => {}
            other => refused.push(format!("{name} {}: {other:?}", p["version"])),
        }
    }
    assert!(
        refused.is_empty(),
        "dependencies whose licence does not fit MIT OR Apache-2.0:\n{}",
        refused.join("\n")
    );
}
