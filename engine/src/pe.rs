//! A bounds-checked reader of PE images, in *file* layout (a .sys on disk)
//! or *mapped* layout (an image as the loader placed it, where an RVA is an
//! offset into the buffer).
//!
//! Headers and the section table are read with the `object` crate; imports
//! and base relocations are walked here through one RVA-to-bytes function, so
//! the same code serves both layouts. Nothing here panics or reads outside the
//! buffer: every malformed image is a [`PeError`]. It does not check the
//! image against DV's rules; that is [`crate::image`].

use core::fmt;
use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{
    ImageNtHeaders, ImageOptionalHeader, RelocationBlockIterator, SectionTable,
};

/// How the image bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// As stored on disk: sections at their PointerToRawData.
    File,
    /// As mapped by the loader: sections at their VirtualAddress.
    Mapped,
}

/// Why an image could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeError {
    /// The buffer ends inside the named structure.
    Truncated(&'static str),
    /// No `MZ` at the start.
    NotMz,
    /// e_lfanew points outside the buffer.
    BadHeaderOffset(u32),
    /// No `PE\0\0` signature at e_lfanew.
    NotPe,
    /// The optional header's magic is neither PE32 nor PE32+.
    BadOptionalMagic(u16),
    /// The headers are inconsistent, as the object crate found.
    Headers(object::read::Error),
    /// The section table does not fit in the headers' buffer.
    SectionTable {
        /// NumberOfSections as the header states it.
        count: u32,
    },
    /// A section's VirtualAddress + size overflows 32 bits.
    RvaOverflow {
        /// The section's index.
        section: usize,
    },
    /// A section starts before the end of the one before it.
    OverlappingSections {
        /// The earlier section's index.
        first: usize,
        /// The later section's index.
        second: usize,
    },
    /// A section's raw data lies outside the file.
    SectionData {
        /// The section's index.
        section: usize,
    },
    /// A mapped image is smaller than its SizeOfImage.
    ImageTooSmall {
        /// SizeOfImage.
        size_of_image: u32,
        /// The buffer's length.
        len: usize,
    },
    /// An RVA that a structure points to is not inside the image.
    BadRva {
        /// What was being read.
        what: &'static str,
        /// The RVA.
        rva: u32,
    },
    /// The base relocation directory is malformed.
    Relocations(object::read::Error),
    /// More imports than any real image has: the import table is hostile
    /// (descriptors sharing one long thunk list, for one).
    TooManyImports {
        /// The limit.
        limit: u32,
    },
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PeError::Truncated(what) => write!(f, "file is truncated: it ends inside the {what}"),
            PeError::NotMz => f.write_str("not a PE image: no MZ signature"),
            PeError::BadHeaderOffset(o) => write!(f, "e_lfanew {o:#x} points outside the file"),
            PeError::NotPe => f.write_str("not a PE image: no PE signature at e_lfanew"),
            PeError::BadOptionalMagic(m) => {
                write!(
                    f,
                    "optional header magic {m:#x} is neither PE32 (0x10b) nor PE32+ (0x20b)"
                )
            }
            PeError::Headers(e) => write!(f, "malformed headers: {e}"),
            PeError::SectionTable { count } => {
                write!(
                    f,
                    "the section table ({count} sections) runs past the end of the headers"
                )
            }
            PeError::RvaOverflow { section } => {
                write!(
                    f,
                    "section {section}: VirtualAddress + size overflows 32 bits"
                )
            }
            PeError::OverlappingSections { first, second } => {
                write!(f, "section {second} overlaps or precedes section {first}")
            }
            PeError::SectionData { section } => {
                write!(f, "section {section}: raw data lies outside the file")
            }
            PeError::ImageTooSmall { size_of_image, len } => {
                write!(
                    f,
                    "mapped image is {len:#x} bytes, SizeOfImage says {size_of_image:#x}"
                )
            }
            PeError::BadRva { what, rva } => {
                write!(f, "{what} at RVA {rva:#x} is outside the image")
            }
            PeError::Relocations(e) => write!(f, "malformed base relocations: {e}"),
            PeError::TooManyImports { limit } => {
                write!(
                    f,
                    "the import table lists more than {limit} imports: not a real image's"
                )
            }
        }
    }
}

