//! The IAT planner: which import slots of a mapped target image civ
//! rewrites, and rewriting them.
//!
//! Planning only reads the image. Writing is the driver's (an IAT is
//! read-only once the loader is done, so it writes through an MDL alias):
//! it gets each slot's address and the value to write through
//! [`SlotWriter`]. A slot is rewritten only if it holds the kernel's own
//! routine for its API; there is no way back: once civ has hooked a slot,
//! it stays in memory until reboot (a target may have copied the pointer).

use crate::catalog::{self, CATALOG};
use crate::pe::{ImportName, Layout, PeError, PeImage, SCN_MEM_DISCARDABLE, Section};

/// One IAT slot civ hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The slot's RVA in the image.
    pub rva: u32,
    /// The catalog row.
    pub hook: u8,
}

/// Most slots one image can have planned: the catalog's rows, once per
/// import descriptor naming ntoskrnl (real drivers have one), with room
/// for a second descriptor.
pub const MAX_SLOTS: usize = 32;

/// A plan: the slots of one image, in import order, with no allocation
/// (256 bytes: it lives on a kernel stack).
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    slots: [Slot; MAX_SLOTS],
    len: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan::EMPTY
    }
}

impl Plan {
    /// A plan with no slot.
    pub const EMPTY: Plan = Plan {
        slots: [Slot { rva: 0, hook: 0 }; MAX_SLOTS],
        len: 0,
    };

    /// The planned slots.
    pub fn slots(&self) -> &[Slot] {
        self.slots.get(..self.len).unwrap_or(&[])
    }
}

/// Why an image cannot be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Hooks are x64 only: the image is PE32.
    NotPe32Plus,
    /// The image must be given in mapped layout.
    NotMapped,
    /// More hooked slots than [`MAX_SLOTS`].
    TooManySlots,
    /// A hooked slot lies in a pageable or discardable section (PAGE*,
    /// INIT): its page may be trimmed and read back without civ's write,
    /// or be gone, so civ does not write there.
    PageableIat,
    /// The image could not be read.
    Pe(PeError),
}

impl From<PeError> for PlanError {
    fn from(e: PeError) -> Self {
        PlanError::Pe(e)
    }
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlanError::NotPe32Plus => f.write_str("not a PE32+ (x64) image"),
            PlanError::NotMapped => f.write_str("the image must be in mapped layout"),
            PlanError::TooManySlots => write!(f, "more than {MAX_SLOTS} hooked import slots"),
            PlanError::PageableIat => {
                f.write_str("its IAT is in a pageable or discardable section (PAGE*, INIT)")
            }
            PlanError::Pe(e) => write!(f, "{e}"),
        }
    }
}

/// Is a section pageable or discardable (a driver's PAGE* and INIT)?
fn pageable(section: &Section<'_>) -> bool {
    section.characteristics() & SCN_MEM_DISCARDABLE != 0 || section.name().starts_with(b"PAGE")
}

/// Plans an image: every IAT slot of a catalog API, in import order.
/// Reads only; the image can be dropped before writing.
pub fn plan(image: &PeImage<'_>) -> Result<Plan, PlanError> {
    if !image.is_64() {
        return Err(PlanError::NotPe32Plus);
    }
    if image.layout() != Layout::Mapped {
        return Err(PlanError::NotMapped);
    }
    let mut plan = Plan::default();
    let mut failed = None;
    image.for_each_import(|imp| {
        let ImportName::Name(name) = imp.name else {
            return;
        };
        let Some(hook) = catalog::find(imp.module, name) else {
            return;
        };
        let Some(index) = CATALOG
            .iter()
            .position(|h| core::ptr::eq(h, hook))
            .and_then(|i| u8::try_from(i).ok())
        else {
            return;
        };
        if image
            .section_containing(imp.iat_rva)
            .is_some_and(|s| pageable(&s))
        {
            failed = Some(PlanError::PageableIat);
            return;
        }
        match plan.slots.get_mut(plan.len) {
            Some(s) => {
                *s = Slot {
                    rva: imp.iat_rva,
                    hook: index,
                };
                plan.len += 1;
            }
            None => failed = Some(PlanError::TooManySlots),
        }
    })?;
    failed.map_or(Ok(plan), Err)
}

/// Reads and writes one pointer of the target image.
pub trait SlotWriter {
    /// Why a write failed.
    type Error;
    /// Writes `value` into the 8-byte slot at `rva`.
    fn write(&mut self, rva: u32, value: u64) -> Result<(), Self::Error>;
    /// What the slot at `rva` holds now; `None` when it cannot be read
    /// (the image is gone).
    fn read(&mut self, rva: u32) -> Option<u64>;
}

/// What installing hooks in one image did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Slots rewritten.
    pub hooked: u32,
    /// Slots left alone because they hold something other than the
    /// kernel's routine (another hooker, Driver Verifier's thunk, a
    /// forwarder) or nothing.
    pub conflicts: u32,
    /// Slots whose write failed, or that could not be read.
    pub failed: u32,
    /// Slots already pointing at civ's entry.
    pub already: u32,
    /// Slots not written because `may_write` said no (civ is stopping).
    pub refused: u32,
}

/// Rewrites every planned slot that holds the kernel's routine for its row
/// (`original(row)`) to civ's entry (`entry(row)`). `may_write` is asked
/// once, before the first write: civ pins itself in memory there, and
/// writes nothing if it cannot (it is being unloaded).
pub fn install<W: SlotWriter>(
    plan: &Plan,
    writer: &mut W,
    entry: impl Fn(usize) -> Option<u64>,
    original: impl Fn(usize) -> u64,
    mut may_write: impl FnMut() -> bool,
) -> InstallReport {
    let mut report = InstallReport::default();
    let mut allowed = None;
    for slot in plan.slots() {
        let row = usize::from(slot.hook);
        let Some(to) = entry(row) else { continue };
        let Some(now) = writer.read(slot.rva) else {
            report.failed += 1;
            continue;
        };
        let kernel = original(row);
        if now == to {
            report.already += 1;
        } else if kernel == 0 || now != kernel {
            report.conflicts += 1;
        } else if !*allowed.get_or_insert_with(&mut may_write) {
            report.refused += 1;
        } else if writer.write(slot.rva, to).is_ok() {
            report.hooked += 1;
        } else {
            report.failed += 1;
        }
    }
    report
}
