//! What civ.sys does, whatever the driver model: start, react to an image
//! load, answer an IOCTL, stop. Each step hands the kernel's data to the
//! engine and carries out what the engine decides.
//!
//! Lifetime: civ may unload only while nothing of it is in any target. The
//! first IAT slot it rewrites (or the first routine lookup it answers with
//! its own entry) pins it: a reference on its own driver object keeps the
//! image mapped until reboot, whatever becomes of the driver object. The
//! unload routine is never withdrawn (the I/O manager may already have
//! decided to call it, and would then call NULL): an unload of a pinned civ
//! stops checking new loads, turns bug checks into log entries, and leaves
//! every hook in place. Driver Verifier, too, needs a reboot to stop.

use crate::log;
use crate::nt::{self, modules, notify, patch::KernelSlots, registry, stack, time};
use alloc::vec::Vec;
use civ_engine::attach::{self, InspectError, Origin};
use civ_engine::catalog::CATALOG;
use civ_engine::code::BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION;
use civ_engine::iat::Plan;
use civ_engine::log::Event;
use civ_engine::protocol::{Kind, MAX_REQUEST_SIZE, STATUS_INVALID_PARAMETER};
use civ_engine::runtime::{self, KernelOps, LOG, Stop};
use civ_engine::scope::{self, Decision, Image, signing_level_name};
use civ_engine::serve;
use civ_engine::settings::{Action, Match};
use civ_engine::sync::SpinLock;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Wdk::System::SystemServices::{ObfDereferenceObject, ObfReferenceObject};
use windows_sys::Win32::Foundation::UNICODE_STRING;

static OPS: KernelOps = KernelOps {
    bug_check: nt::bug_check,
    now: time::now,
    report,
    pin,
    unpin,
    capture_stack: stack::capture,
};

/// Set while a first hit is being printed: a DbgPrint callback that itself
/// makes a checked call must not print again inside the print.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// The first hit of a violation site, printed as it happens (any IRQL up
/// to DISPATCH_LEVEL: DbgPrintEx and the log's atomics only), when the
/// target's stack has room for it.
unsafe extern "system" fn report(e: &Event) {
    if !stack::may_walk() || REPORTING.swap(true, Ordering::Acquire) {
        return;
    }
    print_violation(e);
    REPORTING.store(false, Ordering::Release);
}

fn print_violation(e: &Event) {
    let api = CATALOG.get(usize::from(e.api)).map_or("?", |h| h.name);
    let code = e.counter.tag();
    match LOG.targets().find(|t| t.index == e.target) {
        Some(t) => log!(
            "violation {code} {api} from {}+{:#x} (load {}): arg3 {:#x}, arg4 {:#x}",
            core::str::from_utf8(t.name_bytes()).unwrap_or("?"),
            e.offset,
            e.load,
            e.arg3,
            e.arg4
        ),
        None => log!(
            "violation {code} {api} from {:#x} (no target): arg3 {:#x}, arg4 {:#x}",
            e.offset,
            e.arg3,
            e.arg4
        ),
    }
}

/// This driver's object, which pinning civ holds a reference on.
static DRIVER: AtomicPtr<DRIVER_OBJECT> = AtomicPtr::new(core::ptr::null_mut());
/// civ's own image base (never a target).
static CIV_BASE: AtomicU64 = AtomicU64::new(0);

/// Remembers the driver object and where civ's image lies (DriverEntry,
/// both shells, before [`start`]).
///
/// # Safety
/// `driver` is null or this driver's object, which outlives civ's use.
pub unsafe fn set_driver_object(driver: *mut DRIVER_OBJECT) {
    DRIVER.store(driver, Ordering::Release);
    // SAFETY: the caller's contract.
    if let Some(d) = unsafe { driver.as_ref() } {
        let base = d.DriverStart as usize as u64;
        CIV_BASE.store(base, Ordering::Relaxed);
        stack::init(base, u64::from(d.DriverSize));
    }
}

/// The engine's `pin`, before a target first holds a pointer into civ: a
/// reference on civ's driver object, never dropped, keeps the image mapped
/// until reboot even after an unload (the image goes with the driver
/// object's last reference).
unsafe extern "system" fn pin() {
    let driver = DRIVER.load(Ordering::Acquire);
    if !driver.is_null() {
        // SAFETY: our own driver object, valid while the driver is loaded.
        unsafe { ObfReferenceObject(driver.cast()) };
    }
    log!(
        "civ now sits in a driver's calls: it stays in memory until reboot (civctl disable and a reboot remove it)"
    );
}

/// The engine's `unpin`: a pin that lost its race gives its reference back.
unsafe extern "system" fn unpin() {
    let driver = DRIVER.load(Ordering::Acquire);
    if !driver.is_null() {
        // SAFETY: the reference `pin` took on our driver object.
        unsafe { ObfDereferenceObject(driver.cast()) };
    }
}

