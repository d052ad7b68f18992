//! The call stack of a violation, for the log: RtlCaptureStackBackTrace
//! (IRQL <= DISPATCH_LEVEL; it stops where it cannot walk without a page
//! fault) from inside civ, with civ's own frames (the capture, the
//! handler, dispatch, the entry stub) left out, so the first frame is the
//! return address of the target's call of the hooked API. The walk reads
//! every image's unwind data: civ's entry stubs have theirs, so it goes on
//! through the target's code and beyond.

use super::ffi::{current_irql, rtl_capture_stack_back_trace};
use core::sync::atomic::{AtomicU64, Ordering};
use windows_sys::Wdk::System::SystemServices::IoGetStackLimits;

/// Stack a walk or a debug print may use: below this much room left on
/// the target's stack, a violation is recorded with neither.
const ROOM_NEEDED: usize = 8 * 1024;
/// DISPATCH_LEVEL: RtlCaptureStackBackTrace and DbgPrintEx are documented up
/// to it (a pool call above it is the target's bug anyway).
const DISPATCH_LEVEL: u8 = 2;

/// May civ walk the stack or print now, on the stack of the driver it
/// checks? Only at DISPATCH_LEVEL or below, on the thread's own stack (not
/// a DPC stack, whose limits civ cannot see), with room to spare.
pub fn may_walk() -> bool {
    if current_irql().is_some_and(|irql| irql > DISPATCH_LEVEL) {
        return false;
    }
    let (mut low, mut high) = (0usize, 0usize);
    // SAFETY: two writable locals; callable at IRQL <= DISPATCH_LEVEL.
    unsafe { IoGetStackLimits(&mut low, &mut high) };
    let here = core::ptr::addr_of!(low) as usize;
    (low..high).contains(&here) && here - low >= ROOM_NEEDED
}

/// civ's own image, [start, end): frames in it are left out.
static CIV_START: AtomicU64 = AtomicU64::new(0);
static CIV_END: AtomicU64 = AtomicU64::new(0);

/// Return addresses walked before civ's are left out: the capture,
/// on_violation, dispatch and the stub, with room for inlining changes.
const WALK: usize = 24;

/// Notes where civ itself is loaded (DriverEntry).
pub fn init(start: u64, size: u64) {
    CIV_START.store(start, Ordering::Relaxed);
    CIV_END.store(start.saturating_add(size), Ordering::Relaxed);
}

/// The engine's `capture_stack`: up to `max` return addresses into
/// `frames`, from the first one outside civ; returns how many.
///
/// # Safety
/// `frames` is valid for `max` writes.
pub unsafe extern "system" fn capture(frames: *mut u64, max: u32) -> u32 {
    if !may_walk() {
        return 0;
    }
    let mut walked = [0usize; WALK];
    let n = rtl_capture_stack_back_trace(&mut walked);
    let (start, end) = (
        CIV_START.load(Ordering::Relaxed),
        CIV_END.load(Ordering::Relaxed),
    );
    let mut kept = 0u32;
    for &address in walked
        .get(..n)
        .unwrap_or(&[])
        .iter()
        .skip_while(|&&a| (start..end).contains(&(a as u64)))
        .take(max as usize)
    {
        // SAFETY: the caller's contract: `max` slots, `kept` < `max`.
        unsafe { frames.add(kept as usize).write(address as u64) };
        kept += 1;
    }
    kept
}
