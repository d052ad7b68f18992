//! A built x64 PE image as the unwind analyses need it, read with the
//! `object` crate: its code sections, its RUNTIME_FUNCTION table (.pdata),
//! its base relocations (where the image holds its own addresses), its
//! import slots, its entry point and exports.

use super::{RuntimeFunction, UnwindChain, UnwindError, read_chain};
use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, ImageThunkData, PeFile64};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// A PE32+ image's code and metadata, by RVA.
pub struct Image<'a> {
    file: PeFile64<'a>,
    /// The preferred load address.
    pub image_base: u64,
    /// The entry point (DriverEntry for a driver).
    pub entry: u32,
    /// Exported functions: name and RVA.
    pub exports: Vec<(String, u32)>,
    /// The RUNTIME_FUNCTIONs, in table order.
    pub runtime_functions: Vec<RuntimeFunction>,
    /// Import address table slots: RVA to `module!name`.
    pub imports: BTreeMap<u32, String>,
    /// RVAs of 8-byte fields the loader relocates (IMAGE_REL_BASED_DIR64):
    /// each holds an address inside the image.
    pub relocations: BTreeSet<u32>,
    /// The executable sections' names and RVA ranges.
    pub code_sections: Vec<(String, Range<u32>)>,
}

fn err(what: &str) -> impl Fn(object::read::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl<'a> Image<'a> {
    /// Reads an x64 image from its file bytes.
    pub fn parse(data: &'a [u8]) -> Result<Image<'a>, String> {
        let file = PeFile64::parse(data).map_err(err("not a PE32+ image"))?;
        let nt = file.nt_headers();
        if nt.file_header().machine.get(LE) != pe::IMAGE_FILE_MACHINE_AMD64 {
            return Err("not an x64 image".into());
        }
        let optional = nt.optional_header();
        let mut image = Image {
            file,
            image_base: optional.image_base(),
            entry: optional.address_of_entry_point(),
            exports: Vec::new(),
            runtime_functions: Vec::new(),
            imports: BTreeMap::new(),
            relocations: BTreeSet::new(),
            code_sections: Vec::new(),
        };
        for s in image.file.section_table().iter() {
            if (s.characteristics.get(LE) & pe::IMAGE_SCN_MEM_EXECUTE).0 != 0 {
                let (start, size) = s.pe_address_range();
                let name = String::from_utf8_lossy(s.raw_name())
                    .trim_end_matches('\0')
                    .to_string();
                image
                    .code_sections
                    .push((name, start..start.saturating_add(size)));
            }
        }
        image.read_pdata()?;
        image.read_relocations()?;
        image.read_imports()?;
        if let Some(table) = image.file.export_table().map_err(err("exports"))? {
            for e in table.exports().map_err(err("exports"))? {
                if let (Some(name), object::read::pe::ExportTarget::Address(rva)) =
                    (e.name, e.target)
                {
                    image
                        .exports
                        .push((String::from_utf8_lossy(name).into_owned(), rva));
                }
            }
        }
        Ok(image)
    }

    fn directory(&self, index: usize) -> Option<(u32, u32)> {
        let d = self.file.data_directory(index)?;
        Some((d.virtual_address.get(LE), d.size.get(LE)))
    }

    fn read_pdata(&mut self) -> Result<(), String> {
        let Some((rva, size)) = self.directory(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION) else {
            return Ok(());
        };
        let table = self
            .bytes_at(rva)
            .and_then(|b| b.get(..size as usize))
            .ok_or_else(|| format!("the exception directory at {rva:#x} is not in the file"))?;
        self.runtime_functions = table
            .chunks_exact(12)
            .filter_map(RuntimeFunction::parse)
            .collect();
        Ok(())
    }

    fn read_relocations(&mut self) -> Result<(), String> {
        let mut blocks = match self
            .file
            .data_directories()
            .relocation_blocks(self.file.data(), &self.file.section_table())
            .map_err(err("base relocations"))?
        {
            Some(b) => b,
            None => return Ok(()),
        };
        while let Some(block) = blocks.next().map_err(err("base relocations"))? {
            for r in block {
                if r.typ == pe::IMAGE_REL_BASED_DIR64 {
                    self.relocations.insert(r.virtual_address);
                }
            }
        }
        Ok(())
    }

    fn read_imports(&mut self) -> Result<(), String> {
        let Some(table) = self.file.import_table().map_err(err("imports"))? else {
            return Ok(());
        };
        let mut descriptors = table.descriptors().map_err(err("imports"))?;
        while let Some(d) = descriptors.next().map_err(err("imports"))? {
            let module =
                String::from_utf8_lossy(table.name(d.name.get(LE)).map_err(err("imports"))?)
                    .into_owned();
            let first_thunk = d.first_thunk.get(LE);
            let lookup = match d.original_first_thunk.get(LE) {
                0 => first_thunk,
                a => a,
            };
            let mut thunks = table.thunks(lookup).map_err(err("imports"))?;
            let mut slot = first_thunk;
            while let Some(t) = thunks
                .next::<pe::ImageNtHeaders64>()
                .map_err(err("imports"))?
            {
                let name = if t.is_ordinal() {
                    format!("#{}", t.ordinal())
                } else {
                    let (_, n) = table.hint_name(t.address()).map_err(err("imports"))?;
                    String::from_utf8_lossy(n).into_owned()
                };
                self.imports.insert(slot, format!("{module}!{name}"));
                slot += 8;
            }
        }
        Ok(())
    }

    /// The GUID of the PDB the image was linked with (its CodeView record).
    pub fn pdb_guid(&self) -> Option<[u8; 16]> {
        use object::Object;
        Some(self.file.pdb_info().ok()??.guid())
    }

    /// The image's bytes from `rva` to the end of its section's data.
    pub fn bytes_at(&self, rva: u32) -> Option<&'a [u8]> {
        self.file.section_table().pe_data_at(self.file.data(), rva)
    }

    /// The 8 bytes at `rva`, as the file holds them.
    pub fn u64_at(&self, rva: u32) -> Option<u64> {
        let b = self.bytes_at(rva)?.get(..8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// If `rva` is a relocated field, the RVA it points to.
    pub fn pointer_at(&self, rva: u32) -> Option<u32> {
        if !self.relocations.contains(&rva) {
            return None;
        }
        let target = self.u64_at(rva)?.checked_sub(self.image_base)?;
        u32::try_from(target).ok()
    }

    /// Is `rva` inside an executable section?
    pub fn is_code(&self, rva: u32) -> bool {
        self.code_sections.iter().any(|(_, r)| r.contains(&rva))
    }

    /// The RUNTIME_FUNCTION whose range holds `rva` (the table is sorted,
    /// as the unwinder's binary search requires; an unsorted table is
    /// reported by the coverage check).
    pub fn runtime_function_at(&self, rva: u32) -> Option<RuntimeFunction> {
        let i = self.runtime_functions.partition_point(|f| f.begin <= rva);
        let f = *self.runtime_functions.get(i.checked_sub(1)?)?;
        f.contains(rva).then_some(f)
    }

    /// The unwind information of `f`, its chain followed.
    pub fn unwind(&self, f: RuntimeFunction) -> Result<UnwindChain, UnwindError> {
        read_chain(f, |rva| self.bytes_at(rva))
    }
}
