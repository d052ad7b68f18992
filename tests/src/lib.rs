//! Fixture PE images for civ's tests, built from the sources in `fixtures/`
//! with the toolchain's own `rust-lld` (Rust sources), clang and lld-link
//! (C, with a PDB) or mingw-w64 gcc (C, no PDB), so that every test runs on
//! real compiler and linker output rather than on hand-made bytes.
//!
//! Each [`Fixture`] is one source linked with one set of flags; building is
//! cached under `target/civ-fixtures` and safe from parallel tests. The C
//! toolchains come from Debian's packages (`scripts/setup.sh`).

pub mod unwind;
pub mod wine;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the Rust fixtures are built for.
pub const TARGET: &str = "x86_64-pc-windows-msvc";
/// The target of the ARM64 Rust fixture.
pub const TARGET_ARM64: &str = "aarch64-pc-windows-msvc";

/// The fixture images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixture {
    /// hvci_probe linked as a driver should be: no finding.
    Clean,
    /// `.data` marked ERW: 0x2003.
    WriteExecuteData,
    /// INIT marked ERW: 0x2003 on INIT.
    WriteExecuteInit,
    /// /ALIGN:0x200: 0x2004 on every section.
    LowAlignment,
    /// .rdata (with the IAT) merged into .text: 0x2005.
    IatInText,
    /// As IatInText, with the IAT data directory cleared afterwards, so the
    /// IAT is found only through FirstThunk.
    IatInTextNoDirectory,
    /// A DIR64 fixup straddling a page: unsupported relocs.
    StraddlingReloc,
    /// predict.rs: call sites with constant executable, constant NX and
    /// unknown arguments, for call-site prediction (with a PDB).
    PredictRust,
    /// predict.c built with clang and lld-link, with a PDB: calls through
    /// the IAT, an import thunk, a register, and a tail call.
    PredictClang,
    /// predict.c built with mingw-w64 gcc (DWARF, so no PDB).
    PredictMingw,
    /// flow.c built with clang and lld-link for x64, with a PDB: the
    /// data-flow patterns (NX opt-in, known bits, branches, wrappers).
    FlowClang,
    /// flow.c built with clang and lld-link for 32-bit x86 (stdcall), with
    /// a PDB.
    FlowClangX86,
    /// flow.c built with clang and lld-link for ARM64, with unwind data
    /// and a PDB.
    FlowClangArm64,
    /// predict.rs built for ARM64 (aarch64-pc-windows-msvc, rust-lld).
    PredictRustArm64,
    /// hvci_probe built for ARM64 with `.data` marked ERW: 0x2003.
    WriteExecuteDataArm64,
}

/// What builds a fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toolchain {
    /// rustc for the MSVC target, linked by rust-lld.
    Rust,
    /// clang for the MSVC target, linked by lld-link, CodeView debug info.
    Clang,
    /// The same for 32-bit x86 (i686-pc-windows-msvc).
    ClangX86,
    /// The same for ARM64 (aarch64-pc-windows-msvc).
    ClangArm64,
    /// x86_64-w64-mingw32-gcc and its ld.
    Mingw,
}

impl Fixture {
    /// Every fixture.
    pub const ALL: [Fixture; 15] = [
        Fixture::Clean,
        Fixture::WriteExecuteData,
        Fixture::WriteExecuteInit,
        Fixture::LowAlignment,
        Fixture::IatInText,
        Fixture::IatInTextNoDirectory,
        Fixture::StraddlingReloc,
        Fixture::PredictRust,
        Fixture::PredictClang,
        Fixture::PredictMingw,
        Fixture::FlowClang,
        Fixture::FlowClangX86,
        Fixture::FlowClangArm64,
        Fixture::PredictRustArm64,
        Fixture::WriteExecuteDataArm64,
    ];

    /// The fixtures for call-site prediction.
    pub const PREDICT: [Fixture; 7] = [
        Fixture::PredictRust,
        Fixture::PredictClang,
        Fixture::PredictMingw,
        Fixture::FlowClang,
        Fixture::FlowClangX86,
        Fixture::FlowClangArm64,
        Fixture::PredictRustArm64,
    ];

