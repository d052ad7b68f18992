//! Timestamps for the log: system time in 100-ns units since 1601, from
//! KeQuerySystemTimePrecise where the kernel has it (Windows 8+), else
//! KeQuerySystemTime (exported by Wine; a macro in the x64 WDK).

use super::ffi::KeQuerySystemTime;
use core::sync::atomic::{AtomicUsize, Ordering};

static QUERY: AtomicUsize = AtomicUsize::new(0);

/// Resolves the time routine (PASSIVE_LEVEL, at start).
pub fn init() {
    let f = match super::routine(crate::utf16!("KeQuerySystemTimePrecise")) {
        0 => super::routine(crate::utf16!("KeQuerySystemTime")),
        f => f,
    };
    QUERY.store(f, Ordering::Release);
}

/// The system time, or 0 if no routine was found. Any IRQL.
///
/// # Safety
/// Always safe to call; `unsafe extern` only to fit the engine's
/// kernel interface.
pub unsafe extern "system" fn now() -> u64 {
    let f = QUERY.load(Ordering::Acquire);
    if f == 0 {
        return 0;
    }
    // SAFETY: `f` was resolved by name to a routine with this signature.
    let query: KeQuerySystemTime = unsafe { core::mem::transmute::<usize, KeQuerySystemTime>(f) };
    let mut t: i64 = 0;
    // SAFETY: `t` is a valid LARGE_INTEGER to write.
    unsafe { query(&mut t) };
    t as u64
}
