//! The IAT planner: which import slots of a mapped target image civ
//! rewrites, what each holds now, and how to put it back.
//!
//! Planning only reads the image. Writing is the driver's (an IAT is
//! read-only once the loader is done, so it writes through an MDL alias):
//! it gets each slot's address and the value to write through
//! [`SlotWriter`]. Restoring writes back exactly what was there.

use crate::catalog::{self, CATALOG};
use crate::pe::{ImportName, Layout, PeError, PeImage};

/// One IAT slot civ hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The slot's RVA in the image.
    pub rva: u32,
    /// The catalog row.
    pub hook: usize,
    /// What the slot held when planned (the loader's resolved address):
    /// what restoring writes back.
    pub value: u64,
    /// Set by [`install`] when the slot was rewritten.
    pub hooked: bool,
}

/// Most slots one image can have planned: one per catalog row per import
/// descriptor naming ntoskrnl, which real drivers have once.
pub const MAX_SLOTS: usize = 64;

/// A plan: the slots of one image, in import order, with no allocation.
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
        slots: [Slot {
            rva: 0,
            hook: 0,
            value: 0,
            hooked: false,
        }; MAX_SLOTS],
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
            PlanError::Pe(e) => write!(f, "{e}"),
        }
    }
}

/// Plans an image: every IAT slot of a catalog API, in import order, with
/// its current value. Reads only; the image can be dropped before writing.
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
        let Some(index) = CATALOG.iter().position(|h| core::ptr::eq(h, hook)) else {
            return;
        };
        let value = match image.bytes_at(imp.iat_rva, 8, "IAT slot") {
            Ok(b) => {
                let mut v = [0u8; 8];
                v.copy_from_slice(b);
                u64::from_le_bytes(v)
            }
            Err(e) => {
                failed = failed.or(Some(PlanError::Pe(e)));
                return;
            }
        };
        match plan.slots.get_mut(plan.len) {
            Some(s) => {
                *s = Slot {
                    rva: imp.iat_rva,
                    hook: index,
                    value,
                    hooked: false,
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
    /// Slots left alone because they point somewhere other than the
    /// original civ recorded for that API (another hooker, a forwarder).
    pub conflicts: u32,
    /// Slots whose write failed.
    pub failed: u32,
    /// Slots already pointing at civ's entry.
    pub already: u32,
}

/// Rewrites every planned slot to `entry(row)` and marks it hooked.
/// `set_original(row, value)` records the slot's value as the row's
/// original if none is recorded and returns the original in force; a slot
/// holding anything else is a conflict and left alone.
pub fn install<W: SlotWriter>(
    plan: &mut Plan,
    writer: &mut W,
    entry: impl Fn(usize) -> Option<u64>,
    mut set_original: impl FnMut(usize, u64) -> u64,
) -> InstallReport {
    let mut report = InstallReport::default();
    let len = plan.len;
    for slot in plan.slots.iter_mut().take(len) {
        let Some(to) = entry(slot.hook) else { continue };
        if slot.value == to {
            report.already += 1;
        } else if slot.value == 0 || set_original(slot.hook, slot.value) != slot.value {
            report.conflicts += 1;
        } else if writer.write(slot.rva, to).is_ok() {
            slot.hooked = true;
            report.hooked += 1;
        } else {
            report.failed += 1;
        }
    }
    report
}

/// Writes back what every hooked slot held before, where the slot still
/// holds civ's entry (an image unloaded meanwhile reads as `None` and is
/// left alone). Returns how many slots were restored and how many could
/// not be (write failed, or the slot holds something else now); those stay
/// marked hooked.
pub fn restore<W: SlotWriter>(
    plan: &mut Plan,
    writer: &mut W,
    entry: impl Fn(usize) -> Option<u64>,
) -> (u32, u32) {
    let (mut restored, mut failed) = (0, 0);
    let len = plan.len;
    for slot in plan.slots.iter_mut().take(len).filter(|s| s.hooked) {
        if writer.read(slot.rva) == entry(slot.hook) && writer.write(slot.rva, slot.value).is_ok() {
            slot.hooked = false;
            restored += 1;
        } else {
            failed += 1;
        }
    }
    (restored, failed)
}
