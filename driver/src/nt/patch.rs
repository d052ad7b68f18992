//! Writing one pointer into a target's IAT, which the loader has made
//! read-only: through a writable alias of the page (an MDL mapped with
//! MdlMappingNoExecute), as SKREAM does. Where the host cannot map an MDL
//! (Wine returns NULL from MmMapLockedPagesSpecifyCache, and runs drivers in
//! a user process), the page's protection is lifted for the write with
//! ZwProtectVirtualMemory instead, if the host exports it.
//!
//! MmProbeAndLockPages reports failure by raising, so it runs inside an
//! exception guard ([`super::guard`]): a page gone between the validity
//! check and the probe, or a shortage, comes back as a status and the slot
//! is left alone. The planner refuses IATs in pageable sections, so the
//! pages written are never trimmed and re-read without the write (only a
//! target that makes its whole image pageable, which civ cannot see, could
//! lose a hook that way: its calls then reach the kernel unchecked, nothing
//! worse).

use super::ffi::ZwProtectVirtualMemory;
use super::guard;
use civ_engine::check::mdl::{MDL_MAPPING_NO_EXECUTE, NORMAL_PAGE_PRIORITY};
use civ_engine::iat::SlotWriter;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};
use windows_sys::Wdk::System::SystemServices::{
    IoAllocateMdl, IoFreeMdl, MmCached, MmIsAddressValid, MmMapLockedPagesSpecifyCache,
    MmProbeAndLockPages, MmUnlockPages, MmUnmapLockedPages,
};

/// KernelMode.
const KERNEL_MODE: i8 = 0;
/// IoReadAccess: the pages are only locked, not written, through the
/// original (read-only) mapping, so a write probe, which would raise on a
/// read-only page with no SEH in Rust to catch it, is not needed; the
/// alias mapped from the MDL is writable on its own.
const IO_READ_ACCESS: i32 = 0;
/// PAGE_READWRITE.
const PAGE_READWRITE: u32 = 0x04;
/// The end of the lower (user) half of the x64 address space.
const USER_HALF_END: u64 = 0x0000_8000_0000_0000;
/// NtCurrentProcess().
const CURRENT_PROCESS: isize = -1;

static PROTECT: AtomicUsize = AtomicUsize::new(0);

/// Resolves the fallback (PASSIVE_LEVEL, at start).
pub fn init() {
    PROTECT.store(
        super::routine(crate::utf16!("ZwProtectVirtualMemory")),
        Ordering::Release,
    );
}

/// Why a slot could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The address is not mapped (the image is gone).
    NotMapped,
    /// No MDL could be allocated.
    NoMdl,
    /// MmProbeAndLockPages raised this exception.
    Raised(i32),
    /// Neither an alias nor a protection change was possible.
    NoWay,
}

/// Writes the slots of one target image, loaded at `base`.
pub struct KernelSlots {
    /// The image base.
    pub base: u64,
}

fn valid(address: u64) -> bool {
    // SAFETY: MmIsAddressValid only inspects page tables; any address is
    // a valid argument.
    unsafe { MmIsAddressValid(address as usize as *const c_void) }
}

