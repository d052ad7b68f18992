//! What runs when a target driver calls a hooked API: the dispatch every
//! entry stub calls, the handlers, the table of original functions, and the
//! kernel interface the driver supplies.
//!
//! A clean call never gets here: the entry stub's fast path recognises a
//! certainly-clean argument and jumps to the original itself. Dispatch
//! sees the rest: it runs the row's predicate on the arguments in place and
//! loads the original. Neither takes a lock, allocates, or writes a shared
//! cache line on a clean call, so both are safe at any IRQL up to
//! DISPATCH_LEVEL; a clean hooked call costs under a nanosecond more than a
//! direct one (benches/runtime.rs). A violation
//! is recorded in [`LOG`] and then, by the action in force, either bug-checks
//! with DV's arguments or lets the call go on.

use crate::catalog::{CATALOG, CATALOG_LEN, Rule};
use crate::check::Violation;
use crate::code::BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION;
use crate::log::{Event, Log, TARGET_UNKNOWN};
use crate::settings::{Action, Settings};
use crate::sync::SpinLock;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The driver's log: 64 targets, 1024 unique sites, 1024 recent events.
pub type DriverLog = Log<64, 1024, 1024>;

/// The log every hook writes to.
pub static LOG: DriverLog = Log::new();

/// What the engine needs of the kernel at run time.
#[derive(Debug)]
#[repr(C)]
pub struct KernelOps {
    /// KeBugCheckEx. A real kernel never returns from it; a host that does
    /// (a test) gets the call let through, as in log mode.
    pub bug_check: unsafe extern "system" fn(u32, u64, u64, u64, u64),
    /// A timestamp for the log, in 100-ns units (KeQueryInterruptTime).
    pub now: unsafe extern "system" fn() -> u64,
    /// Called at the first hit of each violation site (any IRQL up to
    /// DISPATCH_LEVEL), in both actions, before any bug check: the driver
    /// prints it, so a debugger shows every site as it is found.
    pub report: unsafe extern "system" fn(&Event),
    /// Called once, at PASSIVE_LEVEL, when civ first answers a
    /// MmGetSystemRoutineAddress lookup with its own entry: a target now
    /// holds a pointer into civ that no IAT restore can take back, so the
    /// driver must stop allowing its own unload.
    pub pin: unsafe extern "system" fn(),
}

static OPS: AtomicPtr<KernelOps> = AtomicPtr::new(core::ptr::null_mut());
/// Threads inside dispatch or civ's routine lookup right now.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// A routine lookup was answered with civ's entry (see [`KernelOps::pin`]).
static PINNED: AtomicBool = AtomicBool::new(false);

/// Counts a thread in civ's slow path for as long as it lives.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Release);
    }
}

/// How many threads are inside civ's slow path (dispatch, routine lookup)
/// now: unload waits for 0 after restoring the slots.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}

/// Has civ handed a target a pointer to its own entry through
/// MmGetSystemRoutineAddress (so it must never unload)?
pub fn pinned() -> bool {
    PINNED.load(Ordering::Acquire)
}
static ACTION: AtomicU32 = AtomicU32::new(Action::BugCheck as u32);

/// The original function of each catalog row (0 until a target's IAT first
/// names it). Every target imports the same ntoskrnl export, so one table
/// serves all targets.
pub(crate) static ORIGINALS: [AtomicU64; CATALOG_LEN] = [const { AtomicU64::new(0) }; CATALOG_LEN];

/// The settings in force: which images are targets, what a violation does.
static SETTINGS: SpinLock<Settings> = SpinLock::new(Settings::EMPTY);
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Puts settings in force (at start, or from civctl): targets loading from
/// now on are matched against them, and the action applies at once.
pub fn set_settings(settings: &Settings) {
    SETTINGS.with(|s| *s = *settings);
    set_action(settings.action);
}

/// Runs `f` with the settings in force.
pub fn with_settings<R>(f: impl FnOnce(&Settings) -> R) -> R {
    SETTINGS.with(|s| f(s))
}

