//! PDB lookups: which function holds an RVA, and which source file and
//! line it comes from, read with the `pdb` crate.
//!
//! A PDB is used only when it matches the image: the GUID and age in the
//! image's CodeView debug record (RSDS) equal the PDB's. A stale PDB would
//! name the wrong lines, which is worse than naming none.

use civ_engine::path::file_name_str;
use civ_engine::pe::{Layout, PeImage};
use pdb::FallibleIterator;
use std::path::{Path, PathBuf};

/// IMAGE_DIRECTORY_ENTRY_DEBUG.
const DIR_DEBUG: usize = 6;
/// IMAGE_DEBUG_TYPE_CODEVIEW.
const DEBUG_TYPE_CODEVIEW: u32 = 2;
/// Debug directory entries past this many are taken as garbage.
const MAX_DEBUG_ENTRIES: usize = 64;
/// PDBs larger than this are not read (a driver's PDB is megabytes).
const MAX_PDB_SIZE: u64 = 1 << 31;

/// The CodeView record of an image: which PDB it was linked with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdbId {
    /// The GUID, as its fields (Data1, Data2, Data3, Data4).
    pub guid: (u32, u16, u16, [u8; 8]),
    /// The age.
    pub age: u32,
    /// The PDB path the linker wrote (as bytes, lossily decoded).
    pub path: String,
}

impl PdbId {
    fn guid_text(&self) -> String {
        let (a, b, c, d) = self.guid;
        format!(
            "{a:08X}-{b:04X}-{c:04X}-{:02X}{:02X}-{}",
            d[0],
            d[1],
            d[2..]
                .iter()
                .map(|x| format!("{x:02X}"))
                .collect::<String>()
        )
    }
}

/// The image's RSDS record, if it has one.
pub fn image_pdb_id(pe: &PeImage<'_>) -> Option<PdbId> {
    let (rva, size) = pe.data_directory(DIR_DEBUG)?;
    let dir = pe.bytes_from(rva, "debug directory").ok()?;
    let dir = dir.get(..size as usize).unwrap_or(dir);
    let u32_at = |b: &[u8], o: usize| -> Option<u32> {
        b.get(o..o + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
    };
    for entry in dir.chunks_exact(28).take(MAX_DEBUG_ENTRIES) {
        if u32_at(entry, 12)? != DEBUG_TYPE_CODEVIEW {
            continue;
        }
        let len = u32_at(entry, 16)? as usize;
        let data = match pe.layout() {
            // In a file, PointerToRawData is the one to follow (the record
            // need not be in a section).
            Layout::File => {
                let at = u32_at(entry, 24)? as usize;
                pe.data().get(at..at.checked_add(len)?)?
            }
            Layout::Mapped => pe
                .bytes_at(u32_at(entry, 20)?, len, "CodeView record")
                .ok()?,
        };
        if data.get(..4)? != b"RSDS" || data.len() < 24 {
            continue;
        }
        let g = data.get(4..20)?;
        let mut d4 = [0u8; 8];
        d4.copy_from_slice(g.get(8..16)?);
        let path = data.get(24..)?;
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        return Some(PdbId {
            guid: (
                u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
                u16::from_le_bytes([g[4], g[5]]),
                u16::from_le_bytes([g[6], g[7]]),
                d4,
            ),
            age: u32_at(data, 20)?,
            path: String::from_utf8_lossy(&path[..end]).into_owned(),
        });
    }
    None
}

/// Where an RVA is in the source: a function and source line, from a PDB.
/// Reports embed it flattened (`function`, `file`, `line`, each absent when
/// unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceLocation {
    /// The function holding it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl SourceLocation {
    /// `function (file:line)`, `function`, `file:line`, or empty.
    pub fn describe(&self) -> String {
        let place = match (&self.file, self.line) {
            (Some(f), Some(l)) => Some(format!("{f}:{l}")),
            (Some(f), None) => Some(f.clone()),
            _ => None,
        };
        match (&self.function, place) {
            (Some(func), Some(p)) => format!("{func} ({p})"),
            (Some(func), None) => func.clone(),
            (None, Some(p)) => p,
            (None, None) => String::new(),
        }
    }
}

