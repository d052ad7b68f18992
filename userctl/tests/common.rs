//! Helpers shared by civctl's integration tests.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs civctl with arguments; returns (exit code, stdout, stderr).
pub fn civctl<I, S>(args: I) -> (i32, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_civctl"))
        .args(args)
        .output()
        .expect("run civctl");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `civctl scan --format json ARGS`, parsed.
pub fn scan_json(args: &[&Path], extra: &[&str]) -> (i32, Value) {
    let mut a: Vec<std::ffi::OsString> = vec!["scan".into(), "--format".into(), "json".into()];
    a.extend(extra.iter().map(|s| s.into()));
    a.extend(args.iter().map(|p| p.as_os_str().to_owned()));
    let (code, stdout, stderr) = civctl(a);
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}\n{stderr}"));
    (code, v)
}

/// The codes of a file report's findings, sorted and unique.
pub fn codes(file: &Value) -> Vec<String> {
    let mut c: Vec<String> = file["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_string())
        .collect();
    c.sort();
    c.dedup();
    c
}
