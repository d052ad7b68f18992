//! What civ.sys does, whatever the driver model: start, react to an image
//! load, answer an IOCTL, stop. Each step hands the kernel's data to the
//! engine and carries out what the engine decides.

use crate::log;
use crate::nt::{self, modules, notify, patch::KernelSlots, registry, time};
use civ_engine::attach::{self, InspectError};
use civ_engine::catalog::CATALOG;
use civ_engine::code::BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION;
use civ_engine::log::Event;
use civ_engine::protocol::{MAX_REQUEST_SIZE, STATUS_INVALID_PARAMETER};
use civ_engine::runtime::{self, KernelOps, LOG};
use civ_engine::serve;
use civ_engine::settings::Action;
use civ_engine::sync::SpinLock;
use core::sync::atomic::{AtomicPtr, Ordering};
use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Win32::Foundation::UNICODE_STRING;

static OPS: KernelOps = KernelOps {
    bug_check: nt::bug_check,
    now: time::now,
    report,
    pin,
};

/// The first hit of a violation site, printed as it happens (any IRQL up
/// to DISPATCH_LEVEL: DbgPrintEx and the log's atomics only).
unsafe extern "system" fn report(e: &Event) {
    let api = CATALOG.get(usize::from(e.api)).map_or("?", |h| h.name);
    let code = e.counter.tag();
    match LOG.targets().find(|t| t.index == e.target) {
        Some(t) => log!(
            "violation {code} {api} from {}+{:#x}: arg3 {:#x}, arg4 {:#x}",
            core::str::from_utf8(t.name_bytes()).unwrap_or("?"),
            e.offset,
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

/// This driver's object, to withdraw its unload routine when civ is pinned.
static DRIVER: AtomicPtr<DRIVER_OBJECT> = AtomicPtr::new(core::ptr::null_mut());

/// Remembers the driver object (DriverEntry, both shells).
pub fn set_driver_object(driver: *mut DRIVER_OBJECT) {
    DRIVER.store(driver, Ordering::Release);
}

/// A target holds a pointer to one of civ's entries (from
/// MmGetSystemRoutineAddress): civ must never unload now, so its unload
/// routine is withdrawn and `sc stop` / `net stop` are refused.
unsafe extern "system" fn pin() {
    let driver = DRIVER.load(Ordering::Acquire);
    // SAFETY: our own driver object, valid while the driver is loaded; the
    // I/O manager reads DriverUnload only when asked to unload.
    if let Some(d) = unsafe { driver.as_mut() } {
        d.DriverUnload = None;
    }
    log!(
        "a driver resolved a hooked API through MmGetSystemRoutineAddress and holds civ's entry: civ can no longer unload (reboot to remove it)"
    );
}

/// Signature levels of Microsoft's own images (Microsoft, Windows,
/// Windows TCB): never hooked, as DV leaves them out of `*` and
/// PatchGuard watches some of them.
const MICROSOFT_SIGNED: [u8; 3] = [8, 12, 14];

/// The section name a 0x2003–0x2005 bug check points at: it must stay
/// valid after the loader's view of the image is gone.
static SECTION_NAME: SpinLock<[u8; 9]> = SpinLock::new([0; 9]);

/// Looks up the kernel routines civ resolves by name and installs the
/// engine's kernel interface. First thing in DriverEntry, before any log.
pub fn prepare() {
    nt::ffi::resolve();
    time::init();
    nt::patch::init();
    runtime::set_kernel_ops(&OPS);
    // SAFETY: `now` is always safe to call.
    runtime::set_started(unsafe { time::now() });
}

/// Starts civ: settings, load notification, and the targets already
/// loaded. Returns whether the notification is registered.
pub fn start(registry_path: &UNICODE_STRING) -> bool {
    let settings =
        registry::read_settings(registry_path).unwrap_or(civ_engine::settings::Settings::EMPTY);
    for note in settings.notes.messages() {
        log!("settings: {note}");
    }
    runtime::set_settings(&settings);
    log!(
        "started: VerifyDriverLevel {:#x}, {} target name(s), action {}",
        settings.level,
        settings.targets().count(),
        if settings.action == Action::Log {
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

/// Hooks the matching targets that loaded before civ.
fn hook_loaded() {
    let result = modules::for_each_loaded(|m| {
        if !runtime::with_settings(|s| s.matches(m.path)) {
            return;
        }
        if !modules::fully_mapped(m.base, m.size) {
            log!(
                "{}: loaded before civ and not fully mapped (discarded INIT?): not hooked; start civ earlier (boot start)",
                core::str::from_utf8(m.file_name).unwrap_or("?")
            );
            return;
        }
        let mut name = [0u8; 256];
        let n = m.path.len().min(name.len());
        for (d, s) in name.iter_mut().zip(m.path) {
            *d = *s;
        }
        attach_image(
            name.get(..n).unwrap_or(&[]),
            core::ptr::null(),
            m.base,
            u64::from(m.size),
            true,
        );
    });
    if let Err(e) = result {
        log!("cannot list the loaded modules ({e:?}): targets loaded before civ are not hooked");
    }
}

/// A kernel image was mapped (load-image notification).
///
/// # Safety
/// `name` is null or the notification's valid FullImageName, and `size`
/// bytes are mapped at `base`.
pub unsafe fn image_loaded(
    name: *const UNICODE_STRING,
    base: u64,
    size: u64,
    signature_level: u8,
    late: bool,
) {
    // SAFETY: the kernel's FullImageName is valid during the notification.
    let units = unsafe { nt::units(name) };
    let mut path = [0u8; 512];
    let n = nt::utf16_to_utf8(units, &mut path);
    let path = path.get(..n).unwrap_or(&[]);
    if !runtime::with_settings(|s| s.matches(path)) {
        return;
    }
    if MICROSOFT_SIGNED.contains(&signature_level) {
        log!(
            "{}: signed by Microsoft, not hooked",
            core::str::from_utf8(path).unwrap_or("?")
        );
        return;
    }
    attach_image(path, name, base, size, late);
}

fn attach_image(path: &[u8], name: *const UNICODE_STRING, base: u64, size: u64, late: bool) {
    let file_name = path
        .rsplit(|&b| b == b'\\' || b == b'/')
        .next()
        .unwrap_or(path);
    let shown = core::str::from_utf8(file_name).unwrap_or("?");
    if base == 0 || size == 0 || size > u64::from(u32::MAX) {
        log!("{shown}: no image to check (base {base:#x}, size {size:#x})");
        return;
    }
    let action = runtime::action();
    let inspection = {
        // SAFETY: the loader mapped `size` bytes at `base` (or every page was
        // found mapped, for a late image), and nobody writes the image
        // while this view lives: slot writes happen after it is dropped.
        let image =
            unsafe { core::slice::from_raw_parts(base as usize as *const u8, size as usize) };
        // SAFETY: `now` is always safe to call.
        attach::inspect(image, base, file_name, late, action, unsafe { time::now() })
    };
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
    };
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
    if let Some(e) = inspection.plan_error {
        log!("{shown}: IAT not hooked: {e}");
    }
    let report = attach::hook(
        inspection.target,
        inspection.plan,
        &mut KernelSlots { base },
    );
    log!(
        "{shown}: target {} at {base:#x} size {size:#x}{}: {} image finding(s), {} slot(s) hooked, {} conflict(s), {} failed",
        inspection.target,
        if late { " (late)" } else { "" },
        inspection.findings,
        report.hooked,
        report.conflicts,
        report.failed
    );
}

/// IOCTL input is copied out of the shared system buffer first, because
/// the reply is written into that same buffer.
static REQUEST: SpinLock<[u8; MAX_REQUEST_SIZE]> = SpinLock::new([0; MAX_REQUEST_SIZE]);

/// Serves one METHOD_BUFFERED IOCTL, whose input and output share one
/// system buffer (both driver models hand civ that buffer).
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
    REQUEST.with(|request| {
        let take = input_length.min(MAX_REQUEST_SIZE);
        if take > 0
            && let Some(dst) = request.get_mut(..take)
        {
            // SAFETY: the caller's contract: `take` readable bytes.
            dst.copy_from_slice(unsafe { core::slice::from_raw_parts(buffer, take) });
        }
        let output: &mut [u8] = if output_length == 0 {
            &mut []
        } else {
            // SAFETY: the caller's contract: `output_length` writable bytes,
            // no longer read as input (it was copied above).
            unsafe { core::slice::from_raw_parts_mut(buffer, output_length) }
        };
        // Input longer than any request cannot be one: the engine answers
        // "invalid parameter" to the empty request it then sees.
        let input = if input_length > MAX_REQUEST_SIZE {
            &[]
        } else {
            request.get(..take).unwrap_or(&[])
        };
        serve::handle(code, input, output)
    })
}

/// Stops civ: no more notifications, every slot put back. Returns how many
/// slots could not be restored (their targets keep calling into civ, so
/// the caller must not let civ unload if any).
pub fn stop() -> u32 {
    notify::unregister();
    let (restored, failed) = attach::unhook_all(|target| {
        LOG.targets()
            .find(|t| t.index == target)
            .map(|t| KernelSlots { base: t.base })
    });
    // No new call enters civ now; let the ones inside finish: those in the
    // slow path are counted, and a grace period covers the few instructions
    // between a stub's entry and its jump.
    let mut waits = 0;
    while runtime::in_flight() > 0 && waits < 500 {
        nt::sleep_ms(10);
        waits += 1;
    }
    nt::sleep_ms(100);
    log!("stopping: {restored} slot(s) restored, {failed} not");
    failed
}