    /// The file name of the built image.
    pub fn file_name(self) -> &'static str {
        match self {
            Fixture::Clean => "clean.sys",
            Fixture::WriteExecuteData => "wx_data.sys",
            Fixture::WriteExecuteInit => "wx_init.sys",
            Fixture::LowAlignment => "low_align.sys",
            Fixture::IatInText => "iat_text.sys",
            Fixture::IatInTextNoDirectory => "iat_text_nodir.sys",
            Fixture::StraddlingReloc => "straddle.sys",
            Fixture::PredictRust => "predict_rust.sys",
            Fixture::PredictClang => "predict_clang.sys",
            Fixture::PredictMingw => "predict_mingw.sys",
            Fixture::FlowClang => "flow_clang.sys",
            Fixture::FlowClangX86 => "flow_clang_x86.sys",
            Fixture::FlowClangArm64 => "flow_clang_arm64.sys",
            Fixture::PredictRustArm64 => "predict_rust_arm64.sys",
            Fixture::WriteExecuteDataArm64 => "wx_data_arm64.sys",
        }
    }

    /// The toolchain that builds the fixture.
    pub fn toolchain(self) -> Toolchain {
        match self {
            Fixture::PredictClang | Fixture::FlowClang => Toolchain::Clang,
            Fixture::FlowClangX86 => Toolchain::ClangX86,
            Fixture::FlowClangArm64 => Toolchain::ClangArm64,
            Fixture::PredictMingw => Toolchain::Mingw,
            _ => Toolchain::Rust,
        }
    }

    fn source(self) -> &'static str {
        match self {
            Fixture::StraddlingReloc => "straddle.rs",
            Fixture::PredictRust | Fixture::PredictRustArm64 => "predict.rs",
            Fixture::PredictClang | Fixture::PredictMingw => "predict.c",
            Fixture::FlowClang | Fixture::FlowClangX86 | Fixture::FlowClangArm64 => "flow.c",
            _ => "hvci_probe.rs",
        }
    }

    /// The fixture's source file.
    pub fn source_path(self) -> PathBuf {
        let lang = match self.toolchain() {
            Toolchain::Rust => "rust",
            Toolchain::Clang | Toolchain::ClangX86 | Toolchain::ClangArm64 | Toolchain::Mingw => {
                "c"
            }
        };
        source_dir().join(lang).join(self.source())
    }

    /// The PDB built beside the image, for toolchains that write one
    /// (builds the fixture first).
    pub fn pdb_path(self) -> Option<PathBuf> {
        match self.toolchain() {
            Toolchain::Rust | Toolchain::Clang | Toolchain::ClangX86 | Toolchain::ClangArm64 => {
                Some(self.path().with_extension("pdb"))
            }
            Toolchain::Mingw => None,
        }
    }

    fn link_args(self) -> &'static [&'static str] {
        match self {
            Fixture::Clean
            | Fixture::StraddlingReloc
            | Fixture::PredictRust
            | Fixture::PredictClang
            | Fixture::PredictMingw
            | Fixture::FlowClang
            | Fixture::FlowClangX86
            | Fixture::FlowClangArm64
            | Fixture::PredictRustArm64 => &[],
            Fixture::WriteExecuteData | Fixture::WriteExecuteDataArm64 => &["/SECTION:.data,ERW"],
            Fixture::WriteExecuteInit => &["/SECTION:INIT,ERW"],
            Fixture::LowAlignment => &["/ALIGN:0x200", "/FILEALIGN:0x200"],
            Fixture::IatInText | Fixture::IatInTextNoDirectory => &["/MERGE:.rdata=.text"],
        }
    }

    /// Builds the fixture (once) and returns the image's path.
    pub fn path(self) -> PathBuf {
        match build(self) {
            Ok(p) => p,
            Err(e) => panic!("cannot build fixture {}: {e}", self.file_name()),
        }
    }

    /// The image's bytes.
    pub fn bytes(self) -> Vec<u8> {
        let path = self.path();
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
}

/// Where fixtures are built: `$CIV_FIXTURE_DIR`, else the workspace's
/// `target/civ-fixtures`.
pub fn out_dir() -> PathBuf {
    std::env::var_os("CIV_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/civ-fixtures"))
}

