//! civ.sys: the kernel driver. A thin shell over `civ-engine`: it moves data
//! between the kernel and the engine, and decides nothing itself.
//!
//! - [`nt`]: the NT services both shells use (slot writes through an MDL
//!   alias, bug check, debug print, load-image notify, loaded modules,
//!   registry, time, the device's security), on `windows-sys`' Wdk
//!   bindings with our own declarations where those are wrong for kernel
//!   mode.
//! - [`civ`]: what civ does at start, on an image load, on an IOCTL and at
//!   unload, independent of the driver model.
//! - [`wdm`]: the portable WDM shell (DriverEntry, IRP dispatch), built on
//!   Linux with rust-lld and run under Wine.
//! - `kmdf` (feature `kmdf`): the KMDF shell, built on Windows with the WDK.
//!
//! The whole crate is Windows-only; on other hosts it is empty, so that the
//! workspace builds everywhere.
#![cfg_attr(windows, no_std)]

// Pool for the few allocations off the hook path (registry values, the
// module list, an IOCTL's request): the WDM build's allocator is `pool`,
// the KMDF build's wdk-alloc's.
#[cfg(windows)]
extern crate alloc;

#[cfg(windows)]
pub mod civ;
#[cfg(all(windows, feature = "kmdf"))]
pub mod kmdf;
#[cfg(windows)]
pub mod nt;
#[cfg(all(windows, not(feature = "kmdf")))]
mod pool;
#[cfg(all(windows, not(feature = "kmdf")))]
pub mod wdm;

/// A kernel driver cannot unwind: a panic (which civ's code is written
/// never to reach) stops the machine with a bug check naming civ.
#[cfg(all(windows, not(test), not(feature = "kmdf")))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    nt::bug_check_panic()
}

/// The MSVC toolchain expects this symbol in images that use floating
/// point; civ does not, but core's formatting code references it.
#[cfg(all(windows, not(feature = "kmdf")))]
#[unsafe(no_mangle)]
pub static _fltused: i32 = 0;