/// IMAGE_SCN_MEM_EXECUTE.
pub const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// IMAGE_SCN_MEM_READ.
pub const SCN_MEM_READ: u32 = 0x4000_0000;
/// IMAGE_SCN_MEM_WRITE.
pub const SCN_MEM_WRITE: u32 = 0x8000_0000;
/// IMAGE_SCN_MEM_DISCARDABLE.
pub const SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
/// IMAGE_DIRECTORY_ENTRY_IMPORT.
pub const DIR_IMPORT: usize = 1;
/// IMAGE_DIRECTORY_ENTRY_BASERELOC.
pub const DIR_BASERELOC: usize = 5;
/// IMAGE_DIRECTORY_ENTRY_IAT.
pub const DIR_IAT: usize = 12;
/// IMAGE_REL_BASED_HIGHLOW.
pub const REL_BASED_HIGHLOW: u16 = 3;
/// IMAGE_REL_BASED_DIR64.
pub const REL_BASED_DIR64: u16 = 10;

/// Import descriptors past this many are taken as garbage, not imports.
const MAX_IMPORT_MODULES: usize = 4096;
/// Imports past this many in the whole table are taken as garbage: the
/// budget is shared by all descriptors, since hostile descriptors can all
/// point at one long thunk list.
const MAX_THUNKS: u32 = 1 << 16;
/// Longest module or function name read.
const MAX_NAME: usize = 1024;

/// One section of the image.
#[derive(Clone, Copy, Debug)]
pub struct Section<'a> {
    /// Zero-based position in the section table.
    pub index: usize,
    /// Offset of the section header from the image's start (file and mapped
    /// layouts agree: headers are mapped at RVA 0).
    pub header_offset: usize,
    header: &'a pe::ImageSectionHeader,
}

impl<'a> Section<'a> {
    /// The 8-byte name with trailing NULs removed (not decoded).
    pub fn name(&self) -> &'a [u8] {
        let raw = &self.header.name;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        raw.get(..end).unwrap_or(raw)
    }

    /// The raw 8 name bytes, as the header stores them.
    pub fn raw_name(&self) -> &'a [u8; 8] {
        &self.header.name
    }

    /// VirtualAddress.
    pub fn rva(&self) -> u32 {
        self.header.virtual_address.get(LE)
    }

    /// VirtualSize.
    pub fn virtual_size(&self) -> u32 {
        self.header.virtual_size.get(LE)
    }

    /// SizeOfRawData.
    pub fn raw_size(&self) -> u32 {
        self.header.size_of_raw_data.get(LE)
    }

    /// PointerToRawData.
    pub fn raw_offset(&self) -> u32 {
        self.header.pointer_to_raw_data.get(LE)
    }

    /// Characteristics.
    pub fn characteristics(&self) -> u32 {
        self.header.characteristics.get(LE).0
    }

    /// How many bytes of address space the section covers: VirtualSize, or
    /// SizeOfRawData when a linker left VirtualSize at 0.
    pub fn extent(&self) -> u32 {
        match self.virtual_size() {
            0 => self.raw_size(),
            v => v,
        }
    }

    /// Does the section cover this RVA?
    pub fn contains(&self, rva: u32) -> bool {
        rva >= self.rva() && rva - self.rva() < self.extent()
    }

    /// IMAGE_SCN_MEM_EXECUTE is set.
    pub fn is_executable(&self) -> bool {
        self.characteristics() & SCN_MEM_EXECUTE != 0
    }

    /// IMAGE_SCN_MEM_WRITE is set.
    pub fn is_writable(&self) -> bool {
        self.characteristics() & SCN_MEM_WRITE != 0
    }
}

impl PartialEq for Section<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && self.header_offset == other.header_offset
    }
}
impl Eq for Section<'_> {}

/// The name an import is bound by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportName<'a> {
    /// By name (the hint is not kept).
    Name(&'a [u8]),
    /// By ordinal.
    Ordinal(u16),
}

/// One imported function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Import<'a> {
    /// The module, as the descriptor names it.
    pub module: &'a [u8],
    /// The function.
    pub name: ImportName<'a>,
    /// RVA of its IAT slot (FirstThunk + index × thunk size): what the loader
    /// fills in and what civ rewrites.
    pub iat_rva: u32,
}

/// One import descriptor: a module and where its IAT slots start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportModule<'a> {
    /// The module name.
    pub module: &'a [u8],
    /// OriginalFirstThunk (0 if absent).
    pub original_first_thunk: u32,
    /// FirstThunk: the module's first IAT slot.
    pub first_thunk: u32,
}

/// A parsed PE image.
#[derive(Clone, Copy, Debug)]
pub struct PeImage<'a> {
    data: &'a [u8],
    layout: Layout,
    is_64: bool,
    machine: u16,
    image_base: u64,
    section_alignment: u32,
    file_alignment: u32,
    size_of_image: u32,
    size_of_headers: u32,
    sections: SectionTable<'a>,
    section_table_offset: usize,
    dirs: object::read::pe::DataDirectories<'a>,
}

