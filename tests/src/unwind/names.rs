//! Function names for RVAs, from the image's PDB (read with the `pdb`
//! crate): the procedure records a build with debug info writes (every
//! function, inlined callers aside), else the public symbols (only what
//! has external linkage). Rust's mangled public names are demangled.
//! Without a usable PDB, a function is named by its RVA.

use pdb::FallibleIterator;
use std::path::Path;

/// Names by RVA.
#[derive(Default)]
pub struct Names {
    /// Start, length if known, name; sorted by start.
    symbols: Vec<(u32, Option<u32>, String)>,
}

fn pdb_error(path: &Path) -> impl Fn(pdb::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

impl Names {
    /// No names: every function is shown by its RVA.
    pub fn none() -> Names {
        Names::default()
    }

    /// Reads the PDB at `path`, which must be the one the image with
    /// CodeView GUID `guid` was linked with.
    pub fn read(path: &Path, guid: [u8; 16]) -> Result<Names, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let err = pdb_error(path);
        let mut pdb = pdb::PDB::open(file).map_err(&err)?;
        if pdb.pdb_information().map_err(&err)?.guid.to_bytes_le() != guid {
            return Err(format!(
                "{} is not the image's PDB (GUID differs)",
                path.display()
            ));
        }
        let map = pdb.address_map().map_err(&err)?;
        let mut names = Names::none();
        let dbi = pdb.debug_information().map_err(&err)?;
        let mut modules = dbi.modules().map_err(&err)?;
        while let Some(module) = modules.next().map_err(&err)? {
            let Some(info) = pdb.module_info(&module).map_err(&err)? else {
                continue;
            };
            let mut symbols = info.symbols().map_err(&err)?;
            while let Some(s) = symbols.next().map_err(&err)? {
                if let Ok(pdb::SymbolData::Procedure(p)) = s.parse()
                    && let Some(rva) = p.offset.to_rva(&map)
                {
                    names
                        .symbols
                        .push((rva.0, Some(p.len), p.name.to_string().into_owned()));
                }
            }
        }
        let globals = pdb.global_symbols().map_err(&err)?;
        let mut it = globals.iter();
        while let Some(s) = it.next().map_err(&err)? {
            if let Ok(pdb::SymbolData::Public(p)) = s.parse()
                && p.function
                && let Some(rva) = p.offset.to_rva(&map)
                && !names.symbols.iter().any(|(start, _, _)| *start == rva.0)
            {
                let raw = p.name.to_string();
                let name = format!("{:#}", rustc_demangle::demangle(&raw));
                names.symbols.push((rva.0, None, name));
            }
        }
        names.symbols.sort_by_key(|(start, _, _)| *start);
        Ok(names)
    }

    /// The symbol at or before `rva`: its start, its name, and whether it
    /// is known to hold `rva` (a procedure record's length covers it; a
    /// public symbol has no length, so the caller decides how far it
    /// runs).
    pub fn symbol_before(&self, rva: u32) -> Option<(u32, &str, bool)> {
        let i = self.symbols.partition_point(|(start, _, _)| *start <= rva);
        let (start, len, name) = self.symbols.get(i.checked_sub(1)?)?;
        let holds = len.is_some_and(|l| rva < start.saturating_add(l));
        Some((*start, name, holds))
    }
}
