//! The atomics the engine's shared state is built on: `core`'s normally,
//! loom's under `--cfg loom`, so that the concurrency of the violation log
//! can be model-checked. Loom's atomics cannot be built in const context,
//! so the two macros here give `const fn` and `[const { .. }; N]` normally
//! and their run-time equivalents under loom.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Defines a constructor that is `const` except under loom.
macro_rules! ctor {
    ($(#[$m:meta])* $v:vis fn $name:ident() -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$m])* $v const fn $name() -> $ret $body
        #[cfg(loom)]
        $(#[$m])* $v fn $name() -> $ret $body
    };
}
pub(crate) use ctor;

/// `[value; N]` for non-Copy values: in const context normally, element by
/// element under loom.
#[cfg(not(loom))]
macro_rules! array {
    ($e:expr; $n:expr) => {
        [const { $e }; $n]
    };
}
#[cfg(loom)]
macro_rules! array {
    ($e:expr; $n:expr) => {
        core::array::from_fn(|_| $e)
    };
}
pub(crate) use array;

/// How the kernel takes and drops a spin lock: the driver installs
/// KeAcquireSpinLockRaiseToDpc / KeReleaseSpinLock here, so that a holder
/// runs at DISPATCH_LEVEL and can be neither preempted nor suspended (a
/// civctl thread suspended inside a lock would otherwise stall every image
/// load that needs the same lock).
#[derive(Debug)]
#[repr(C)]
pub struct LockOps {
    /// Takes the lock word, returns the IRQL to go back to.
    pub acquire: unsafe extern "system" fn(*mut usize) -> u8,
    /// Drops the lock word, back to the IRQL `acquire` returned.
    pub release: unsafe extern "system" fn(*mut usize, u8),
}

#[cfg(not(loom))]
static LOCK_OPS: core::sync::atomic::AtomicPtr<LockOps> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Installs the kernel's spin lock routines. Call once, before any
/// [`SpinLock`] is taken (the driver does it first thing in DriverEntry);
/// without them (host tests) a lock spins on an atomic instead.
#[cfg(not(loom))]
pub fn set_lock_ops(ops: &'static LockOps) {
    LOCK_OPS.store(core::ptr::from_ref(ops).cast_mut(), Ordering::Release);
}

/// A spin lock for short sections that never run on a hook's path (the
/// settings in force, a bug check's section name). In the kernel it is a
/// KSPIN_LOCK taken with [`LockOps`], so the code inside runs at
/// DISPATCH_LEVEL: it may touch only non-paged memory and call only what
/// DISPATCH_LEVEL allows. On a host it spins on the same word.
#[cfg(not(loom))]
pub struct SpinLock<T> {
    /// The KSPIN_LOCK: 0 free, bit 0 held.
    word: core::cell::UnsafeCell<usize>,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `word` (see `with`).
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for SpinLock<T> {}

#[cfg(not(loom))]
impl<T> SpinLock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        SpinLock {
            word: core::cell::UnsafeCell::new(0),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` with the value, holding the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let ops = LOCK_OPS.load(Ordering::Acquire);
        // SAFETY: null or the `&'static LockOps` given to set_lock_ops.
        match unsafe { ops.as_ref() } {
            Some(ops) => {
                // SAFETY: the word is a KSPIN_LOCK that only these two
                // routines touch while ops are installed.
                let irql = unsafe { (ops.acquire)(self.word.get()) };
                // SAFETY: the lock is held until `release` below.
                let r = f(unsafe { &mut *self.value.get() });
                // SAFETY: releasing what `acquire` took, at its IRQL.
                unsafe { (ops.release)(self.word.get(), irql) };
                r
            }
            None => {
                // SAFETY: the word is a valid, aligned usize for the lock's
                // life, accessed only atomically while no ops are installed.
                let word = unsafe { core::sync::atomic::AtomicUsize::from_ptr(self.word.get()) };
                while word
                    .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    core::hint::spin_loop();
                }
                // SAFETY: the lock is held: no other `with` runs until it
                // is released below, so this is the only reference.
                let r = f(unsafe { &mut *self.value.get() });
                word.store(0, Ordering::Release);
                r
            }
        }
    }
}
