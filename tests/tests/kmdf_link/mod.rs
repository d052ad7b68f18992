//! The KMDF image's link, reproduced on Linux for tests/tests/kmdf_build.rs:
//! stand-ins for the WDK's libraries ([`standins`]), a stand-in crate graph
//! shaped like civ's KMDF build ([`graph`]), a linker wrapper that records
//! rustc's link line, link.exe's library search rule applied to that line,
//! and the image's imports ([`link`]).

pub mod archive;
pub mod graph;
pub mod link;
pub mod standins;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target civ.sys is built for.
pub const TARGET: &str = "x86_64-pc-windows-msvc";

/// The workspace's root.
pub fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// A stand-in input under tests/fixtures/kmdf.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/kmdf")
        .join(name)
}

/// Runs a tool: its stdout, or an error holding its output and `hint`.
pub fn output(cmd: &mut Command, hint: &str) -> Result<Vec<u8>, String> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Err(e) => Err(format!("cannot run {tool} ({hint}): {e}")),
        Ok(out) if out.status.success() => Ok(out.stdout),
        Ok(out) => Err(format!(
            "{tool} {:?} failed ({hint}):\n{}{}",
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Runs a tool, as [`output`], for its effect.
pub fn run(cmd: &mut Command, hint: &str) -> Result<(), String> {
    output(cmd, hint).map(|_| ())
}

/// `cargo`, as the outer cargo names it, with the rustflags of the
/// environment cleared so that the config files decide.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUSTFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A linked image and the link line rustc gave the linker.
pub struct Linked {
    /// The image.
    pub image: PathBuf,
    /// The linker's arguments.
    pub args: Vec<String>,
}

/// Builds `package`'s cdylib (file stem `stem`) for [`TARGET`] in
/// `workspace`, with `cargo build <cargo_args>`, into `target_dir`, linked
/// by the [`link::wrapper`] in `target_dir`. `link_order` false sets
/// CIV_WITHOUT_KMDF_LINK_ORDER (read by the stand-in graph's build script).
pub fn cargo_link(
    workspace: &Path,
    target_dir: &Path,
    package: &str,
    stem: &str,
    cargo_args: &[&str],
    link_order: bool,
) -> Result<Linked, String> {
    let wrapper = link::wrapper(target_dir)?;
    let profile = if cargo_args.contains(&"--release") {
        "release"
    } else {
        "debug"
    };
    let out = target_dir.join(TARGET).join(profile);
    // Without its output the crate is rebuilt, and so linked again: the
    // link line is always this build's.
    let _ = std::fs::remove_file(out.join("deps").join(format!("{stem}.dll")));
    let args_file = target_dir.join(format!("link-args-{stem}-{profile}.txt"));
    let _ = std::fs::remove_file(&args_file);
    let mut cmd = cargo();
    cmd.current_dir(workspace)
        .args(["build", "-p", package, "--target", TARGET])
        .args(cargo_args)
        .arg("--config")
        .arg(format!(
            "target.{TARGET}.linker=\"{}\"",
            wrapper.to_string_lossy()
        ))
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CIV_LINK_ARGS", &args_file);
    if link_order {
        cmd.env_remove("CIV_WITHOUT_KMDF_LINK_ORDER");
    } else {
        cmd.env("CIV_WITHOUT_KMDF_LINK_ORDER", "1");
    }
    run(&mut cmd, "cargo build of a KMDF image")?;
    let args = std::fs::read_to_string(&args_file)
        .map_err(|e| format!("the linker wrapper left no {}: {e}", args_file.display()))?
        .lines()
        .map(str::to_string)
        .collect();
    Ok(Linked {
        image: out.join(format!("{stem}.dll")),
        args,
    })
}