/// Notes when civ started (system time, 100-ns units since 1601).
pub fn set_started(time: u64) {
    STARTED.store(time, Ordering::Relaxed);
}

/// When civ started.
pub fn started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

/// Installs the kernel interface. Call once before any slot is hooked.
pub fn set_kernel_ops(ops: &'static KernelOps) {
    OPS.store(core::ptr::from_ref(ops).cast_mut(), Ordering::Release);
}

/// Sets what a violation does from now on.
pub fn set_action(action: Action) {
    ACTION.store(action as u32, Ordering::Relaxed);
}

/// The action in force.
pub fn action() -> Action {
    Action::from_value(ACTION.load(Ordering::Relaxed)).unwrap_or(Action::BugCheck)
}

/// The original function recorded for a row, 0 if none yet.
pub fn original(index: usize) -> u64 {
    ORIGINALS
        .get(index)
        .map_or(0, |o| o.load(Ordering::Acquire))
}

/// Records `value` as the original of a row if none is recorded yet.
/// Returns the original now in force: `value`, or the one recorded before
/// (which a caller compares to decide whether a slot can be hooked).
pub fn set_original(index: usize, value: u64) -> u64 {
    let Some(slot) = ORIGINALS.get(index) else {
        return 0;
    };
    match slot.compare_exchange(0, value, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => value,
        Err(existing) => existing,
    }
}

/// Forgets every original (when nothing is hooked any more).
pub fn clear_originals() {
    for o in &ORIGINALS {
        o.store(0, Ordering::Release);
    }
}

/// The kernel's timestamp (0 before the kernel interface is installed).
pub fn now() -> u64 {
    let ops = OPS.load(Ordering::Acquire);
    // SAFETY: OPS is null or a `&'static KernelOps` (set_kernel_ops).
    match unsafe { ops.as_ref() } {
        // SAFETY: the driver supplies a `now` callable at any IRQL.
        Some(ops) => unsafe { (ops.now)() },
        None => 0,
    }
}

/// Marks civ pinned, telling the driver the first time.
fn pin() {
    if PINNED.swap(true, Ordering::AcqRel) {
        return;
    }
    let ops = OPS.load(Ordering::Acquire);
    // SAFETY: OPS is null or a `&'static KernelOps`.
    if let Some(ops) = unsafe { ops.as_ref() } {
        // SAFETY: the driver's pin callback, at PASSIVE_LEVEL (where
        // MmGetSystemRoutineAddress is called).
        unsafe { (ops.pin)() };
    }
}

/// Records a violation and, in bug-check mode, raises bug check 0xC4 with
/// DV's arguments. Returns if the call is to go on.
#[cold]
pub fn on_violation(index: usize, v: Violation) {
    let (target, offset) = LOG
        .target_of(v.caller)
        .unwrap_or((TARGET_UNKNOWN, v.caller));
    let event = Event {
        counter: v.code.counter(),
        target,
        api: u8::try_from(index).unwrap_or(u8::MAX),
        offset,
        arg3: v.arg3,
        arg4: v.arg4,
    };
    // Recorded first, so that the log is in the crash dump too.
    let new_site = LOG.record(event, now());
    let ops = OPS.load(Ordering::Acquire);
    // SAFETY: OPS is null or a `&'static KernelOps`.
    let ops = unsafe { ops.as_ref() };
    if new_site && let Some(ops) = ops {
        // SAFETY: the driver's report callback, callable at this IRQL.
        unsafe { (ops.report)(&event) };
    }
    if action() == Action::BugCheck
        && let Some(ops) = ops
    {
        let [a1, a2, a3, a4] = v.bugcheck_args();
        // SAFETY: KeBugCheckEx with DV's code and arguments.
        unsafe { (ops.bug_check)(BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION, a1, a2, a3, a4) };
    }
}

