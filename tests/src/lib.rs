//! Fixture PE images for civ's tests, built from the sources in `fixtures/`
//! with the toolchain's own `rust-lld`, so that every test runs on real
//! linker output rather than on hand-made bytes.
//!
//! Each [`Fixture`] is one source linked with one set of flags; building is
//! cached under `target/civ-fixtures` and safe from parallel tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every fixture is built for.
pub const TARGET: &str = "x86_64-pc-windows-msvc";

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
}

impl Fixture {
    /// Every fixture.
    pub const ALL: [Fixture; 7] = [
        Fixture::Clean,
        Fixture::WriteExecuteData,
        Fixture::WriteExecuteInit,
        Fixture::LowAlignment,
        Fixture::IatInText,
        Fixture::IatInTextNoDirectory,
        Fixture::StraddlingReloc,
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
        }
    }

    fn source(self) -> &'static str {
        match self {
            Fixture::StraddlingReloc => "straddle.rs",
            _ => "hvci_probe.rs",
        }
    }

    fn link_args(self) -> &'static [&'static str] {
        match self {
            Fixture::Clean | Fixture::StraddlingReloc => &[],
            Fixture::WriteExecuteData => &["/SECTION:.data,ERW"],
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
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join(fixture.file_name());
    if out.exists() {
        return Ok(out);
    }
    // Build under a unique name, then rename: parallel tests never see a
    // half-written image.
    let tmp_dir = tempdir_in(&dir)?;
    let tmp = tmp_dir.join(fixture.file_name());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition",
        "2024",
        "--target",
        TARGET,
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
    .args(
        fixture
            .link_args()
            .iter()
            .map(|a| format!("-Clink-arg={a}")),
    )
    .arg(source_dir().join("rust").join(fixture.source()))
    .arg("-o")
    .arg(&tmp);
    let output = cmd.output().map_err(|e| format!("cannot run rustc: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&tmp_dir);
        return Err(format!(
            "rustc failed (is the target installed? `rustup target add {TARGET}`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if fixture == Fixture::IatInTextNoDirectory {
        clear_data_directory(&tmp, 12)?;
    }
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
