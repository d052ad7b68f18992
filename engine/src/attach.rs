//! What civ does when a target image loads, or is found already loaded at
//! start: register it in the log, run the image checks (0x2003–0x2005 and
//! relocations), then plan and rewrite its IAT so its calls of the
//! catalog's APIs go through civ. There is no way back: the first slot
//! written pins civ in memory until reboot ([`runtime::pin`]).
//!
//! Two steps, so that the driver drops its read-only view of the image
//! before any slot is written through an alias: [`inspect`] reads the
//! mapped image, [`hook`] writes. Which images get here is
//! [`crate::scope`]'s decision.

use crate::code::Code;
use crate::dvrt;
use crate::iat::{self, InstallReport, Plan, PlanError, SlotWriter};
use crate::image;
use crate::log::{
    API_NONE, Event, RegisterError, TARGET_IMAGE_CHECKED, TARGET_IMPORT_OPTIMIZED, TARGET_LATE,
    TARGET_NAMED,
};
use crate::pe::{Layout, PeError, PeImage};
use crate::runtime::{self, LOG};
use crate::settings::Action;
use crate::stubs;

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
    /// Which load of its name this is (1, 2, ...).
    pub load: u16,
    /// How many image findings were recorded.
    pub findings: u32,
    /// The first finding that calls for a bug check, in bug-check mode
    /// (0x2003 on INIT never does: it is only recorded).
    pub bug_check: Option<ImageBugCheck>,
    /// The image has import-control-transfer dynamic relocations: the
    /// kernel may bind its IAT calls directly, unseen by civ.
    pub import_optimized: bool,
    /// Why the IAT cannot be hooked, if so (the plan is empty then).
    pub plan_error: Option<PlanError>,
}

/// How an image came to civ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Found already loaded at civ's start (its DriverEntry ran unseen).
    pub late: bool,
    /// A target name matched it exactly (not only a pattern).
    pub named: bool,
}

/// Why an image was not inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectError {
    /// Not a readable PE image.
    Pe(PeError),
    /// The log has no room for another target.
    TooManyTargets,
    /// This image (name and base) is registered already, at this index:
    /// the load notification and the module list both saw it.
    AlreadyAttached(u8),
}

/// A section name as a bug check's Arg4 would show it, packed into the
/// log's arg4: its 8 bytes, little-endian (a log has no string to point at).
pub fn packed_section_name(raw: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*raw)
}

/// Reads a mapped target image: registers it in the log, records its image
/// findings, and plans its IAT into `plan`. `now` is the log's timestamp.
pub fn inspect(
    image: &[u8],
    base: u64,
    file_name: &[u8],
    origin: Origin,
    action: Action,
    now: u64,
    plan: &mut Plan,
) -> Result<Inspection, InspectError> {
    *plan = Plan::EMPTY;
    let pe = PeImage::parse(image, Layout::Mapped).map_err(InspectError::Pe)?;
    let import_optimized = dvrt::has_import_call_transfers(&pe).unwrap_or(false);
    let flags = TARGET_IMAGE_CHECKED
        | if origin.late { TARGET_LATE } else { 0 }
        | if origin.named { TARGET_NAMED } else { 0 }
        | if import_optimized {
            TARGET_IMPORT_OPTIMIZED
        } else {
            0
        };
    let registered = LOG
        .register_target(file_name, base, u64::from(pe.size_of_image()), flags)
        .map_err(|e| match e {
            RegisterError::Full => InspectError::TooManyTargets,
            RegisterError::AlreadyRegistered(i) => InspectError::AlreadyAttached(i),
        })?;
    let target = registered.index;
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
        let raw_name = f.section.map_or([0; 8], |s| *s.raw_name());
        LOG.record(
            Event {
                counter: f.counter,
                target,
                api: API_NONE,
                offset: u64::from(f.rva),
                arg3,
                arg4: packed_section_name(&raw_name),
                load: registered.load,
            },
            now,
        );
        // 0x2003 on the discardable INIT section (old linkers; Windows 10+
        // maps it read-only) is recorded, never a bug check: whether DV
        // stops for it is not known, and a boot-start driver would stop
        // every boot.
        let init = matches!(f.detail, image::Detail::WriteExecute { init: true });
        if action == Action::BugCheck
            && bug_check.is_none()
            && !init
            && let Some(code) = f.counter.code()
        {
            let mut section_name = [0u8; 9];
            section_name[..8].copy_from_slice(&raw_name);
            bug_check = Some(ImageBugCheck {
                code,
                arg3,
                section_name,
            });
        }
    });
    let plan_error = match checked.map_err(PlanError::Pe).and_then(|()| iat::plan(&pe)) {
        Ok(p) => {
            *plan = p;
            None
        }
        Err(e) => Some(e),
    };
    Ok(Inspection {
        target,
        load: registered.load,
        findings,
        bug_check,
        import_optimized,
        plan_error,
    })
}

/// Rewrites the planned slots of an inspected target through `writer`:
/// each slot that holds the kernel's routine for its API now points to
/// civ's entry. Before the first write civ pins itself in memory; if civ is
/// being unloaded, nothing is written (`refused`).
pub fn hook<W: SlotWriter>(target: u8, plan: &Plan, writer: &mut W) -> InstallReport {
    let report = iat::install(plan, writer, stubs::entry, runtime::original, runtime::pin);
    LOG.add_hooked_slots(target, report.hooked, report.conflicts);
    report
}
