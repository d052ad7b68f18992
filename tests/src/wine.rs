//! A Wine prefix to run civ.sys and fixture drivers in, for the end-to-end
//! tests: drivers are installed as kernel services and started from one
//! batch file per scenario, inside one `wine cmd /c` (the driver host lives
//! only while a Wine program runs). Each scenario uses its own service group,
//! hence its own winedevice host: a bug check in one ends only that host.
//!
//! Two Wines can run a prefix ([`Loader`]): the host's (Debian 12's Wine 8)
//! and Debian 13's Wine 10 in the chroot `scripts/wine10.sh` makes, which
//! implements more of the catalog's APIs. [`ntoskrnl_export`] tells, from a
//! loader's own ntoskrnl.exe, which catalog APIs it can run.

use crate::unwind::image::Image;
use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic, Register};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Wine prefixes are heavy (~700 MB, a wineserver each): one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Which Wine runs a prefix's programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    /// The host's Wine (Debian 12: Wine 8.0).
    Host,
    /// Debian 13's Wine 10, in the chroot `scripts/wine10.sh` makes and
    /// caches (needs root, and the Debian mirror the first time).
    Wine10,
}

impl Loader {
    /// The name the documentation uses.
    pub fn label(self) -> &'static str {
        match self {
            Loader::Host => "Wine 8 (host)",
            Loader::Wine10 => "Wine 10 (Debian 13 chroot)",
        }
    }

    /// The loader's 64-bit ntoskrnl.exe, as a path on the host.
    pub fn ntoskrnl(self) -> Result<PathBuf, String> {
        let root = match self {
            Loader::Host => PathBuf::from("/"),
            Loader::Wine10 => wine10_root()?,
        };
        let path = root.join("usr/lib/x86_64-linux-gnu/wine/x86_64-windows/ntoskrnl.exe");
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{}: no {}", self.label(), path.display()))
        }
    }
}

fn wine10_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/wine10.sh")
}

/// The Wine 10 chroot's root folder: `scripts/wine10.sh` makes it the first
/// time (debootstrap, a few minutes) and finds it cached afterwards. The
/// error says what failed (no root, no mirror, no debootstrap).
pub fn wine10_root() -> Result<PathBuf, String> {
    static ROOT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let script = wine10_script();
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match stdout.lines().last() {
            Some(root) if out.status.success() => Ok(PathBuf::from(root)),
            _ => Err(format!(
                "the Wine 10 chroot could not be made by {} (it needs root, debootstrap \
                 and the Debian mirror; scripts/setup.sh makes it): {}\n{stderr}",
                script.display(),
                out.status
            )),
        }
    })
    .clone()
}

/// A fresh Wine prefix, removed on drop.
pub struct Prefix {
    dir: PathBuf,
    loader: Loader,
    _guard: std::sync::MutexGuard<'static, ()>,
}

fn wine_env(cmd: &mut Command, prefix: &Path) {
    cmd.env("WINEPREFIX", prefix)
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY");
}

impl Prefix {
    /// Makes a prefix under target/wine (`wineboot --init`) for the host's
    /// Wine.
    pub fn new(name: &str) -> Prefix {
        Prefix::with_loader(name, Loader::Host)
    }

    /// Makes a prefix under target/wine for `loader`. For Wine 10 the
    /// prefix's folder is bind-mounted into the chroot at the same path, so
    /// the host reads and writes it as for the host's Wine. Panics with
    /// what failed when the loader cannot be had.
    pub fn with_loader(name: &str, loader: Loader) -> Prefix {
        let usable = match loader {
            Loader::Host => Ok(()),
            Loader::Wine10 => wine10_root().map(|_| ()),
        };
        if let Err(e) = usable {
            panic!("{e}");
        }
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = super::out_dir()
            .join("../wine")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the prefix folder");
        let dir = dir.canonicalize().expect("prefix path");
        let p = Prefix {
            dir,
            loader,
            _guard: guard,
        };
        let mut cmd = p.command(&["wineboot", "--init"]);
        cmd.env("WINEDEBUG", "-all");
        let out = cmd
            .output()
            .expect("wineboot (apt-get install wine64 wine; scripts/setup.sh does)");
        assert!(
            out.status.success(),
            "wineboot failed under {}: {}",
            loader.label(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir_all(p.dir.join("drive_c/civ")).expect("C:\\civ");
        p.kill();
        p
    }

    /// The words that run `program` under this prefix's Wine: the program
    /// itself, or the chroot's through `scripts/wine10.sh exec`.
    fn argv(&self, program: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = match self.loader {
            Loader::Host => Vec::new(),
            Loader::Wine10 => vec![
                wine10_script().into(),
                "exec".into(),
                self.dir.clone().into(),
                "--".into(),
            ],
        };
        v.extend(program.iter().map(OsString::from));
        v
    }

    /// A command for `program` under this prefix's Wine, its environment set.
    fn command(&self, program: &[&str]) -> Command {
        let argv = self.argv(program);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        wine_env(&mut cmd, &self.dir);
        cmd
    }

    /// What `wine --version` says under this prefix's loader.
    pub fn wine_version(&self) -> String {
        let mut cmd = self.command(&["wine", "--version"]);
        cmd.env("WINEDEBUG", "-all");
        let out = cmd.output().expect("run wine --version");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Copies a file to `C:\civ\<name>`.
    pub fn put(&self, from: &Path, name: &str) {
        std::fs::copy(from, self.dir.join("drive_c/civ").join(name))
            .unwrap_or_else(|e| panic!("copy {} into the prefix: {e}", from.display()));
    }

    /// Writes bytes to `C:\civ\<name>`.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join("drive_c/civ").join(name), bytes)
            .expect("write into the prefix");
    }

    /// Reads `C:\civ\<name>` (empty if absent).
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("drive_c/civ").join(name)).unwrap_or_default()
    }

