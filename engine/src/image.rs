//! DV's image checks (0x2003–0x2005) and the "unsupported relocs" counter,
//! over a parsed [`PeImage`].
//!
//! The checks report every finding, not only the first: DV stops at the first
//! one with a bug check, civ lists them all. Each finding carries what the
//! bug check needs (the section header's offset, the section name, the IAT
//! RVA) so the driver can build DV's arguments from it.

use crate::catalog::{self, Hook};
use crate::code::Counter;
use crate::pe::{ImportName, PeError, PeImage, REL_BASED_DIR64, REL_BASED_HIGHLOW, Section};

/// What to say of 0x2003 on the discardable INIT section.
pub const INIT_NOTE: &str = "it is the discardable INIT section, which Windows 10+ maps read-only, \
     but DV may still object: link with a current toolset so INIT is not writable";

/// The page size HVCI enforces sections against.
pub const PAGE_SIZE: u32 = 0x1000;

/// Why a finding was raised, with the numbers that prove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// 0x2003: the section is writable and executable. `init` says it is the
    /// discardable INIT section, which the loader makes read-only since
    /// Windows 10 (whether DV exempts it is not known).
    WriteExecute {
        /// The section is named INIT.
        init: bool,
    },
    /// 0x2004: the section starts off a page boundary.
    SectionOffPage {
        /// The image's SectionAlignment.
        section_alignment: u32,
    },
    /// 0x2004: SectionAlignment is below the page size (reported once, on
    /// the first section, when no section is individually off a page).
    AlignmentBelowPage {
        /// The image's SectionAlignment.
        section_alignment: u32,
    },
    /// 0x2005: the IAT lies in an executable section.
    IatInExecutable {
        /// Found only through an import descriptor's FirstThunk, not through
        /// the IAT data directory.
        via_first_thunk: bool,
    },
    /// Unsupported relocs: base relocations whose fixup straddles a page.
    StraddlingRelocations {
        /// How many such relocations the image has.
        count: u32,
        /// The type of the first (HIGHLOW = 3, DIR64 = 10).
        first_type: u16,
    },
}

/// One image finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding<'a> {
    /// The DV counter (and through it the code).
    pub counter: Counter,
    /// The section concerned, if any.
    pub section: Option<Section<'a>>,
    /// The RVA the finding is about: the section's start, the IAT, or the
    /// first straddling relocation.
    pub rva: u32,
    /// Why.
    pub detail: Detail,
}

/// Runs every image check and calls `f` for each finding, in the order
/// 0x2003, 0x2004, 0x2005, relocs.
pub fn check_image<'a>(image: &PeImage<'a>, mut f: impl FnMut(Finding<'a>)) -> Result<(), PeError> {
    check_write_execute(image, &mut f);
    check_alignment(image, &mut f);
    check_iat(image, &mut f)?;
    check_relocations(image, &mut f)
}

/// 0x2003: every section with both IMAGE_SCN_MEM_WRITE and MEM_EXECUTE.
pub fn check_write_execute<'a>(image: &PeImage<'a>, f: &mut impl FnMut(Finding<'a>)) {
    for s in image
        .sections()
        .filter(|s| s.is_writable() && s.is_executable())
    {
        f(Finding {
            counter: Counter::ExecuteWriteSection,
            section: Some(s),
            rva: s.rva(),
            detail: Detail::WriteExecute {
                init: s.name() == b"INIT",
            },
        });
    }
}

/// 0x2004: every section that does not start on a page, or, when all do by
/// chance, one finding for a SectionAlignment below the page size.
pub fn check_alignment<'a>(image: &PeImage<'a>, f: &mut impl FnMut(Finding<'a>)) {
    let section_alignment = image.section_alignment();
    let mut any = false;
    for s in image.sections().filter(|s| s.rva() % PAGE_SIZE != 0) {
        any = true;
        f(Finding {
            counter: Counter::SectionAlignmentFailures,
            section: Some(s),
            rva: s.rva(),
            detail: Detail::SectionOffPage { section_alignment },
        });
    }
    if !any && section_alignment < PAGE_SIZE {
        let first = image.sections().next();
        f(Finding {
            counter: Counter::SectionAlignmentFailures,
            section: first,
            rva: first.map_or(0, |s| s.rva()),
            detail: Detail::AlignmentBelowPage { section_alignment },
        });
    }
}

