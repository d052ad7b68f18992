//! The NT services civ.sys needs, written once for both shells.
//!
//! Calls go through `windows-sys`' Wdk bindings where they link against
//! ntoskrnl.exe; [`ffi`] declares the few that windows-sys links against
//! ntdll.dll (user mode) or leaves out. Routines a host may lack (Wine 8
//! has no KeQuerySystemTimePrecise; Windows exports ZwProtectVirtualMemory
//! only on recent builds) are resolved at start with
//! MmGetSystemRoutineAddress, so a missing one never keeps civ from loading.

pub mod ci;
pub mod debug;
pub mod ffi;
pub mod guard;
pub mod lock;
pub mod modules;
pub mod notify;
pub mod patch;
pub mod registry;
pub mod security;
pub mod stack;
pub mod time;

use windows_sys::Wdk::System::SystemServices::{KeBugCheckEx, MmGetSystemRoutineAddress};
use windows_sys::Win32::Foundation::UNICODE_STRING;

/// MANUALLY_INITIATED_CRASH: the bug check civ raises if its own code
/// panics (it is written never to), with 'CIVP' in Arg1.
const PANIC_BUGCHECK: u32 = 0xE2;

/// Stops the machine after a panic in civ.
pub fn bug_check_panic() -> ! {
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe { KeBugCheckEx(PANIC_BUGCHECK, 0x4349_5650, 0, 0, 0) };
    #[allow(clippy::empty_loop)]
    loop {}
}

/// KeBugCheckEx in the shape the engine's kernel interface wants. On
/// Windows it never returns; under Wine it ends the host process.
///
/// # Safety
/// Callable at any IRQL.
pub unsafe extern "system" fn bug_check(code: u32, a1: u64, a2: u64, a3: u64, a4: u64) {
    // SAFETY: the caller's contract; the arguments are plain values.
    unsafe { KeBugCheckEx(code, a1 as usize, a2 as usize, a3 as usize, a4 as usize) };
}

/// A UNICODE_STRING over a static UTF-16 array (which must outlive it).
pub const fn unicode(s: &'static [u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: (s.len() * 2) as u16,
        MaximumLength: (s.len() * 2) as u16,
        Buffer: s.as_ptr().cast_mut(),
    }
}

/// Encodes an ASCII string literal as UTF-16 at compile time.
#[macro_export]
macro_rules! utf16 {
    ($s:expr) => {{
        const S: &str = $s;
        const N: usize = S.len();
        const W: [u16; N] = {
            let b = S.as_bytes();
            let mut w = [0u16; N];
            let mut i = 0;
            while i < N {
                w[i] = b[i] as u16;
                i += 1;
            }
            w
        };
        &W
    }};
}

/// The address of a kernel export, or 0 (PASSIVE_LEVEL).
pub fn routine(name: &'static [u16]) -> usize {
    let u = unicode(name);
    // SAFETY: `u` describes a valid, static UTF-16 string.
    unsafe { MmGetSystemRoutineAddress(&u) as usize }
}

/// The bytes of a UNICODE_STRING as UTF-16 code units (empty for null).
///
/// # Safety
/// `s` is null or a valid UNICODE_STRING whose buffer outlives `'a`.
pub unsafe fn units<'a>(s: *const UNICODE_STRING) -> &'a [u16] {
    // SAFETY: the caller's contract.
    match unsafe { s.as_ref() } {
        Some(s) if !s.Buffer.is_null() => {
            // SAFETY: Length bytes of Buffer are valid (UNICODE_STRING's contract).
            unsafe { core::slice::from_raw_parts(s.Buffer, usize::from(s.Length / 2)) }
        }
        _ => &[],
    }
}