/// The fields of the NT headers the reader keeps, whatever their width.
struct Headers<'a> {
    machine: u16,
    image_base: u64,
    section_alignment: u32,
    file_alignment: u32,
    size_of_image: u32,
    size_of_headers: u32,
    sections: SectionTable<'a>,
    section_table_offset: u64,
    dirs: object::read::pe::DataDirectories<'a>,
}

fn parse_headers<'a, Pe: ImageNtHeaders>(
    data: &'a [u8],
    nt_offset: u32,
) -> Result<Headers<'a>, PeError> {
    let mut offset = u64::from(nt_offset);
    let (nt, dirs) = Pe::parse(data, &mut offset).map_err(PeError::Headers)?;
    let fh = nt.file_header();
    let count = u32::from(fh.number_of_sections.get(LE));
    let sections = nt
        .sections(data, offset)
        .map_err(|_| PeError::SectionTable { count })?;
    let oh = nt.optional_header();
    Ok(Headers {
        machine: fh.machine.get(LE).0,
        image_base: oh.image_base(),
        section_alignment: oh.section_alignment(),
        file_alignment: oh.file_alignment(),
        size_of_image: oh.size_of_image(),
        size_of_headers: oh.size_of_headers(),
        sections,
        section_table_offset: offset,
        dirs,
    })
}

fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_le_bytes(a))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    let b = data.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

impl<'a> PeImage<'a> {
    /// Reads the headers and section table and validates the section layout.
    pub fn parse(data: &'a [u8], layout: Layout) -> Result<Self, PeError> {
        if data.get(..2) != Some(b"MZ".as_slice()) {
            return Err(PeError::NotMz);
        }
        if data.len() < 64 {
            return Err(PeError::Truncated("DOS header"));
        }
        let nt_offset = read_u32(data, 0x3C).ok_or(PeError::Truncated("DOS header"))?;
        let nt = usize::try_from(nt_offset).map_err(|_| PeError::BadHeaderOffset(nt_offset))?;
        if nt >= data.len() {
            return Err(PeError::BadHeaderOffset(nt_offset));
        }
        if data.len() - nt < 4 + 20 + 2 {
            return Err(PeError::Truncated("NT headers"));
        }
        if data.get(nt..nt + 4) != Some(b"PE\0\0".as_slice()) {
            return Err(PeError::NotPe);
        }
        let magic = read_u16(data, nt + 24).ok_or(PeError::Truncated("optional header"))?;
        let optional_size = read_u16(data, nt + 20).ok_or(PeError::Truncated("file header"))?;
        if data.len() - nt < 24 + usize::from(optional_size) {
            return Err(PeError::Truncated("optional header"));
        }
        let h = match magic {
            pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => {
                if data.len() - nt < core::mem::size_of::<pe::ImageNtHeaders32>() {
                    return Err(PeError::Truncated("optional header"));
                }
                parse_headers::<pe::ImageNtHeaders32>(data, nt_offset)?
            }
            pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => {
                if data.len() - nt < core::mem::size_of::<pe::ImageNtHeaders64>() {
                    return Err(PeError::Truncated("optional header"));
                }
                parse_headers::<pe::ImageNtHeaders64>(data, nt_offset)?
            }
            other => return Err(PeError::BadOptionalMagic(other)),
        };
        let image = PeImage {
            data,
            layout,
            is_64: magic == pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC,
            machine: h.machine,
            image_base: h.image_base,
            section_alignment: h.section_alignment,
            file_alignment: h.file_alignment,
            size_of_image: h.size_of_image,
            size_of_headers: h.size_of_headers,
            sections: h.sections,
            section_table_offset: usize::try_from(h.section_table_offset)
                .map_err(|_| PeError::Truncated("section table"))?,
            dirs: h.dirs,
        };
        image.validate()?;
        Ok(image)
    }

    /// The layout checks the loader would refuse an image for: sections in
    /// ascending, non-overlapping order with no 32-bit overflow, raw data
    /// inside the file, and a mapped buffer as large as SizeOfImage.
    fn validate(&self) -> Result<(), PeError> {
        let mut prev: Option<(usize, u32)> = None;
        for s in self.sections() {
            let end = s
                .rva()
                .checked_add(s.extent())
                .ok_or(PeError::RvaOverflow { section: s.index })?;
            if let Some((first, prev_end)) = prev
                && s.rva() < prev_end
            {
                return Err(PeError::OverlappingSections {
                    first,
                    second: s.index,
                });
            }
            prev = Some((s.index, end));
            if self.layout == Layout::File && s.raw_size() != 0 {
                let raw_end = u64::from(s.raw_offset()) + u64::from(s.raw_size());
                if raw_end > self.data.len() as u64 {
                    return Err(PeError::SectionData { section: s.index });
                }
            }
        }
        if self.layout == Layout::Mapped && (self.data.len() as u64) < u64::from(self.size_of_image)
        {
            return Err(PeError::ImageTooSmall {
                size_of_image: self.size_of_image,
                len: self.data.len(),
            });
        }
        Ok(())
    }