/// Memory integrity is on: civ writes into no driver that loaded before it.
static HVCI: AtomicBool = AtomicBool::new(false);

/// The section name a 0x2003–0x2005 bug check points at: it must stay
/// valid after the loader's view of the image is gone.
static SECTION_NAME: SpinLock<[u8; 9]> = SpinLock::new([0; 9]);

/// Up to 64 characters of a catalog name, as UTF-16, for a routine lookup.
fn lookup(name: &str) -> u64 {
    let mut units = [0u16; 64];
    let n = name.len().min(units.len());
    for (u, b) in units.iter_mut().zip(name.bytes()) {
        *u = u16::from(b);
    }
    let s = UNICODE_STRING {
        Length: (n * 2) as u16,
        MaximumLength: (n * 2) as u16,
        Buffer: units.as_mut_ptr(),
    };
    // SAFETY: a valid UNICODE_STRING over `units`, at PASSIVE_LEVEL.
    unsafe {
        windows_sys::Wdk::System::SystemServices::MmGetSystemRoutineAddress(&s) as usize as u64
    }
}

/// Looks up the kernel routines civ resolves by name, installs the
/// engine's kernel interface and the kernel's spin lock, and records the
/// kernel's own routine for every hooked API (a slot is hooked only where
/// it holds that routine). First thing in DriverEntry, before any log.
pub fn prepare() {
    nt::lock::init();
    nt::ffi::resolve();
    time::init();
    nt::patch::init();
    runtime::set_kernel_ops(&OPS);
    // SAFETY: `now` is always safe to call.
    runtime::set_started(unsafe { time::now() });
    let found = runtime::resolve_originals(lookup);
    if found < CATALOG.len() {
        log!(
            "the kernel exports {found} of the {} routines civ hooks; the others are never hooked",
            CATALOG.len()
        );
    }
}

/// Starts civ: settings, load notification, and the targets already
/// loaded. Call after the unload routine is set (so that an unload always
/// finds it) and
/// before the control device takes requests. Returns whether the
/// notification is registered.
pub fn start(registry_path: &UNICODE_STRING) -> bool {
    if nt::ffi::safe_boot() {
        // The way out of a boot that civ stops: Safe Mode, then civctl disable.
        log!("Safe Mode: civ checks nothing (civctl disable turns it off for good)");
        return false;
    }
    let hvci = nt::ci::hvci_enabled();
    HVCI.store(hvci == Some(true), Ordering::Relaxed);
    registry::load_settings(registry_path);
    let (level, targets, action, notes) =
        runtime::with_settings(|s| (s.level, s.targets().count(), s.action, s.notes));
    for note in notes.messages() {
        log!("settings: {note}");
    }
    log!(
        "started: VerifyDriverLevel {level:#x}, {targets} target name(s), action {}",
        if action == Action::Log {
            "log"
        } else {
            "bug check"
        }
    );
    let status = notify::register();
    if status < 0 {
        log!(
            "cannot register the load-image notification ({status:#x}): only drivers already loaded are hooked"
        );
    }
    hook_loaded();
    status >= 0
}

/// Where an image stands with the settings and the scope rules.
fn decide(path: &[u8], base: u64, signature_level: Option<u8>) -> Decision {
    let image = Image {
        path,
        base,
        signature_level,
    };
    runtime::with_settings(|s| scope::decide(s, &image, CIV_BASE.load(Ordering::Relaxed)))
}

/// The signature level as the debug output shows it.
struct Level(Option<u8>);

impl core::fmt::Display for Level {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(l) => write!(f, "signature level {l} ({})", signing_level_name(l)),
            None => f.write_str("signature level unknown"),
        }
    }
}