/// Writes through an MDL alias; `Ok(false)` when the host could not map one.
///
/// # Safety
/// `address` is a valid, 8-byte aligned kernel address in a resident image.
unsafe fn write_through_alias(address: u64, value: u64) -> Result<bool, WriteError> {
    let va = address as usize as *const c_void;
    // SAFETY: an MDL describing 8 bytes at a valid address; no IRP.
    let mdl = unsafe { IoAllocateMdl(va, 8, false, false, core::ptr::null_mut()) };
    if mdl.is_null() {
        return Err(WriteError::NoMdl);
    }
    // SAFETY: MmProbeAndLockPages takes (MDL, KPROCESSOR_MODE,
    // LOCK_OPERATION), here a fresh MDL, KernelMode and IoReadAccess; the
    // guard turns the exception it raises on failure into a status.
    let locked = unsafe {
        guard::call3(
            MmProbeAndLockPages as *const c_void,
            mdl as usize,
            KERNEL_MODE as usize,
            IO_READ_ACCESS as usize,
        )
    };
    if let Err(code) = locked {
        // SAFETY: the MDL allocated above, never locked.
        unsafe { IoFreeMdl(mdl) };
        return Err(WriteError::Raised(code));
    }
    // SAFETY: the MDL's pages are locked; the alias is NX, as HVCI wants.
    let alias = unsafe {
        MmMapLockedPagesSpecifyCache(
            mdl,
            KERNEL_MODE,
            MmCached,
            core::ptr::null(),
            0,
            NORMAL_PAGE_PRIORITY | MDL_MAPPING_NO_EXECUTE,
        )
    };
    let mapped = !alias.is_null();
    if mapped {
        // SAFETY: the returned address is the slot's alias (it includes the
        // MDL's byte offset), writable; the slot is 8-byte aligned, so the
        // store is one atomic write that other CPUs see whole.
        unsafe {
            core::ptr::write_volatile(alias.cast::<u64>(), value);
            MmUnmapLockedPages(alias, mdl);
        }
    }
    // SAFETY: undo the lock and free the MDL allocated above.
    unsafe {
        MmUnlockPages(mdl);
        IoFreeMdl(mdl);
    }
    Ok(mapped)
}

/// Writes by lifting the page's protection for the moment of the write.
///
/// # Safety
/// `address` is a valid, 8-byte aligned address of the current process.
unsafe fn write_through_protect(address: u64, value: u64) -> Result<(), WriteError> {
    let f = PROTECT.load(Ordering::Acquire);
    // Only a driver loaded into a user address space (Wine's) takes this
    // way; a real kernel image lives in the upper half, where a protection
    // change of the current process could only fail or do harm.
    if f == 0 || address >= USER_HALF_END {
        return Err(WriteError::NoWay);
    }
    // SAFETY: resolved by name to ZwProtectVirtualMemory.
    let protect: ZwProtectVirtualMemory =
        unsafe { core::mem::transmute::<usize, ZwProtectVirtualMemory>(f) };
    let mut base = address as usize as *mut c_void;
    let mut size = 8usize;
    let mut old = 0u32;
    // SAFETY: base/size/old are valid locals; the process handle is the
    // current process's pseudo-handle.
    let status = unsafe {
        protect(
            CURRENT_PROCESS as _,
            &mut base,
            &mut size,
            PAGE_READWRITE,
            &mut old,
        )
    };
    if status < 0 {
        return Err(WriteError::NoWay);
    }
    // SAFETY: the page is writable now; the slot is aligned.
    unsafe { core::ptr::write_volatile(address as usize as *mut u64, value) };
    let (mut base, mut size, mut ignored) = (address as usize as *mut c_void, 8usize, 0u32);
    // SAFETY: as above, restoring the protection found.
    unsafe {
        protect(
            CURRENT_PROCESS as _,
            &mut base,
            &mut size,
            old,
            &mut ignored,
        )
    };
    Ok(())
}

impl SlotWriter for KernelSlots {
    type Error = WriteError;

    fn write(&mut self, rva: u32, value: u64) -> Result<(), WriteError> {
        let address = self.base.wrapping_add(u64::from(rva));
        if address & 7 != 0 || !valid(address) {
            return Err(WriteError::NotMapped);
        }
        // SAFETY: checked valid and aligned above; it is a slot of a
        // loaded image's IAT.
        if unsafe { write_through_alias(address, value)? } {
            return Ok(());
        }
        // SAFETY: as above.
        unsafe { write_through_protect(address, value) }
    }

    fn read(&mut self, rva: u32) -> Option<u64> {
        let address = self.base.wrapping_add(u64::from(rva));
        if address & 7 != 0 || !valid(address) {
            return None;
        }
        // SAFETY: checked mapped and aligned above.
        Some(unsafe { core::ptr::read_volatile(address as usize as *const u64) })
    }
}
