//! The call stack of a violation, for the log: RtlCaptureStackBackTrace
//! (IRQL <= DISPATCH_LEVEL; it stops where it cannot walk without a page
//! fault) from inside civ, with civ's own frames (the capture, the
//! handler, dispatch, the entry stub) left out, so the first frame is the
//! return address of the target's call of the hooked API. The walk reads
//! every image's unwind data: civ's entry stubs have theirs, so it goes on
//! through the target's code and beyond.

use super::ffi::rtl_capture_stack_back_trace;
use core::sync::atomic::{AtomicU64, Ordering};

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
