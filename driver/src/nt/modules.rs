//! The kernel modules loaded before civ started, so that targets that
//! loaded earlier are hooked too (late: their DriverEntry's calls were not
//! seen). The list comes from ZwQuerySystemInformation and is parsed by the
//! engine; an entry is only trusted once its pages are found mapped.

use super::ffi::{STATUS_INFO_LENGTH_MISMATCH, ZwQuerySystemInformation};
use civ_engine::modules::{self, Module, SYSTEM_MODULE_INFORMATION};
use civ_engine::sync::SpinLock;
use core::ffi::c_void;
use windows_sys::Wdk::System::SystemServices::MmIsAddressValid;

/// Room for about 880 modules (296 bytes each).
const LIST_BYTES: usize = 256 * 1024;

static LIST: SpinLock<[u8; LIST_BYTES]> = SpinLock::new([0; LIST_BYTES]);

/// Why the list could not be had.
#[derive(Clone, Copy, Debug)]
pub enum ListError {
    /// The query failed with this status.
    Query(i32),
    /// The list did not parse.
    Parse,
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
        // SAFETY: MmIsAddressValid only inspects page tables.
        if !unsafe { MmIsAddressValid(page as usize as *const c_void) } {
            return false;
        }
        page += 0x1000;
    }
    true
}

/// Calls `f` for each loaded module (PASSIVE_LEVEL).
pub fn for_each_loaded(mut f: impl FnMut(&Module<'_>)) -> Result<(), ListError> {
    LIST.with(|buf| {
        let mut got = 0u32;
        // SAFETY: `buf` is writable for its length.
        let status = unsafe {
            ZwQuerySystemInformation(
                SYSTEM_MODULE_INFORMATION,
                buf.as_mut_ptr().cast::<c_void>(),
                LIST_BYTES as u32,
                &mut got,
            )
        };
        if status == STATUS_INFO_LENGTH_MISMATCH || status < 0 {
            return Err(ListError::Query(status));
        }
        let len = (got as usize).min(LIST_BYTES);
        modules::for_each_module(buf.get(..len).unwrap_or(&[]), |m| f(&m))
            .map_err(|_| ListError::Parse)
    })
}
