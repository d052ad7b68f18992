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
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

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
    /// Called at PASSIVE_LEVEL before civ first puts a pointer to itself
    /// into a target (an IAT slot, or an answer of MmGetSystemRoutineAddress):
    /// no restore could take every such pointer back, so the driver keeps
    /// its image mapped until reboot (a reference on its driver object).
    pub pin: unsafe extern "system" fn(),
    /// Undoes a `pin` whose pinning lost the race (another thread pinned
    /// first, or civ began to unload): drops the reference it took.
    pub unpin: unsafe extern "system" fn(),
    /// Fills up to `max` return addresses of the current call stack into
    /// `frames`, starting at the call into the hooked API (civ's own frames
    /// left out), and returns how many; at a site's first hit, at any IRQL
    /// up to DISPATCH_LEVEL.
    pub capture_stack: unsafe extern "system" fn(frames: *mut u64, max: u32) -> u32,
}

static OPS: AtomicPtr<KernelOps> = AtomicPtr::new(core::ptr::null_mut());

/// Whether civ may still unload: a small state machine, because the first
/// hook and the unload routine can race.
#[derive(Debug)]
pub struct Lifetime(AtomicU32);

/// civ runs, nothing of it is in any target yet: it may still unload.
const RUNNING: u32 = 0;
/// civ's unload routine has begun: nothing may be hooked any more.
const STOPPING: u32 = 1;
/// A target holds a pointer into civ: civ stays until reboot.
const PINNED: u32 = 2;

impl Lifetime {
    /// Running, not pinned.
    pub const fn new() -> Self {
        Lifetime(AtomicU32::new(RUNNING))
    }

    /// Pins before a pointer to civ goes into a target. The first time,
    /// `hold` runs before the state says pinned (an unload that sees
    /// "pinned" finds the image already held), and `release` undoes it if
    /// the transition is lost. False when civ is stopping: write nothing.
    pub fn pin(&self, hold: impl FnOnce(), release: impl FnOnce()) -> bool {
        match self.0.load(Ordering::Acquire) {
            PINNED => return true,
            STOPPING => return false,
            _ => {}
        }
        hold();
        match self
            .0
            .compare_exchange(RUNNING, PINNED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => {
                release();
                state == PINNED
            }
        }
    }

    /// Is civ pinned?
    pub fn pinned(&self) -> bool {
        self.0.load(Ordering::Acquire) == PINNED
    }

    /// The unload routine begins: from now on nothing is pinned anew.
    pub fn begin_stop(&self) -> Stop {
        match self
            .0
            .compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire)
        {
            Err(PINNED) => Stop::Pinned,
            _ => Stop::Unloadable,
        }
    }
}

impl Default for Lifetime {
    fn default() -> Self {
        Self::new()
    }
}

static LIFE: Lifetime = Lifetime::new();

/// Pins civ in memory before it puts a pointer to itself into a target:
/// the first time, the driver's `pin` keeps the image mapped for good.
/// Returns false, and civ must write nothing, when civ is being unloaded.
pub fn pin() -> bool {
    let ops = OPS.load(Ordering::Acquire);
    // SAFETY: OPS is null or a `&'static KernelOps`.
    let ops = unsafe { ops.as_ref() };
    LIFE.pin(
        || {
            if let Some(ops) = ops {
                // SAFETY: the driver's pin callback, at PASSIVE_LEVEL (image
                // load notifications and MmGetSystemRoutineAddress run there).
                unsafe { (ops.pin)() };
            }
        },
        || {
            if let Some(ops) = ops {
                // SAFETY: undoing the pin callback just made.
                unsafe { (ops.unpin)() };
            }
        },
    )
}

/// Has civ put a pointer to itself into a target (so it stays until
/// reboot)?
pub fn pinned() -> bool {
    LIFE.pinned()
}

/// What an unload routine may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Nothing of civ is in any target, and nothing will be: civ may go.
    Unloadable,
    /// A target holds a pointer into civ: the unload routine must leave
    /// every hook in place; the pin's reference keeps the image mapped
    /// after it returns, until reboot.
    Pinned,
}

/// Called first in the unload routine: from now on nothing is hooked.
pub fn begin_stop() -> Stop {
    LIFE.begin_stop()
}

static ACTION: AtomicU32 = AtomicU32::new(Action::BugCheck as u32);

/// The kernel's own routine for each catalog row, looked up by name at
/// start ([`resolve_originals`]): a slot is hooked only if it holds it,
/// and every target imports the same export, so one table serves all.
pub(crate) static ORIGINALS: [AtomicU64; CATALOG_LEN] = [const { AtomicU64::new(0) }; CATALOG_LEN];