/// Hooks the matching targets that loaded before civ.
fn hook_loaded() {
    let result = modules::for_each_loaded(CIV_BASE.load(Ordering::Relaxed), |m| {
        let shown = core::str::from_utf8(m.file_name).unwrap_or("?");
        let how = match decide(m.file_name, m.base, None) {
            Decision::Verify(how) => how,
            Decision::Skip(scope::Skip::NotTarget) => return,
            Decision::Skip(why) => {
                log!("{shown}: not verified: {}", why.reason());
                return;
            }
        };
        if HVCI.load(Ordering::Relaxed) {
            log!(
                "{shown}: loaded before civ, and memory integrity is on (the hypervisor may keep its pages read-only): not hooked; start civ at boot to verify it"
            );
            return;
        }
        let origin = Origin {
            late: true,
            named: how == Match::Named,
        };
        let size = usize::try_from(m.size).unwrap_or(0);
        // A late image may be changing (its INIT freed, an unload): read a
        // copy, which MmCopyMemory makes without faulting on a gone page.
        let mut copy = Vec::new();
        if copy.try_reserve_exact(size).is_err() {
            log!("{shown}: no memory to read it: not hooked");
            return;
        }
        copy.resize(size, 0u8);
        let whole = match nt::ffi::mm_copy_memory(&mut copy, m.base) {
            Some(copied) => copied == size,
            // No MmCopyMemory (Wine): read in place once every page is
            // found mapped.
            None if modules::fully_mapped(m.base, m.size) => {
                // SAFETY: every page of the image is mapped (just checked).
                let live =
                    unsafe { core::slice::from_raw_parts(m.base as usize as *const u8, size) };
                copy.copy_from_slice(live);
                true
            }
            None => false,
        };
        if !whole {
            log!(
                "{shown}: loaded before civ and not fully mapped (discarded INIT?): not hooked; start civ earlier (boot start)"
            );
            return;
        }
        attach_image(m.file_name, &copy, core::ptr::null(), m.base, None, origin);
    });
    if let Err(e) = result {
        log!("cannot list the loaded modules ({e:?}): targets loaded before civ are not hooked");
    }
}

/// Longest file name kept from a notification's path (UTF-8 bytes).
const FILE_NAME: usize = 512;

/// A kernel image was mapped (load-image notification, PASSIVE_LEVEL).
///
/// # Safety
/// `name` is null or the notification's valid FullImageName, and `size`
/// bytes are mapped at `base`.
pub unsafe fn image_loaded(name: *const UNICODE_STRING, base: u64, size: u64, signature_level: u8) {
    // SAFETY: the kernel's FullImageName is valid during the notification.
    let units = unsafe { nt::units(name) };
    // Only the file name is matched and shown: taken from the end of the
    // path, whatever the path's length.
    let mut file = [0u8; FILE_NAME];
    let n = civ_engine::path::file_name_utf8(units, &mut file);
    let file = file.get(..n).unwrap_or(&[]);
    let how = match decide(file, base, Some(signature_level)) {
        Decision::Verify(how) => how,
        Decision::Skip(scope::Skip::NotTarget) => return,
        Decision::Skip(why) => {
            log!(
                "{}: not verified ({}): {}",
                core::str::from_utf8(file).unwrap_or("?"),
                Level(Some(signature_level)),
                why.reason()
            );
            return;
        }
    };
    let origin = Origin {
        late: false,
        named: how == Match::Named,
    };
    let shown = core::str::from_utf8(file).unwrap_or("?");
    let Ok(size32) = u32::try_from(size) else {
        log!("{shown}: no image to check (size {size:#x})");
        return;
    };
    // Every page the checks may read (the relocations and the DVRT too):
    // an unmapped one would be a fault no handler catches.
    if !modules::fully_mapped(base, size32) {
        log!("{shown}: not every page is resident at load: not checked, not hooked");
        return;
    }
    // SAFETY: the loader mapped `size` bytes at `base`, every page found
    // resident, and the target has not run yet: nothing writes the image
    // while this view lives (slot writes come after attach_image reads).
    let image = unsafe { core::slice::from_raw_parts(base as usize as *const u8, size as usize) };
    attach_image(file, image, name, base, Some(signature_level), origin);
}

