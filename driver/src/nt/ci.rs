//! Whether memory integrity (HVCI) is on: SystemCodeIntegrityInformation's
//! CODEINTEGRITY_OPTION_HVCI_KMCI_ENABLED. With it on, the hypervisor may
//! keep a loaded driver's pages read-only whatever the kernel's page tables
//! say, and a write there is not an exception civ could catch: civ then
//! writes into no driver that loaded before it.

use super::ffi::ZwQuerySystemInformation;
use core::ffi::c_void;

/// SystemCodeIntegrityInformation.
const SYSTEM_CODE_INTEGRITY_INFORMATION: u32 = 103;
/// CODEINTEGRITY_OPTION_HVCI_KMCI_ENABLED.
const HVCI_KMCI_ENABLED: u32 = 0x400;

/// SYSTEM_CODEINTEGRITY_INFORMATION.
#[repr(C)]
struct CodeIntegrityInformation {
    length: u32,
    options: u32,
}

/// Is memory integrity on? `None` when the kernel does not say (before
/// Windows 8.1, Wine). PASSIVE_LEVEL.
pub fn hvci_enabled() -> Option<bool> {
    let mut info = CodeIntegrityInformation {
        length: core::mem::size_of::<CodeIntegrityInformation>() as u32,
        options: 0,
    };
    let mut got = 0u32;
    // SAFETY: a buffer of the class's size, with its Length set as the
    // class requires.
    let status = unsafe {
        ZwQuerySystemInformation(
            SYSTEM_CODE_INTEGRITY_INFORMATION,
            (&raw mut info).cast::<c_void>(),
            core::mem::size_of::<CodeIntegrityInformation>() as u32,
            &mut got,
        )
    };
    (status >= 0).then_some(info.options & HVCI_KMCI_ENABLED != 0)
}
