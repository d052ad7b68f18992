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