/// Returned to a stub when a row has no original (never in practice: a slot
/// is hooked only after its original is recorded): a function that returns
/// 0, which every catalog API's caller reads as failure (NULL).
extern "win64" fn no_original() -> u64 {
    0
}

/// Called by every entry stub (see [`crate::stubs`]): judges the call and
/// returns the address the stub jumps to.
///
/// # Safety
/// `frame` points to the stub caller's return address, followed by the
/// four homed register arguments and the caller's stack arguments: at
/// least `max(arity, 4)` readable slots after it, as every caller of a
/// function of that arity reserves.
pub(crate) unsafe extern "win64" fn dispatch(index: usize, frame: *const u64) -> u64 {
    let _in_flight = InFlight::enter();
    let Some(hook) = CATALOG.get(index) else {
        return no_original as *const () as usize as u64;
    };
    // SAFETY: see the function's contract; the slots are plain u64 values
    // on the stack, aligned to 8.
    let (caller, args) = unsafe {
        (
            *frame,
            core::slice::from_raw_parts(frame.add(1), usize::from(hook.arity.min(8))),
        )
    };
    if let Rule::RoutineLookup = hook.rule {
        return routine_lookup as *const () as usize as u64;
    }
    if let Some(v) = hook.check(args, caller) {
        on_violation(index, v);
    }
    match original(index) {
        0 => no_original as *const () as usize as u64,
        f => f,
    }
}

/// UNICODE_STRING.
#[repr(C)]
pub struct UnicodeString {
    /// Length in bytes, without a terminator.
    pub length: u16,
    /// Buffer size in bytes.
    pub maximum_length: u16,
    /// UTF-16 characters.
    pub buffer: *const u16,
}

/// Does a UNICODE_STRING spell this ASCII name exactly?
///
/// # Safety
/// `name` is null or a valid UNICODE_STRING whose buffer holds `length`
/// bytes, as MmGetSystemRoutineAddress requires of its caller.
unsafe fn unicode_eq(name: *const UnicodeString, ascii: &str) -> bool {
    // SAFETY: the function's contract.
    let Some(s) = (unsafe { name.as_ref() }) else {
        return false;
    };
    let units = usize::from(s.length / 2);
    if units != ascii.len() || s.buffer.is_null() {
        return false;
    }
    // SAFETY: the buffer holds `length` bytes (contract), `units` u16s.
    let chars = unsafe { core::slice::from_raw_parts(s.buffer, units) };
    chars
        .iter()
        .zip(ascii.bytes())
        .all(|(&c, a)| c == u16::from(a))
}

/// civ's MmGetSystemRoutineAddress, reached through its entry stub: asks
/// the real one, and answers a lookup of a checked API with civ's entry, so
/// that drivers resolving their allocator at run time are checked too.
///
/// # Safety
/// As MmGetSystemRoutineAddress: `name` is a valid UNICODE_STRING.
unsafe extern "win64" fn routine_lookup(name: *const UnicodeString) -> u64 {
    let _in_flight = InFlight::enter();
    let lookup_index = CATALOG
        .iter()
        .position(|h| matches!(h.rule, Rule::RoutineLookup));
    let real = lookup_index.map_or(0, original);
    if real == 0 {
        return 0;
    }
    // SAFETY: `real` is the recorded MmGetSystemRoutineAddress, which has
    // this signature.
    let real: unsafe extern "win64" fn(*const UnicodeString) -> u64 =
        unsafe { core::mem::transmute(real as usize) };
    // SAFETY: the caller's own argument, passed on unchanged.
    let found = unsafe { real(name) };
    if found == 0 {
        return 0;
    }
    for (index, hook) in CATALOG.iter().enumerate() {
        // SAFETY: `name` was valid for the real function, so for us too.
        if hook.code().is_some() && unsafe { unicode_eq(name, hook.name) } {
            // Only when civ would call the same function the kernel gave.
            if set_original(index, found) == found
                && let Some(entry) = crate::stubs::entry(index)
            {
                pin();
                return entry;
            }
            return found;
        }
    }
    found
}
