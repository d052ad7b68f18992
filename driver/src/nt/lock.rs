//! The kernel's spin lock for the engine's short critical sections
//! (`civ_engine::sync::SpinLock`): KeAcquireSpinLockRaiseToDpc raises to
//! DISPATCH_LEVEL while the lock is held, so the holder can be neither
//! preempted nor suspended. A civctl thread suspended while it held a lock
//! that every image load also takes would otherwise hang all driver loading.

use civ_engine::sync::LockOps;

// windows-sys does not declare these two; ntoskrnl.exe exports both on
// x64 (and Wine's does).
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn KeAcquireSpinLockRaiseToDpc(lock: *mut usize) -> u8;
    fn KeReleaseSpinLock(lock: *mut usize, irql: u8);
}

static OPS: LockOps = LockOps {
    acquire: KeAcquireSpinLockRaiseToDpc,
    release: KeReleaseSpinLock,
};

/// Hands the engine the kernel's spin lock (first thing at start, before
/// any engine lock is taken).
pub fn init() {
    civ_engine::sync::set_lock_ops(&OPS);
}