/// The fixture sources' folder.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn build(fixture: Fixture) -> Result<PathBuf, String> {
    if fixture.toolchain() != Toolchain::Rust {
        return build_c(fixture);
    }
    let target = if matches!(
        fixture,
        Fixture::PredictRustArm64 | Fixture::WriteExecuteDataArm64
    ) {
        TARGET_ARM64
    } else {
        TARGET
    };
    build_rust_for(
        target,
        fixture.file_name(),
        fixture.source(),
        &[],
        fixture.link_args(),
        |tmp| {
            if fixture == Fixture::IatInTextNoDirectory {
                clear_data_directory(tmp, 12)?;
            }
            Ok(())
        },
    )
}

/// Runs a build command; its output becomes the error, with a hint.
fn run(cmd: &mut Command, hint: &str) -> Result<(), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {program} ({hint}): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed ({hint}):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// What to do when a C toolchain is missing.
const C_HINT: &str = "scripts/setup.sh installs the C toolchains: apt-get install clang lld llvm gcc-mingw-w64-x86-64";

/// Builds a C fixture (clang + lld-link with a PDB, or mingw-w64 gcc),
/// importing from ntoskrnl.exe through an import library made from
/// fixtures/c/ntoskrnl.def.
fn build_c(fixture: Fixture) -> Result<PathBuf, String> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join(fixture.file_name());
    if newer_than_its_source(&out, &fixture.source_path()) {
        return Ok(out);
    }
    let tmp_dir = tempdir_in(&dir)?;
    let tmp = tmp_dir.join(fixture.file_name());
    let built = match fixture.toolchain() {
        Toolchain::Mingw => build_mingw(fixture, &tmp_dir, &tmp),
        _ => build_clang(fixture, &tmp_dir, &tmp),
    };
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp_dir);
        return Err(e);
    }
    // The PDB first: a test that sees the image also finds its PDB.
    let _ = std::fs::rename(tmp.with_extension("pdb"), out.with_extension("pdb"));
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot move the image into place: {e}"))?;
    let _ = std::fs::remove_dir_all(&tmp_dir);
    Ok(out)
}

/// Is the built image there and no older than its source? (A changed
/// source is built again, not tested stale.)
fn newer_than_its_source(out: &Path, source: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(out), modified(source)) {
        (Some(built), Some(written)) => built >= written,
        (Some(_), None) => true,
        _ => false,
    }
}

fn ntoskrnl_def() -> PathBuf {
    source_dir().join("c").join("ntoskrnl.def")
}

/// The x86 import names are stdcall-decorated (`Name@bytes`): their own
/// .def, and llvm-dlltool's `-k` keeps the decoration off the names the
/// image imports.
fn ntoskrnl_x86_def() -> PathBuf {
    source_dir().join("c").join("ntoskrnl_x86.def")
}

fn build_clang(fixture: Fixture, tmp_dir: &Path, tmp: &Path) -> Result<(), String> {
    let lib = tmp_dir.join("ntoskrnl.lib");
    let obj = tmp_dir.join("fixture.obj");
    let (machine, def, target) = match fixture.toolchain() {
        Toolchain::ClangX86 => (
            &["-m", "i386", "-k"][..],
            ntoskrnl_x86_def(),
            "--target=i686-pc-windows-msvc",
        ),
        Toolchain::ClangArm64 => (
            &["-m", "arm64"][..],
            ntoskrnl_def(),
            "--target=aarch64-pc-windows-msvc",
        ),
        _ => (
            &["-m", "i386:x86-64"][..],
            ntoskrnl_def(),
            "--target=x86_64-pc-windows-msvc",
        ),
    };
    run(
        Command::new("llvm-dlltool")
            .args(machine)
            .arg("-d")
            .arg(def)
            .arg("-l")
            .arg(&lib),
        C_HINT,
    )?;
    run(
        Command::new("clang")
            .args([
                target,
                "-O2",
                "-g",
                "-gcodeview",
                "-ffreestanding",
                "-fno-stack-protector",
                "-fno-builtin",
                "-masm=intel",
                "-c",
            ])
            // flow.c's x64 and ARM64 builds have unwind info (.pdata), as
            // MSVC's drivers do: function bounds for the analysis.
            .args(
                matches!(fixture, Fixture::FlowClang | Fixture::FlowClangArm64)
                    .then_some("-funwind-tables"),
            )
            .arg(fixture.source_path())
            .arg("-o")
            .arg(&obj),
        C_HINT,
    )?;
    let mut pdb = std::ffi::OsString::from("/pdb:");
    pdb.push(tmp.with_extension("pdb"));
    let mut out = std::ffi::OsString::from("/out:");
    out.push(tmp);
    run(
        Command::new("lld-link")
            .args([
                "/nologo",
                "/driver",
                "/subsystem:native",
                "/entry:DriverEntry",
                "/nodefaultlib",
                "/debug",
            ])
            .arg(pdb)
            .arg(out)
            .arg(&obj)
            .arg(&lib),
        C_HINT,
    )
}

