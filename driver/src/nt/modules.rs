//! The kernel modules loaded now, from ZwQuerySystemInformation
//! (SystemModuleInformation), parsed by the engine: at start, to hook the
//! targets that loaded before civ; when civctl asks for the status, to
//! mark the targets that have unloaded since (the kernel tells a driver
//! when an image loads, never when it goes).
//!
//! The list is fetched into pool sized by asking the kernel first (it can
//! grow between the two calls, so the fetch is retried). A list is trusted
//! only if civ finds itself in it: Wine, for one, answers with a made-up
//! list; there an image counts as loaded while its first page is mapped.
//! PASSIVE_LEVEL.

use super::ffi::{STATUS_INFO_LENGTH_MISMATCH, ZwQuerySystemInformation};
use alloc::vec::Vec;
use civ_engine::modules::{self, Module, SYSTEM_MODULE_INFORMATION};
use core::ffi::c_void;
use windows_sys::Wdk::System::SystemServices::MmIsAddressValid;

/// Room added to the size the kernel asks for, for modules that load
/// between the size query and the fetch.
const SLACK: usize = 16 * 1024;
/// Fetches before giving up on a list that keeps growing.
const ATTEMPTS: usize = 4;

/// Why the list could not be had.
#[derive(Clone, Copy, Debug)]
pub enum ListError {
    /// The query failed with this status.
    Query(i32),
    /// No pool for the list.
    NoMemory,
    /// The list did not parse.
    Parse,
}

/// The raw list, read whole.
fn fetch() -> Result<Vec<u8>, ListError> {
    let mut needed = 0u32;
    // SAFETY: a size query: no buffer, `needed` receives the size.
    let status = unsafe {
        ZwQuerySystemInformation(
            SYSTEM_MODULE_INFORMATION,
            core::ptr::null_mut(),
            0,
            &mut needed,
        )
    };
    if status < 0 && status != STATUS_INFO_LENGTH_MISMATCH {
        return Err(ListError::Query(status));
    }
    for _ in 0..ATTEMPTS {
        let len = (needed as usize).saturating_add(SLACK);
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| ListError::NoMemory)?;
        buf.resize(len, 0u8);
        let mut got = 0u32;
        // SAFETY: `buf` is writable for its length.
        let status = unsafe {
            ZwQuerySystemInformation(
                SYSTEM_MODULE_INFORMATION,
                buf.as_mut_ptr().cast::<c_void>(),
                u32::try_from(len).unwrap_or(u32::MAX),
                &mut got,
            )
        };
        if status == STATUS_INFO_LENGTH_MISMATCH {
            needed = got.max(needed.saturating_mul(2));
            continue;
        }
        if status < 0 {
            return Err(ListError::Query(status));
        }
        buf.truncate((got as usize).min(len));
        return Ok(buf);
    }
    Err(ListError::Query(STATUS_INFO_LENGTH_MISMATCH))
}

/// Is every page of [base, base + size) mapped now? A loaded driver's
/// discardable INIT section is freed after its DriverEntry, so an image
/// found this way may not be readable in full.
pub fn fully_mapped(base: u64, size: u32) -> bool {
    if base == 0 || size == 0 {
        return false;
    }
    let first = base & !0xFFF;
    let end = base.saturating_add(u64::from(size));
    let mut page = first;
    while page < end {
        if !mapped(page) {
            return false;
        }
        page += 0x1000;
    }
    true
}

fn mapped(address: u64) -> bool {
    // SAFETY: MmIsAddressValid only inspects page tables.
    unsafe { MmIsAddressValid(address as usize as *const c_void) }
}

/// Calls `f` for each loaded module. Returns whether the list is a real
/// one (it lists civ itself, loaded at `civ_base`).
pub fn for_each_loaded(civ_base: u64, mut f: impl FnMut(&Module<'_>)) -> Result<bool, ListError> {
    let list = fetch()?;
    let mut real = false;
    modules::for_each_module(&list, |m| {
        real |= m.base == civ_base;
        f(&m);
    })
    .map_err(|_| ListError::Parse)?;
    Ok(real)
}

/// Which of the images the log holds as loaded are gone: with a real
/// module list, those it no longer lists at their base; with none (Wine),
/// those whose first page is unmapped. `mark` is called with a predicate
/// over (base, size).
pub fn mark_unloaded(civ_base: u64, mark: impl FnOnce(&mut dyn FnMut(u64, u64) -> bool)) {
    let mut bases = Vec::new();
    let mut whole = true;
    let real = for_each_loaded(civ_base, |m| {
        if bases.try_reserve(1).is_ok() {
            bases.push(m.base);
        } else {
            whole = false;
        }
    })
    .unwrap_or(false);
    if real && whole {
        mark(&mut |base, _| !bases.contains(&base));
    } else if !real {
        mark(&mut |base, _| !mapped(base));
    }
    // A real list civ could not hold whole says nothing: nothing is marked.
}