    /// Stops this prefix's wineserver and waits until it is gone: the next
    /// run must start a new one, since Wine's debug channels (DbgPrint,
    /// KeBugCheckEx) follow the environment of the process that started it.
    fn kill(&self) {
        for arg in ["-k", "-w"] {
            let _ = self.command(&["wineserver", arg]).output();
        }
    }

    /// Runs batch lines in one `wine cmd /c`; returns everything printed,
    /// DbgPrint lines (`civ: ...`) and `KeBugCheckEx` lines included.
    pub fn run(&self, name: &str, lines: &[String]) -> String {
        self.kill();
        let bat = format!("{name}.bat");
        self.write(&bat, lines.join("\r\n").as_bytes());
        let bat = format!("C:\\civ\\{bat}");
        let mut cmd = self.command(&["timeout", "300", "wine", "cmd", "/c", &bat]);
        cmd.env("WINEDEBUG", "warn+debugstr,err+ntoskrnl");
        let out = cmd.output().expect("run wine");
        self.kill();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.write(&format!("{name}.log"), text.as_bytes());
        assert_ne!(
            out.status.code(),
            Some(124),
            "{name}: Wine did not finish in 300 s:\n{text}"
        );
        text
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        self.kill();
        // CIV_KEEP_WINE=1 keeps the prefix to look into after a failure.
        if std::env::var_os("CIV_KEEP_WINE").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Batch lines that install civ.sys as service `service` in `group`, with
/// its Parameters.
pub fn install_civ(
    service: &str,
    group: &str,
    level: &str,
    drivers: &str,
    action: u32,
) -> Vec<String> {
    let key = format!("HKLM\\System\\CurrentControlSet\\Services\\{service}\\Parameters");
    vec![
        format!("reg add {key} /v VerifyDriverLevel /t REG_DWORD /d {level} /f"),
        format!("reg add {key} /v VerifyDrivers /t REG_SZ /d \"{drivers}\" /f"),
        format!("reg add {key} /v ViolationAction /t REG_DWORD /d {action} /f"),
        format!(
            "sc create {service} type= kernel start= demand binPath= C:\\civ\\civ.sys group= {group}"
        ),
    ]
}

/// Batch lines that install and start a driver `C:\civ\<file>`.
pub fn install_and_start(service: &str, group: &str, file: &str) -> Vec<String> {
    vec![
        format!(
            "sc create {service} type= kernel start= demand binPath= C:\\civ\\{file} group= {group}"
        ),
        format!("net start {service}"),
    ]
}

/// One `civ: NAME: target N at 0xBASE size 0xSIZE` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hooked {
    /// The image's file name.
    pub name: String,
    /// Where it was loaded.
    pub base: u64,
    /// SizeOfImage.
    pub size: u64,
    /// Slots civ rewrote.
    pub slots: u32,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_end_matches(':').trim_start_matches("0x"), 16).ok()
}

/// Every image civ reports having hooked, in order.
pub fn hooked(output: &str) -> Vec<Hooked> {
    output
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("civ: ")? + 5..];
            let (name, rest) = rest.split_once(": target ")?;
            let words: Vec<&str> = rest.split([' ', ',']).filter(|w| !w.is_empty()).collect();
            let at = words.iter().position(|w| *w == "at")?;
            let slots = words.iter().position(|w| *w == "slot(s)")?;
            Some(Hooked {
                name: name.to_string(),
                base: hex(words.get(at + 1)?)?,
                size: hex(words.get(at + 3)?)?,
                slots: words.get(slots - 1)?.parse().ok()?,
            })
        })
        .collect()
}