fn build_mingw(fixture: Fixture, tmp_dir: &Path, tmp: &Path) -> Result<(), String> {
    let lib = tmp_dir.join("libntoskrnl.a");
    run(
        Command::new("x86_64-w64-mingw32-dlltool")
            .arg("-d")
            .arg(ntoskrnl_def())
            .args(["-D", "ntoskrnl.exe", "-l"])
            .arg(&lib),
        C_HINT,
    )?;
    run(
        Command::new("x86_64-w64-mingw32-gcc")
            .args([
                "-O2",
                "-masm=intel",
                "-ffreestanding",
                "-fno-stack-protector",
                "-nostdlib",
                "-shared",
                "-Wl,--subsystem,native",
                "-Wl,-e,DriverEntry",
                "-o",
            ])
            .arg(tmp)
            .arg(fixture.source_path())
            .arg(&lib),
        C_HINT,
    )
}

/// The catalog APIs Wine 8's ntoskrnl implements, each called by a
/// `call_<API>.sys` fixture. Wine lacks ExAllocatePool2/3,
/// ExInitializeLookasideListEx, MmMapIoSpaceEx and
/// MmAllocateContiguousNodeMemory, and exports ExAllocatePoolWithTagPriority
/// and MmMapLockedPages as stubs that abort the host when called; those
/// rows are proven by the engine's stub tests instead.
pub const WINE_APIS: [&str; 8] = [
    "ExAllocatePool",
    "ExAllocatePoolWithTag",
    "ExAllocatePoolWithQuota",
    "ExAllocatePoolWithQuotaTag",
    "ExInitializeNPagedLookasideList",
    "MmProtectMdlSystemAddress",
    "MmMapLockedPagesSpecifyCache",
    "MmGetSystemRoutineAddress",
];

/// The catalog APIs Debian 13's Wine 10 implements beyond Wine 8's
/// [`WINE_APIS`], each called by a `call_<API>.sys` fixture. Wine 10 still
/// lacks ExAllocatePool3, ExInitializeLookasideListEx, MmMapIoSpaceEx and
/// MmAllocateContiguousNodeMemory, and still stubs out
/// ExAllocatePoolWithTagPriority and MmMapLockedPages
/// (tests/tests/wine10_rows.rs reads this from its ntoskrnl.exe).
pub const WINE10_NEW_APIS: [&str; 1] = ["ExAllocatePool2"];

/// Every catalog API Wine 10 ([`wine::Loader::Wine10`]) implements: Wine 8's
/// and [`WINE10_NEW_APIS`].
pub fn wine10_apis() -> Vec<&'static str> {
    WINE_APIS.iter().chain(&WINE10_NEW_APIS).copied().collect()
}

/// A target driver that calls `api` from DriverEntry with an NX argument,
/// then an executable one (tests/fixtures/rust/target_call.rs).
pub fn call_fixture(api: &str) -> PathBuf {
    let name = format!("call_{api}.sys");
    let cfg = format!("api=\"{api}\"");
    build_rust(&name, "target_call.rs", &[&cfg], &[], |_| Ok(()))
        .unwrap_or_else(|e| panic!("cannot build fixture {name}: {e}"))
}

/// A driver that runs civ.sys's exception guard on a raised exception
/// (tests/fixtures/rust/seh_guard.rs): it starts only if the guard hands
/// the exception back as a status.
pub fn guard_fixture() -> PathBuf {
    build_rust("seh_guard.sys", "seh_guard.rs", &[], &[], |_| Ok(()))
        .unwrap_or_else(|e| panic!("cannot build fixture seh_guard.sys: {e}"))
}

