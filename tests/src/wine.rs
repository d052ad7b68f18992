//! A Wine prefix to run civ.sys and fixture drivers in, for the end-to-end
//! tests: drivers are installed as kernel services and started from one
//! batch file per scenario, inside one `wine cmd /c` (the driver host lives
//! only while a Wine program runs). Each scenario uses its own service group,
//! hence its own winedevice host: a bug check in one ends only that host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Wine prefixes are heavy (~700 MB, a wineserver each): one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A fresh Wine prefix, removed on drop.
pub struct Prefix {
    dir: PathBuf,
    _guard: std::sync::MutexGuard<'static, ()>,
}

fn wine_env(cmd: &mut Command, prefix: &Path) {
    cmd.env("WINEPREFIX", prefix)
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY");
}

impl Prefix {
    /// Makes a prefix under target/wine (`wineboot --init`).
    pub fn new(name: &str) -> Prefix {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = super::out_dir()
            .join("../wine")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the prefix folder");
        let dir = dir.canonicalize().expect("prefix path");
        let mut cmd = Command::new("wineboot");
        cmd.arg("--init").env("WINEDEBUG", "-all");
        wine_env(&mut cmd, &dir);
        let out = cmd
            .output()
            .expect("wineboot (apt-get install wine64 wine; scripts/setup.sh does)");
        assert!(
            out.status.success(),
            "wineboot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir_all(dir.join("drive_c/civ")).expect("C:\\civ");
        let p = Prefix { dir, _guard: guard };
        p.kill();
        p
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
            let mut cmd = Command::new("wineserver");
            cmd.arg(arg);
            wine_env(&mut cmd, &self.dir);
            let _ = cmd.output();
        }
    }

    /// Runs batch lines in one `wine cmd /c`; returns everything printed,
    /// DbgPrint lines (`civ: ...`) and `KeBugCheckEx` lines included.
    pub fn run(&self, name: &str, lines: &[String]) -> String {
        self.kill();
        let bat = format!("{name}.bat");
        self.write(&bat, lines.join("\r\n").as_bytes());
        let mut cmd = Command::new("timeout");
        cmd.args(["300", "wine", "cmd", "/c", &format!("C:\\civ\\{bat}")])
            .env("WINEDEBUG", "warn+debugstr,err+ntoskrnl");
        wine_env(&mut cmd, &self.dir);
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