/// The settings in force: which images are targets, what a violation does.
static SETTINGS: SpinLock<Settings> = SpinLock::new(Settings::EMPTY);
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Changes the settings in force in place (at start, or from civctl):
/// targets loading from now on are matched against them, and the action
/// applies at once. `f` runs under a spin lock (DISPATCH_LEVEL in the
/// kernel): it may only compute.
pub fn update_settings(f: impl FnOnce(&mut Settings)) {
    let action = SETTINGS.with(|s| {
        f(s);
        s.action
    });
    set_action(action);
}

/// Puts a copy of `settings` in force (tests, tools).
pub fn set_settings(settings: &Settings) {
    update_settings(|s| *s = *settings);
}

/// Runs `f` with the settings in force (under the same lock: `f` may only
/// compute).
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

/// The kernel's routine recorded for a row, 0 if none.
pub fn original(index: usize) -> u64 {
    ORIGINALS
        .get(index)
        .map_or(0, |o| o.load(Ordering::Acquire))
}

/// Records the kernel's routine for a row.
pub fn set_original(index: usize, value: u64) {
    if let Some(slot) = ORIGINALS.get(index) {
        slot.store(value, Ordering::Release);
    }
}

/// Looks up every row's routine with `lookup` (MmGetSystemRoutineAddress,
/// at start); returns how many the kernel has.
pub fn resolve_originals(mut lookup: impl FnMut(&'static str) -> u64) -> usize {
    let mut found = 0;
    for (index, hook) in CATALOG.iter().enumerate() {
        let address = lookup(hook.name);
        set_original(index, address);
        found += usize::from(address != 0);
    }
    found
}

/// Forgets every original (tests).
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

/// Records a violation and, in bug-check mode, raises bug check 0xC4 with
/// DV's arguments. Returns if the call is to go on.
#[cold]
pub fn on_violation(index: usize, v: Violation) {
    let (target, offset, load) = LOG
        .target_of(v.caller)
        .unwrap_or((TARGET_UNKNOWN, v.caller, 0));
    let event = Event {
        counter: v.code.counter(),
        target,
        api: u8::try_from(index).unwrap_or(u8::MAX),
        offset,
        arg3: v.arg3,
        arg4: v.arg4,
        load,
    };
    let ops = OPS.load(Ordering::Acquire);
    // SAFETY: OPS is null or a `&'static KernelOps`.
    let ops = unsafe { ops.as_ref() };
    // Recorded first, so that the log is in the crash dump too; a new
    // site's call stack is taken now, while the caller's frames are live.
    let new_site = LOG.record_capturing(event, now(), |frames| match ops {
        // SAFETY: the driver's capture routine, given a buffer of
        // STACK_DEPTH slots, callable at this IRQL.
        Some(ops) => unsafe {
            (ops.capture_stack)(frames.as_mut_ptr(), frames.len() as u32) as usize
        },
        None => 0,
    });
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
            // Only when civ would call the same function the kernel gave,
            // and civ can stay in memory for as long as the caller keeps it.
            if found == original(index)
                && let Some(entry) = crate::stubs::entry(index)
                && pin()
            {
                return entry;
            }
            return found;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    use core::cell::Cell;

    #[test]
    fn the_first_pin_wins_over_a_later_unload() {
        let life = Lifetime::new();
        let held = Cell::new(0);
        let hold = || held.set(held.get() + 1);
        let release = || held.set(held.get() - 1);
        assert!(!life.pinned());
        assert!(life.pin(hold, release));
        assert!(life.pin(hold, release), "pinned stays pinned");
        assert_eq!(held.get(), 1, "the image is held once");
        assert!(life.pinned());
        assert_eq!(life.begin_stop(), Stop::Pinned);
        assert!(life.pinned(), "an unload cannot unpin");
    }

    #[test]
    fn the_image_is_held_before_an_unload_can_see_the_pin() {
        let life = Lifetime::new();
        assert!(life.pin(
            || assert!(!life.pinned(), "held before the state says pinned"),
            || panic!("nothing to release")
        ));
    }

    #[test]
    fn an_unload_that_began_refuses_every_later_hook() {
        let life = Lifetime::new();
        assert_eq!(life.begin_stop(), Stop::Unloadable);
        assert!(!life.pin(
            || panic!("nothing may be held while stopping"),
            || panic!("nothing to release")
        ));
        assert!(!life.pinned());
        assert_eq!(life.begin_stop(), Stop::Unloadable);
    }

    #[test]
    fn a_pin_that_loses_the_race_to_an_unload_releases_what_it_held() {
        let life = Lifetime::new();
        let held = Cell::new(0);
        // The unload begins between the hold and the transition.
        assert!(!life.pin(
            || {
                held.set(1);
                assert_eq!(life.begin_stop(), Stop::Unloadable);
            },
            || held.set(0)
        ));
        assert_eq!(held.get(), 0);
        assert!(!life.pinned());
    }
}