/// The section that holds the IAT and the IAT's RVA: the IAT data directory
/// when present, else the first import descriptor's FirstThunk. `None` for
/// an image without imports.
pub fn iat_location<'a>(
    image: &PeImage<'a>,
) -> Result<Option<(u32, Option<Section<'a>>)>, PeError> {
    if let Some((rva, _)) = image.data_directory(crate::pe::DIR_IAT) {
        return Ok(Some((rva, image.section_containing(rva))));
    }
    let mut first = None;
    image.for_each_import_module(|m| {
        if first.is_none() && m.first_thunk != 0 {
            first = Some(m.first_thunk);
        }
    })?;
    Ok(first.map(|rva| (rva, image.section_containing(rva))))
}

/// 0x2005: the IAT directory inside an executable section, and any import
/// descriptor whose FirstThunk lies in an executable section (once per
/// section), which catches images whose IAT directory is absent or wrong.
pub fn check_iat<'a>(image: &PeImage<'a>, f: &mut impl FnMut(Finding<'a>)) -> Result<(), PeError> {
    let mut reported: Option<usize> = None;
    if let Some((rva, _)) = image.data_directory(crate::pe::DIR_IAT)
        && let Some(s) = image.section_containing(rva).filter(|s| s.is_executable())
    {
        reported = Some(s.index);
        f(Finding {
            counter: Counter::IatInExecutableSection,
            section: Some(s),
            rva,
            detail: Detail::IatInExecutable {
                via_first_thunk: false,
            },
        });
    }
    // Sections already reported, as a bit set; an image with more than 128
    // sections may see a later one reported once per descriptor.
    let bit = |i: usize| if i < 128 { 1u128 << i } else { 0 };
    let mut seen: u128 = reported.map_or(0, bit);
    image.for_each_import_module(|m| {
        let Some(s) = image
            .section_containing(m.first_thunk)
            .filter(|s| s.is_executable())
        else {
            return;
        };
        if seen & bit(s.index) != 0 {
            return;
        }
        seen |= bit(s.index);
        f(Finding {
            counter: Counter::IatInExecutableSection,
            section: Some(s),
            rva: m.first_thunk,
            detail: Detail::IatInExecutable {
                via_first_thunk: true,
            },
        });
    })
}

/// Unsupported relocs: a DIR64 fixup at page offset above 0xFF8 or a HIGHLOW
/// above 0xFFC spans two pages, which HVCI on Windows 10 1507–1607 cannot
/// apply. One finding with the count and the first RVA.
pub fn check_relocations<'a>(
    image: &PeImage<'a>,
    f: &mut impl FnMut(Finding<'a>),
) -> Result<(), PeError> {
    let mut count = 0u32;
    let mut first: Option<(u32, u16)> = None;
    image.for_each_base_relocation(|rva, typ| {
        let width = match typ {
            REL_BASED_DIR64 => 8,
            REL_BASED_HIGHLOW => 4,
            _ => return,
        };
        if rva % PAGE_SIZE > PAGE_SIZE - width {
            count += 1;
            first.get_or_insert((rva, typ));
        }
    })?;
    if let Some((rva, first_type)) = first {
        f(Finding {
            counter: Counter::UnsupportedRelocs,
            section: image.section_containing(rva),
            rva,
            detail: Detail::StraddlingRelocations { count, first_type },
        });
    }
    Ok(())
}

/// Calls `f` for each import of the image that civ hooks, with its catalog
/// row and IAT slot, in import-table order.
pub fn for_each_hooked_import<'a>(
    image: &PeImage<'a>,
    mut f: impl FnMut(&'static Hook, crate::pe::Import<'a>),
) -> Result<(), PeError> {
    image.for_each_import(|imp| {
        if let ImportName::Name(name) = imp.name
            && let Some(h) = catalog::find(imp.module, name)
        {
            f(h, imp);
        }
    })
}