#[derive(Clone, Debug)]
struct Function {
    start: u32,
    /// One past the end (`start + len`), or `None` for a public symbol,
    /// whose length the PDB does not give.
    end: Option<u32>,
    name: String,
}

#[derive(Clone, Copy, Debug)]
struct Line {
    start: u32,
    end: Option<u32>,
    file: u32,
    line: u32,
}

/// A loaded PDB, as sorted tables.
#[derive(Clone, Debug)]
pub struct Symbols {
    /// The PDB's path.
    pub path: PathBuf,
    /// Its GUID fields and age, to match images against.
    guid: (u32, u16, u16, [u8; 8]),
    age: u32,
    functions: Vec<Function>,
    lines: Vec<Line>,
    files: Vec<String>,
}

fn pdb_error(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: cannot read the PDB: {e}", path.display())
}

impl Symbols {
    /// Reads a PDB. The `pdb` crate is not hardened against every malformed
    /// file: where panics unwind, a panic inside it is reported as an error.
    pub fn load(path: &Path) -> Result<Symbols, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > MAX_PDB_SIZE {
            return Err(format!(
                "{}: {} bytes is too large for a PDB",
                path.display(),
                meta.len()
            ));
        }
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Symbols::read(path, file)))
            .unwrap_or_else(|_| Err(pdb_error(path, "malformed PDB")))
    }

    /// Is this the PDB the image was linked with (same GUID and age)?
    pub fn matches(&self, id: &PdbId) -> bool {
        self.guid == id.guid && self.age == id.age
    }

    /// Why the PDB is not used for an image.
    fn mismatch(&self, id: Option<&PdbId>) -> String {
        match id {
            Some(id) => format!(
                "{} does not match the image (it was linked with GUID {} age {}): symbols not used",
                self.path.display(),
                id.guid_text(),
                id.age
            ),
            None => format!(
                "{}: the image has no CodeView record to match a PDB against: symbols not used",
                self.path.display()
            ),
        }
    }

    fn read(path: &Path, file: std::fs::File) -> Result<Symbols, String> {
        let err = |e: pdb::Error| pdb_error(path, e);
        let mut pdb = pdb::PDB::open(file).map_err(err)?;
        let info = pdb.pdb_information().map_err(err)?;
        let dbi = pdb.debug_information().map_err(err)?;
        let (a, b, c, d) = info.guid.as_fields();
        // The DBI stream's age is the one the linker writes into the image.
        let age = dbi.age().unwrap_or(info.age);
        let address_map = pdb.address_map().map_err(err)?;
        // A PDB without a names stream has no file names, only functions.
        let strings = pdb.string_table().ok();
        let mut out = Symbols {
            path: path.to_path_buf(),
            guid: (a, b, c, *d),
            age,
            functions: Vec::new(),
            lines: Vec::new(),
            files: Vec::new(),
        };
        let mut modules = dbi.modules().map_err(err)?;
        while let Some(module) = modules.next().map_err(err)? {
            let Some(mi) = pdb.module_info(&module).map_err(err)? else {
                continue;
            };
            let mut symbols = mi.symbols().map_err(err)?;
            while let Some(sym) = symbols.next().map_err(err)? {
                if let Ok(pdb::SymbolData::Procedure(p)) = sym.parse()
                    && let Some(rva) = p.offset.to_rva(&address_map)
                {
                    out.functions.push(Function {
                        start: rva.0,
                        end: Some(rva.0.saturating_add(p.len)),
                        name: p.name.to_string().into_owned(),
                    });
                }
            }
            let Ok(program) = mi.line_program() else {
                continue;
            };
            // File indexes are offsets into the module's checksum table;
            // each distinct name is kept once.
            let mut file_ids: Vec<(pdb::FileIndex, u32)> = Vec::new();
            let mut lines = program.lines();
            while let Some(l) = lines.next().map_err(err)? {
                let Some(rva) = l.offset.to_rva(&address_map) else {
                    continue;
                };
                let file = match file_ids.iter().find(|f| f.0 == l.file_index) {
                    Some(f) => f.1,
                    None => {
                        let name = program
                            .get_file_info(l.file_index)
                            .ok()
                            .and_then(|fi| {
                                strings
                                    .as_ref()
                                    .and_then(|s| fi.name.to_string_lossy(s).ok())
                                    .map(|n| n.into_owned())
                            })
                            .unwrap_or_else(|| "?".into());
                        let id = match out.files.iter().position(|f| *f == name) {
                            Some(i) => i as u32,
                            None => {
                                out.files.push(name);
                                (out.files.len() - 1) as u32
                            }
                        };
                        file_ids.push((l.file_index, id));
                        id
                    }
                };
                out.lines.push(Line {
                    start: rva.0,
                    end: l.length.map(|len| rva.0.saturating_add(len)),
                    file,
                    line: l.line_start,
                });
            }
        }
        // Public symbols name what has no procedure record (stripped PDBs,
        // assembly).
        if let Ok(globals) = pdb.global_symbols() {
            let mut it = globals.iter();
            while let Ok(Some(sym)) = it.next() {
                if let Ok(pdb::SymbolData::Public(p)) = sym.parse()
                    && p.function
                    && let Some(rva) = p.offset.to_rva(&address_map)
                    && !out.functions.iter().any(|f| f.start == rva.0)
                {
                    out.functions.push(Function {
                        start: rva.0,
                        end: None,
                        name: p.name.to_string().into_owned(),
                    });
                }
            }
        }
        out.functions.sort_by_key(|f| f.start);
        out.lines.sort_by_key(|l| l.start);
        Ok(out)
    }

    /// The function, file and line of an RVA (each when the PDB knows it).
    pub fn lookup(&self, rva: u32) -> SourceLocation {
        let mut loc = SourceLocation::default();
        let i = self.functions.partition_point(|f| f.start <= rva);
        if let Some(f) = i.checked_sub(1).and_then(|i| self.functions.get(i)) {
            // A public symbol has no length: it runs to the next function.
            let end = f
                .end
                .or_else(|| self.functions.get(i).map(|n| n.start))
                .unwrap_or(u32::MAX);
            if rva < end {
                loc.function = Some(f.name.clone());
            }
        }
        let i = self.lines.partition_point(|l| l.start <= rva);
        if let Some(l) = i.checked_sub(1).and_then(|i| self.lines.get(i)) {
            let end = l
                .end
                .or_else(|| self.lines.get(i).map(|n| n.start))
                .unwrap_or(u32::MAX);
            if rva < end {
                loc.file = self.files.get(l.file as usize).cloned();
                loc.line = Some(l.line);
            }
        }
        loc
    }
}