/// Every `KeBugCheckEx code a1 a2 a3 a4` Wine printed, in order.
pub fn bug_checks(output: &str) -> Vec<[u64; 5]> {
    output
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("KeBugCheckEx ")? + 13..];
            let v: Vec<u64> = rest.split_whitespace().filter_map(hex).collect();
            <[u64; 5]>::try_from(v.get(..5)?).ok()
        })
        .collect()
}

/// The IOCTL client's result lines: (ok, GetLastError, bytes).
pub fn probe_results(output: &str) -> Vec<(bool, u32, usize)> {
    output
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let ok = l.strip_prefix("ok=")?;
            let mut it = ok.split_whitespace();
            let ok = it.next()? == "1";
            let error = it.next()?.strip_prefix("error=")?.parse().ok()?;
            let bytes = it.next()?.strip_prefix("bytes=")?.parse().ok()?;
            Some((ok, error, bytes))
        })
        .collect()
}

/// civctl.exe, cross-compiled for x86_64-pc-windows-gnu (linked by
/// mingw-w64's gcc, Rust's default for that target) into its own target
/// folder, target/wingnu. Under Wine 8 it needs [`crate::bcrypt_stand_in`]
/// beside it.
pub fn civctl_exe() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/wingnu");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            "civctl",
            "--bin",
            "civctl",
            "--target",
            "x86_64-pc-windows-gnu",
        ])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo build for x86_64-pc-windows-gnu");
    assert!(
        out.status.success(),
        "cargo build -p civctl --target x86_64-pc-windows-gnu failed (scripts/setup.sh adds the target):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = target.join("x86_64-pc-windows-gnu/debug/civctl.exe");
    *built = Some(p.clone());
    p
}

/// civ.sys, built by `cargo wdm` into its own target folder (the outer
/// cargo holds the workspace's while tests run).
pub fn civ_sys() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/wdm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .arg("wdm")
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo wdm");
    assert!(
        out.status.success(),
        "cargo wdm failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = target.join("x86_64-pc-windows-msvc/release/civ.dll");
    *built = Some(p.clone());
    p
}

/// What a loader's ntoskrnl.exe has for an API a driver imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// Not exported: a driver importing it does not load.
    Missing,
    /// Exported as a spec-file stub: calling it raises Wine's
    /// "unimplemented function" exception, which ends the driver host.
    Stub,
    /// Exported with code of its own.
    Implemented,
}

/// Classifies `name` in a Wine ntoskrnl.exe. Wine's stubs (`@ stub` in the
/// spec file) are generated code that passes the module's and the
/// function's names to `__wine_spec_unimplemented_stub`: an export whose
/// first instructions load the address of its own name into the second
/// argument register and then call is a stub.
pub fn ntoskrnl_export(image: &Image<'_>, name: &str) -> Export {
    let Some(&(_, rva)) = image.exports.iter().find(|(n, _)| n == name) else {
        return Export::Missing;
    };
    let Some(code) = image.bytes_at(rva) else {
        return Export::Implemented;
    };
    let ip = image.image_base + u64::from(rva);
    let mut names_itself = false;
    for ins in Decoder::with_ip(64, code, ip, DecoderOptions::NONE)
        .into_iter()
        .take(4)
    {
        if ins.mnemonic() == Mnemonic::Lea
            && ins.op0_register() == Register::RDX
            && ins.is_ip_rel_memory_operand()
        {
            let string = ins
                .ip_rel_memory_address()
                .checked_sub(image.image_base)
                .and_then(|r| u32::try_from(r).ok())
                .and_then(|r| image.bytes_at(r));
            names_itself = string.is_some_and(|s| {
                s.strip_prefix(name.as_bytes())
                    .is_some_and(|rest| rest.first() == Some(&0))
            });
        }
        if ins.flow_control() == FlowControl::Call {
            return if names_itself {
                Export::Stub
            } else {
                Export::Implemented
            };
        }
    }
    Export::Implemented
}

/// Does the instruction that ends at `rva` in `image` call? (A return
/// address, or a call site as civ records it, follows a call.) Tries every
/// instruction length that ends exactly there.
pub fn follows_call(image: &Image<'_>, rva: u32) -> bool {
    if !image.is_code(rva.wrapping_sub(1)) {
        return false;
    }
    (2..=15u32).any(|len| {
        let Some(start) = rva.checked_sub(len) else {
            return false;
        };
        let Some(bytes) = image.bytes_at(start).and_then(|b| b.get(..len as usize)) else {
            return false;
        };
        let ins = Decoder::with_ip(64, bytes, u64::from(start), DecoderOptions::NONE).decode();
        ins.len() == len as usize
            && matches!(
                ins.flow_control(),
                FlowControl::Call | FlowControl::IndirectCall
            )
    })
}