    /// The bytes the image was parsed from.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The layout the image was parsed in.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// PE32+ (64-bit) rather than PE32.
    pub fn is_64(&self) -> bool {
        self.is_64
    }

    /// IMAGE_FILE_HEADER.Machine.
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// ImageBase as linked.
    pub fn image_base(&self) -> u64 {
        self.image_base
    }

    /// SectionAlignment.
    pub fn section_alignment(&self) -> u32 {
        self.section_alignment
    }

    /// FileAlignment.
    pub fn file_alignment(&self) -> u32 {
        self.file_alignment
    }

    /// SizeOfImage.
    pub fn size_of_image(&self) -> u32 {
        self.size_of_image
    }

    /// SizeOfHeaders.
    pub fn size_of_headers(&self) -> u32 {
        self.size_of_headers
    }

    /// The sections, in table order.
    pub fn sections(&self) -> impl Iterator<Item = Section<'a>> + 'a {
        let base = self.section_table_offset;
        self.sections
            .iter()
            .enumerate()
            .map(move |(index, header)| Section {
                index,
                header_offset: base + index * pe::IMAGE_SIZEOF_SECTION_HEADER,
                header,
            })
    }

    /// The section that covers an RVA.
    pub fn section_containing(&self, rva: u32) -> Option<Section<'a>> {
        // `validate` guarantees ascending, non-overlapping sections, so a
        // binary search finds the only candidate: hostile images with
        // thousands of sections cost log(n) per lookup, not n.
        let headers = self.sections.iter().as_slice();
        let after = headers.partition_point(|h| h.virtual_address.get(LE) <= rva);
        let index = after.checked_sub(1)?;
        let header = headers.get(index)?;
        let s = Section {
            index,
            header_offset: self.section_table_offset + index * pe::IMAGE_SIZEOF_SECTION_HEADER,
            header,
        };
        s.contains(rva).then_some(s)
    }

    /// A data directory's (RVA, size), `None` when absent or empty.
    pub fn data_directory(&self, index: usize) -> Option<(u32, u32)> {
        let d = self.dirs.get(index)?;
        let (rva, size) = (d.virtual_address.get(LE), d.size.get(LE));
        (rva != 0).then_some((rva, size))
    }

    /// The bytes from an RVA to the end of what backs it (its section's raw
    /// data in file layout, the buffer in mapped layout).
    pub fn bytes_from(&self, rva: u32, what: &'static str) -> Result<&'a [u8], PeError> {
        let bad = PeError::BadRva { what, rva };
        let offset = match self.layout {
            Layout::Mapped => rva as usize,
            // A section covering the RVA wins over the headers, even where
            // SizeOfHeaders claims more than the first section leaves.
            Layout::File
                if rva < self.size_of_headers && self.section_containing(rva).is_none() =>
            {
                rva as usize
            }
            Layout::File => {
                let s = self.section_containing(rva).ok_or(bad)?;
                let within = rva - s.rva();
                if within >= s.raw_size() {
                    return Err(bad);
                }
                let end = s.raw_offset() as usize + s.raw_size() as usize;
                let start = s.raw_offset() as usize + within as usize;
                return self
                    .data
                    .get(start..end.min(self.data.len()))
                    .filter(|b| !b.is_empty())
                    .ok_or(bad);
            }
        };
        self.data.get(offset..).filter(|b| !b.is_empty()).ok_or(bad)
    }

    /// `len` bytes at an RVA.
    pub fn bytes_at(&self, rva: u32, len: usize, what: &'static str) -> Result<&'a [u8], PeError> {
        self.bytes_from(rva, what)?
            .get(..len)
            .ok_or(PeError::BadRva { what, rva })
    }

    fn u32_at(&self, rva: u32, what: &'static str) -> Result<u32, PeError> {
        read_u32(self.bytes_at(rva, 4, what)?, 0).ok_or(PeError::BadRva { what, rva })
    }

    fn thunk_at(&self, rva: u32) -> Result<u64, PeError> {
        let what = "import thunk";
        if self.is_64 {
            read_u64(self.bytes_at(rva, 8, what)?, 0).ok_or(PeError::BadRva { what, rva })
        } else {
            self.u32_at(rva, what).map(u64::from)
        }
    }

    fn c_string_at(&self, rva: u32, what: &'static str) -> Result<&'a [u8], PeError> {
        let bytes = self.bytes_from(rva, what)?;
        let window = bytes.get(..MAX_NAME).unwrap_or(bytes);
        let end = window
            .iter()
            .position(|&b| b == 0)
            .ok_or(PeError::BadRva { what, rva })?;
        window.get(..end).ok_or(PeError::BadRva { what, rva })
    }

    /// Calls `f` for each import descriptor, in table order.
    pub fn for_each_import_module(
        &self,
        mut f: impl FnMut(ImportModule<'a>),
    ) -> Result<(), PeError> {
        let Some((table, _)) = self.data_directory(DIR_IMPORT) else {
            return Ok(());
        };
        for i in 0..MAX_IMPORT_MODULES as u32 {
            let at = table.checked_add(i * 20).ok_or(PeError::BadRva {
                what: "import descriptor",
                rva: table,
            })?;
            let d = self.bytes_at(at, 20, "import descriptor")?;
            let field = |o: usize| read_u32(d, o).unwrap_or(0);
            let (oft, name, ft) = (field(0), field(12), field(16));
            if oft == 0 && name == 0 && ft == 0 {
                return Ok(());
            }
            f(ImportModule {
                module: self.c_string_at(name, "import module name")?,
                original_first_thunk: oft,
                first_thunk: ft,
            });
        }
        Ok(())
    }

    /// Calls `f` for each imported function. Names come from the
    /// OriginalFirstThunk list when there is one, else from FirstThunk (which
    /// in a mapped, bound image holds addresses: such modules are skipped).
    pub fn for_each_import(&self, mut f: impl FnMut(Import<'a>)) -> Result<(), PeError> {
        let mut result = Ok(());
        let mut budget = MAX_THUNKS;
        self.for_each_import_module(|m| {
            if result.is_ok() {
                result = self.walk_thunks(m, &mut budget, &mut f);
            }
        })?;
        result
    }

    fn walk_thunks(
        &self,
        m: ImportModule<'a>,
        budget: &mut u32,
        f: &mut impl FnMut(Import<'a>),
    ) -> Result<(), PeError> {
        let names_from = match (m.original_first_thunk, self.layout) {
            (0, Layout::Mapped) => return Ok(()),
            (0, Layout::File) => m.first_thunk,
            (oft, _) => oft,
        };
        let size: u32 = if self.is_64 { 8 } else { 4 };
        let ordinal_flag: u64 = if self.is_64 { 1 << 63 } else { 1 << 31 };
        for i in 0.. {
            *budget = budget
                .checked_sub(1)
                .ok_or(PeError::TooManyImports { limit: MAX_THUNKS })?;
            let bad = PeError::BadRva {
                what: "import thunk",
                rva: names_from,
            };
            let thunk = self.thunk_at(names_from.checked_add(i * size).ok_or(bad)?)?;
            if thunk == 0 {
                return Ok(());
            }
            let iat_rva = m.first_thunk.checked_add(i * size).ok_or(bad)?;
            let name = if thunk & ordinal_flag != 0 {
                ImportName::Ordinal(thunk as u16)
            } else {
                // Hint (2 bytes), then the name. A name RVA is 31 bits; any
                // other bit set (bits 31..62 in PE32+) points nowhere.
                let bad_name = PeError::BadRva {
                    what: "import name",
                    rva: thunk as u32,
                };
                let hint_name = u32::try_from(thunk)
                    .ok()
                    .filter(|r| r & 0x8000_0000 == 0)
                    .ok_or(bad_name)?;
                let at = hint_name.checked_add(2).ok_or(bad_name)?;
                ImportName::Name(self.c_string_at(at, "import name")?)
            };
            f(Import {
                module: m.module,
                name,
                iat_rva,
            });
        }
        Ok(())
    }

    /// Calls `f(rva, type)` for every base relocation (padding entries of
    /// type ABSOLUTE at offset 0 are skipped).
    pub fn for_each_base_relocation(&self, mut f: impl FnMut(u32, u16)) -> Result<(), PeError> {
        let Some((rva, size)) = self.data_directory(DIR_BASERELOC) else {
            return Ok(());
        };
        let bytes = self.bytes_from(rva, "base relocation directory")?;
        let bytes = bytes.get(..size as usize).unwrap_or(bytes);
        let mut blocks = RelocationBlockIterator::new(bytes);
        while let Some(block) = blocks.next().map_err(PeError::Relocations)? {
            for r in block {
                f(r.virtual_address, r.typ.0);
            }
        }
        Ok(())
    }
}