/// The C target driver (tests/fixtures/c/pool_c.c), built with mingw-w64:
/// NX pool, then executable pool, through ExAllocatePoolWithTag.
pub fn c_fixture() -> PathBuf {
    build_with_mingw(
        "pool_c.sys",
        "pool_c.c",
        &[
            "-nostdlib",
            "-shared",
            "-Wl,--subsystem,native",
            "-Wl,-e,DriverEntry",
        ],
        &["-lntoskrnl"],
    )
}

/// The bare IOCTL client for the Wine test (tests/fixtures/c/ioctl_probe.c).
pub fn ioctl_probe() -> PathBuf {
    build_with_mingw("ioctl_probe.exe", "ioctl_probe.c", &[], &[])
}

/// bcryptprimitives.dll for Wine 8, which lacks it: Rust std executables
/// (civctl.exe) import its ProcessPrng (tests/fixtures/c/bcryptprimitives.c).
pub fn bcrypt_stand_in() -> PathBuf {
    build_with_mingw(
        "bcryptprimitives.dll",
        "bcryptprimitives.c",
        &["-shared"],
        &["-ladvapi32"],
    )
}

/// Builds a C source with mingw-w64 gcc into `name` (drivers and the
/// IOCTL client of the Wine test).
fn build_with_mingw(name: &str, source: &str, flags: &[&str], libs: &[&str]) -> PathBuf {
    let out = out_dir().join(name);
    if out.exists() {
        return out;
    }
    let result = (|| {
        std::fs::create_dir_all(out_dir()).map_err(|e| e.to_string())?;
        let dir = tempdir_in(&out_dir())?;
        let tmp = dir.join(name);
        let output = Command::new("x86_64-w64-mingw32-gcc")
            .arg("-O1")
            .args(flags)
            .arg("-o")
            .arg(&tmp)
            .arg(source_dir().join("c").join(source))
            .args(libs)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run x86_64-w64-mingw32-gcc (apt-get install gcc-mingw-w64-x86-64): {e}"
                )
            })?;
        if !output.status.success() {
            return Err(format!(
                "mingw failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(out.clone())
    })();
    result.unwrap_or_else(|e: String| panic!("cannot build fixture {name}: {e}"))
}

fn build_rust(
    file_name: &str,
    source: &str,
    cfgs: &[&str],
    link_args: &[&str],
    post: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    build_rust_for(TARGET, file_name, source, cfgs, link_args, post)
}

