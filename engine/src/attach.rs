//! What civ does when a target image loads, or is found already loaded at
//! start: match it against the settings, run the image checks (0x2003–0x2005
//! and relocations), then plan and rewrite its IAT so its calls of the
//! catalog's APIs go through civ. Also the way back: restore every slot.
//!
//! Two steps, so that the driver drops its read-only view of the image
//! before any slot is written through an alias: [`inspect`] reads the
//! mapped image, [`hook`] writes.

use crate::code::Code;
use crate::iat::{self, InstallReport, Plan, PlanError, SlotWriter};
use crate::image;
use crate::log::{API_NONE, Event, TARGET_IMAGE_CHECKED, TARGET_LATE};
use crate::pe::{Layout, PeError, PeImage};
use crate::runtime::{self, LOG};
use crate::settings::Action;
use crate::stubs;
use crate::sync::SpinLock;

/// Most targets hooked at once (as many as the log keeps).
pub const MAX_HOOKED: usize = 64;

/// An image finding that calls for a bug check, with DV's Arg3 and the
/// section name; the driver supplies Arg2 (the image name's
/// UNICODE_STRING) and Arg4 (a pointer to the name, which must stay valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageBugCheck {
    /// 0x2003, 0x2004 or 0x2005.
    pub code: Code,
    /// The section header's address (0x2003/0x2004) or the IAT's (0x2005).
    pub arg3: u64,
    /// The section name, NUL-terminated (8 bytes at most, then NUL).
    pub section_name: [u8; 9],
}

/// What inspecting an image found.
#[derive(Clone, Copy, Debug)]
pub struct Inspection {
    /// Its index in the log.
    pub target: u8,
    /// How many image findings were recorded.
    pub findings: u32,
    /// The first finding that calls for a bug check, in bug-check mode.
    pub bug_check: Option<ImageBugCheck>,
    /// The IAT slots to rewrite (empty when the image cannot be hooked).
    pub plan: Plan,
    /// Why the IAT cannot be hooked, if so.
    pub plan_error: Option<PlanError>,
}

/// Why an image was not inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectError {
    /// Not a readable PE image.
    Pe(PeError),
    /// The log has no room for another target.
    TooManyTargets,
}

/// Reads a mapped target image: registers it in the log, records its image
/// findings, and plans its IAT. `now` is the log's timestamp.
pub fn inspect(
    image: &[u8],
    base: u64,
    file_name: &[u8],
    late: bool,
    action: Action,
    now: u64,
) -> Result<Inspection, InspectError> {
    let pe = PeImage::parse(image, Layout::Mapped).map_err(InspectError::Pe)?;
    let flags = TARGET_IMAGE_CHECKED | if late { TARGET_LATE } else { 0 };
    let target = LOG
        .register_target(file_name, base, u64::from(pe.size_of_image()), flags)
        .map_err(|_| InspectError::TooManyTargets)?;
    let mut findings = 0;
    let mut bug_check = None;
    let checked = image::check_image(&pe, |f| {
        findings += 1;
        let arg3 = match f.detail {
            image::Detail::IatInExecutable { .. } => base.wrapping_add(u64::from(f.rva)),
            _ => f
                .section
                .map_or(0, |s| base.wrapping_add(s.header_offset as u64)),
        };
        LOG.record(
            Event {
                counter: f.counter,
                target,
                api: API_NONE,
                offset: u64::from(f.rva),
                arg3,
                arg4: 0,
            },
            now,
        );
        if action == Action::BugCheck
            && bug_check.is_none()
            && let Some(code) = f.counter.code()
        {
            let mut section_name = [0u8; 9];
            if let Some(s) = f.section {
                section_name[..8].copy_from_slice(s.raw_name());
            }
            bug_check = Some(ImageBugCheck {
                code,
                arg3,
                section_name,
            });
        }
    });
    let (plan, plan_error) = match checked.map_err(PlanError::Pe).and_then(|()| iat::plan(&pe)) {
        Ok(plan) => (plan, None),
        Err(e) => (Plan::default(), Some(e)),
    };
    Ok(Inspection {
        target,
        findings,
        bug_check,
        plan,
        plan_error,
    })
}

static PLANS: SpinLock<[(u8, Plan); MAX_HOOKED]> =
    SpinLock::new([(u8::MAX, Plan::EMPTY); MAX_HOOKED]);

/// Rewrites the planned slots of an inspected target through `writer`,
/// recording each API's original, and keeps the plan for [`unhook_all`].
pub fn hook<W: SlotWriter>(target: u8, mut plan: Plan, writer: &mut W) -> InstallReport {
    let report = iat::install(&mut plan, writer, stubs::entry, runtime::set_original);
    LOG.add_hooked_slots(target, report.hooked);
    if report.hooked > 0 {
        PLANS.with(|plans| {
            if let Some(free) = plans
                .iter_mut()
                .find(|(t, _)| *t == u8::MAX || *t == target)
            {
                *free = (target, plan);
            }
        });
    }
    report
}

/// Puts back every hooked slot of every target, with a writer made for
/// each target's base. Returns (restored, not restored).
pub fn unhook_all<W: SlotWriter>(mut writer_for: impl FnMut(u8) -> Option<W>) -> (u32, u32) {
    PLANS.with(|plans| {
        let (mut restored, mut failed) = (0, 0);
        for (target, plan) in plans.iter_mut().filter(|(t, _)| *t != u8::MAX) {
            let pending = plan.slots().iter().filter(|s| s.hooked).count() as u32;
            match writer_for(*target) {
                Some(mut w) => {
                    let (r, f) = iat::restore(plan, &mut w, stubs::entry);
                    restored += r;
                    failed += f;
                }
                None => failed += pending,
            }
            if plan.slots().iter().all(|s| !s.hooked) {
                *target = u8::MAX;
            }
        }
        (restored, failed)
    })
}