/// Checks and hooks one target. `image` is the mapped image (or a copy of
/// it) loaded at `base`; `name` its UNICODE_STRING for a bug check (null
/// for a late image).
fn attach_image(
    file_name: &[u8],
    image: &[u8],
    name: *const UNICODE_STRING,
    base: u64,
    signature_level: Option<u8>,
    origin: Origin,
) {
    let shown = core::str::from_utf8(file_name).unwrap_or("?");
    let size = image.len();
    if base == 0 || size == 0 {
        log!("{shown}: no image to check (base {base:#x}, size {size:#x})");
        return;
    }
    let action = runtime::action();
    let mut plan = Plan::EMPTY;
    // SAFETY: `now` is always safe to call.
    let now = unsafe { time::now() };
    let inspection = attach::inspect(image, base, file_name, origin, action, now, &mut plan);
    let inspection = match inspection {
        Ok(i) => i,
        Err(InspectError::Pe(e)) => {
            log!("{shown}: not a readable image ({e}): not hooked");
            return;
        }
        Err(InspectError::TooManyTargets) => {
            log!("{shown}: civ already watches as many drivers as it can: not hooked");
            return;
        }
        // The load notification and the module list both saw it.
        Err(InspectError::AlreadyAttached(_)) => return,
    };
    if let Some(level) = signature_level {
        LOG.set_signature_level(inspection.target, level);
    }
    if let Some(bc) = inspection.bug_check {
        let name_ptr = SECTION_NAME.with(|n| {
            *n = bc.section_name;
            n.as_ptr() as u64
        });
        log!(
            "{shown}: image violation {} at {:#x}: bug check",
            bc.code,
            bc.arg3
        );
        // SAFETY: DV's arguments: the image name's UNICODE_STRING (valid
        // during the notification, null for a late image), the section
        // header or IAT address, and a NUL-terminated name in civ's data.
        unsafe {
            nt::bug_check(
                BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION,
                u64::from(bc.code.value()),
                name as usize as u64,
                bc.arg3,
                name_ptr,
            )
        };
    }
    if inspection.import_optimized {
        log!(
            "{shown}: import call optimization (import-control-transfer dynamic relocations): the kernel may bind its calls of hooked APIs directly, and civ does not see those; verify a build without /guard:retpoline or import call optimization"
        );
    }
    if let Some(e) = inspection.plan_error {
        log!("{shown}: IAT not hooked: {e}");
    }
    let report = attach::hook(inspection.target, &plan, &mut KernelSlots { base });
    log!(
        "{shown}: target {} load {} at {base:#x} size {size:#x}{}{}, {}: {} image finding(s), {} slot(s) hooked, {} held another routine, {} failed{}",
        inspection.target,
        inspection.load,
        if origin.late { " (late)" } else { "" },
        if origin.named { "" } else { " (by pattern)" },
        Level(signature_level),
        inspection.findings,
        report.hooked,
        report.conflicts,
        report.failed,
        if report.refused > 0 {
            ", not hooked: civ is stopping"
        } else {
            ""
        }
    );
}

/// Is this IOCTL code METHOD_BUFFERED (all of civ's are)? Only then are its
/// input and output one system buffer of max(input, output) bytes, as
/// [`buffered_ioctl`] needs: a shell checks before it touches a buffer.
pub fn is_buffered(code: u32) -> bool {
    code & 3 == civ_engine::protocol::METHOD_BUFFERED
}

/// Serves one METHOD_BUFFERED IOCTL, whose input and output share one
/// system buffer (both driver models hand civ that buffer). PASSIVE_LEVEL
/// (the WDM dispatch routine; the KMDF queue asks for it).
///
/// # Safety
/// `buffer` is null only if both lengths are 0; otherwise it is valid for
/// reads of `input_length` and writes of `output_length` bytes.
pub unsafe fn buffered_ioctl(
    code: u32,
    buffer: *mut u8,
    input_length: usize,
    output_length: usize,
) -> serve::Answer {
    if buffer.is_null() && (input_length > 0 || output_length > 0) {
        return serve::Answer {
            status: STATUS_INVALID_PARAMETER,
            bytes: 0,
        };
    }
    // The input is copied out first, because the reply is written into the
    // same buffer. Input longer than any request cannot be one: the engine
    // answers "invalid parameter" to the empty request it then sees.
    let take = if input_length > MAX_REQUEST_SIZE {
        0
    } else {
        input_length
    };
    let mut request = Vec::new();
    if request.try_reserve_exact(take).is_err() {
        return serve::Answer {
            status: nt::ffi::STATUS_INSUFFICIENT_RESOURCES as u32,
            bytes: 0,
        };
    }
    if take > 0 {
        // SAFETY: the caller's contract: `take` readable bytes.
        request.extend_from_slice(unsafe { core::slice::from_raw_parts(buffer, take) });
    }
    let output: &mut [u8] = if output_length == 0 {
        &mut []
    } else {
        // SAFETY: the caller's contract: `output_length` writable bytes,
        // no longer read as input (it was copied above).
        unsafe { core::slice::from_raw_parts_mut(buffer, output_length) }
    };
    if Kind::from_ioctl(code) == Some(Kind::GetStatus) {
        // The kernel never says when an image unloads: ask now.
        modules::mark_unloaded(CIV_BASE.load(Ordering::Relaxed), |gone| {
            LOG.mark_unloaded(gone)
        });
    }
    serve::handle(code, &request, output)
}

/// Stops civ, first thing in the unload routine. Returns whether civ may
/// really go (nothing of it is in any target); if not, every hook stays,
/// and the reference taken when civ was pinned keeps the image mapped.
pub fn stop() -> bool {
    let stop = runtime::begin_stop();
    notify::unregister();
    match stop {
        Stop::Unloadable => {
            log!("stopping: nothing was hooked");
            true
        }
        Stop::Pinned => {
            // The hooks stay; with nobody left to read civ's log, a
            // violation no longer stops the machine.
            runtime::set_action(Action::Log);
            log!(
                "stopping, but drivers call into civ: every hook stays (recording, no more bug checks), and civ stays in memory until reboot; it starts again only after a reboot"
            );
            false
        }
    }
}