fn build_rust_for(
    target: &str,
    file_name: &str,
    source: &str,
    cfgs: &[&str],
    link_args: &[&str],
    post: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join(file_name);
    if out.exists() {
        return Ok(out);
    }
    // Build under a unique name, then rename: parallel tests never see a
    // half-written image.
    let tmp_dir = tempdir_in(&dir)?;
    let tmp = tmp_dir.join(file_name);
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition",
        "2024",
        "--target",
        target,
        "--crate-type",
        "cdylib",
    ])
    .args([
        "-C",
        "panic=abort",
        "-C",
        "opt-level=1",
        "-C",
        "lto=true",
        "-C",
        "debuginfo=1",
    ])
    .args(["-C", "linker=rust-lld", "-C", "linker-flavor=lld-link"])
    .args(
        [
            "/SUBSYSTEM:NATIVE",
            "/DRIVER",
            "/ENTRY:DriverEntry",
            "/NODEFAULTLIB",
        ]
        .map(|a| format!("-Clink-arg={a}")),
    )
    .args(link_args.iter().map(|a| format!("-Clink-arg={a}")))
    .args(cfgs.iter().flat_map(|c| ["--cfg", c]))
    .arg(source_dir().join("rust").join(source))
    .arg("-o")
    .arg(&tmp);
    let output = cmd.output().map_err(|e| format!("cannot run rustc: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&tmp_dir);
        return Err(format!(
            "rustc failed (is the target installed? `rustup target add {target}`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    post(&tmp)?;
    // The PDB goes along for the tests that symbolize addresses.
    let _ = std::fs::rename(tmp.with_extension("pdb"), out.with_extension("pdb"));
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot move the image into place: {e}"))?;
    let _ = std::fs::remove_dir_all(&tmp_dir);
    Ok(out)
}

fn tempdir_in(dir: &Path) -> Result<PathBuf, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = dir.join(format!(
        ".build-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}

/// Zeroes data directory `index` of a PE32+ image in place.
fn clear_data_directory(path: &Path, index: usize) -> Result<(), String> {
    let mut data = std::fs::read(path).map_err(|e| e.to_string())?;
    let at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let nt = at(0x3C).ok_or("no e_lfanew")?;
    // Signature (4) + file header (20) + PE32+ optional header fields up to
    // the directories (112).
    let dir = nt + 4 + 20 + 112 + index * 8;
    data.get_mut(dir..dir + 8)
        .ok_or("no such data directory")?
        .fill(0);
    std::fs::write(path, data).map_err(|e| e.to_string())
}

/// Lays a file-layout PE image out as the loader maps it: headers at 0,
/// each section's raw data at its RVA, the rest zero. Panics on an image a
/// test should not have given it (a fixture or corpus file).
pub fn map_image(file: &[u8]) -> Vec<u8> {
    let u16_at = |o: usize| u16::from_le_bytes([file[o], file[o + 1]]) as usize;
    let u32_at =
        |o: usize| u32::from_le_bytes([file[o], file[o + 1], file[o + 2], file[o + 3]]) as usize;
    let nt = u32_at(0x3C);
    let sections = u16_at(nt + 6);
    let optional = nt + 24;
    let size_of_image = u32_at(optional + 56);
    let size_of_headers = u32_at(optional + 60);
    let table = optional + u16_at(nt + 20);
    let mut mapped = vec![0u8; size_of_image];
    mapped[..size_of_headers].copy_from_slice(&file[..size_of_headers]);
    for i in 0..sections {
        let h = table + i * 40;
        let (vsize, rva, raw_size, raw) = (
            u32_at(h + 8),
            u32_at(h + 12),
            u32_at(h + 16),
            u32_at(h + 20),
        );
        let n = raw_size.min(if vsize == 0 { raw_size } else { vsize });
        mapped[rva..rva + n].copy_from_slice(&file[raw..raw + n]);
    }
    mapped
}

/// The fetched real-driver corpus (`$CIV_CORPUS`, else ~/.cache/civ-corpus).
/// Panics with the command that fetches it when it is absent.
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("CIV_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/civ-corpus")
        });
    assert!(
        dir.join("windivert-2.2/WinDivert64.sys").exists(),
        "the real-driver corpus is missing in {}: run scripts/fetch-test-data.sh",
        dir.display()
    );
    dir
}

/// One row of `tests/corpus/expected.tsv`: what pefile, LIEF and
/// llvm-readobj agree on for a corpus file.
#[derive(Clone, Debug)]
pub struct CorpusRow {
    /// Path below the corpus folder.
    pub path: String,
    /// SHA-256.
    pub sha256: String,
    /// `AMD64`, `I386` or `ARM64`.
    pub machine: String,
    /// SectionAlignment.
    pub section_alignment: u64,
    /// Sections that are W+X.
    pub wx_sections: Vec<String>,
    /// The section holding the IAT, if any.
    pub iat_section: Option<String>,
    /// DV image codes expected.
    pub codes: Vec<String>,
    /// Imports civ checks.
    pub hooked: Vec<String>,
}

/// The rows of `tests/corpus/expected.tsv`.
pub fn corpus_expected() -> Vec<CorpusRow> {
    let list = |f: &str| {
        if f == "-" {
            Vec::new()
        } else {
            f.split(',').map(str::to_string).collect()
        }
    };
    let tsv = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/expected.tsv");
    let text = std::fs::read_to_string(&tsv)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", tsv.display()));
    let mut lines = text.lines();
    assert_eq!(
        lines.next().map(|h| h.split('\t').collect::<Vec<_>>()),
        Some(vec![
            "path",
            "sha256",
            "machine",
            "section_alignment",
            "wx_sections",
            "iat_section",
            "expected_image_codes",
            "hooked_imports"
        ]),
        "expected.tsv's columns changed"
    );
    lines
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 8, "bad row {l}");
            CorpusRow {
                path: c[0].into(),
                sha256: c[1].into(),
                machine: c[2].into(),
                section_alignment: u64::from_str_radix(c[3].trim_start_matches("0x"), 16)
                    .expect("hex"),
                wx_sections: list(c[4]),
                iat_section: (c[5] != "None").then(|| c[5].to_string()),
                codes: list(c[6]),
                hooked: list(c[7]),
            }
        })
        .collect()
}