/// The PDB for an image: the first of `given` (loaded once for all
/// images) that matches it, else `<image>.pdb` beside it, else the file
/// name the image's debug record gives, beside it. `Ok(None)` when there is
/// none to try; an error saying why, when every one tried was unusable
/// (not matching, unreadable).
pub fn find_for_image(
    image_path: &Path,
    pe: &PeImage<'_>,
    given: &[Symbols],
) -> Result<Option<Symbols>, String> {
    let id = image_pdb_id(pe);
    let mut errors = Vec::new();
    for s in given {
        match &id {
            Some(id) if s.matches(id) => return Ok(Some(s.clone())),
            _ => errors.push(s.mismatch(id.as_ref())),
        }
    }
    let mut beside = vec![image_path.with_extension("pdb")];
    if let Some(id) = &id {
        // The linker's path is the build machine's: only its file name is
        // looked for here.
        let name = file_name_str(&id.path);
        if !name.is_empty() {
            let p = image_path.with_file_name(name);
            if !beside.contains(&p) {
                beside.push(p);
            }
        }
    }
    for p in beside
        .iter()
        .filter(|p| p.is_file() && !given.iter().any(|g| g.path == **p))
    {
        match Symbols::load(p) {
            Ok(s) => match &id {
                Some(i) if s.matches(i) => return Ok(Some(s)),
                _ => errors.push(s.mismatch(id.as_ref())),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(None)
    } else {
        Err(errors.join("; "))
    }
}
