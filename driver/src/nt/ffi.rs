//! Kernel routines that `windows-sys` declares against ntdll.dll (right for
//! user mode, wrong for a driver) or not at all. Layouts follow wdm.h /
//! ntddk.h.

use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};

/// DPFLTR_IHVDRIVER_ID.
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;
/// DPFLTR_ERROR_LEVEL: shown by default.
pub const DPFLTR_ERROR_LEVEL: u32 = 0;

/// KeyValuePartialInformation.
pub const KEY_VALUE_PARTIAL_INFORMATION: u32 = 2;
/// KEY_READ.
pub const KEY_READ: u32 = 0x2_0019;
/// OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE.
pub const OBJ_KERNEL_CASE_INSENSITIVE: u32 = 0x40 | 0x200;
/// STATUS_BUFFER_OVERFLOW: partial data returned.
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = 0x8000_0005_u32 as NTSTATUS;
/// STATUS_INFO_LENGTH_MISMATCH.
pub const STATUS_INFO_LENGTH_MISMATCH: NTSTATUS = 0xC000_0004_u32 as NTSTATUS;
/// STATUS_BUFFER_TOO_SMALL.
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as NTSTATUS;
/// STATUS_OBJECT_NAME_NOT_FOUND: no such registry value.
pub const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = 0xC000_0034_u32 as NTSTATUS;
/// STATUS_INSUFFICIENT_RESOURCES.
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as NTSTATUS;

// windows-sys declares these against ntdll.dll. Declaring them again
// against ntoskrnl.exe does not help: the linker takes the first import
// library that defines a name, and windows-sys' comes first. So they are
// looked up by name at start (MmGetSystemRoutineAddress) instead; every
// one is an ntoskrnl export on Windows and under Wine.

type DbgPrintExFn = unsafe extern "C" fn(u32, u32, *const u8, ...) -> u32;
type ZwOpenKeyFn =
    unsafe extern "system" fn(*mut HANDLE, u32, *const OBJECT_ATTRIBUTES) -> NTSTATUS;
type ZwQueryValueKeyFn = unsafe extern "system" fn(
    HANDLE,
    *const UNICODE_STRING,
    u32,
    *mut c_void,
    u32,
    *mut u32,
) -> NTSTATUS;
type ZwCloseFn = unsafe extern "system" fn(HANDLE) -> NTSTATUS;
type ZwQuerySystemInformationFn =
    unsafe extern "system" fn(u32, *mut c_void, u32, *mut u32) -> NTSTATUS;
type RtlCreateSecurityDescriptorFn = unsafe extern "system" fn(*mut c_void, u32) -> NTSTATUS;
type RtlCreateAclFn = unsafe extern "system" fn(*mut c_void, u32, u32) -> NTSTATUS;
type RtlAddAccessAllowedAceFn =
    unsafe extern "system" fn(*mut c_void, u32, u32, *const c_void) -> NTSTATUS;
type RtlSetDaclSecurityDescriptorFn =
    unsafe extern "system" fn(*mut c_void, u8, *const c_void, u8) -> NTSTATUS;
type ZwSetSecurityObjectFn = unsafe extern "system" fn(HANDLE, u32, *const c_void) -> NTSTATUS;
type RtlCaptureStackBackTraceFn =
    unsafe extern "system" fn(u32, u32, *mut *mut c_void, *mut u32) -> u16;

/// STATUS_PROCEDURE_NOT_FOUND: what a wrapper returns for a routine the
/// kernel does not export.
pub const STATUS_PROCEDURE_NOT_FOUND: NTSTATUS = 0xC000_007A_u32 as NTSTATUS;

macro_rules! resolved {
    ($($slot:ident: $name:literal),* $(,)?) => {
        $(static $slot: AtomicUsize = AtomicUsize::new(0);)*
        /// Looks every routine up (PASSIVE_LEVEL, first thing at start).
        pub fn resolve() {
            $($slot.store(super::routine(crate::utf16!($name)), Ordering::Release);)*
        }
    };
}

resolved! {
    DBG_PRINT_EX: "DbgPrintEx",
    ZW_OPEN_KEY: "ZwOpenKey",
    ZW_QUERY_VALUE_KEY: "ZwQueryValueKey",
    ZW_CLOSE: "ZwClose",
    ZW_QUERY_SYSTEM_INFORMATION: "ZwQuerySystemInformation",
    RTL_CREATE_SECURITY_DESCRIPTOR: "RtlCreateSecurityDescriptor",
    RTL_CREATE_ACL: "RtlCreateAcl",
    RTL_ADD_ACCESS_ALLOWED_ACE: "RtlAddAccessAllowedAce",
    RTL_SET_DACL_SECURITY_DESCRIPTOR: "RtlSetDaclSecurityDescriptor",
    ZW_SET_SECURITY_OBJECT: "ZwSetSecurityObject",
    RTL_CAPTURE_STACK_BACK_TRACE: "RtlCaptureStackBackTrace",
    KE_GET_CURRENT_IRQL: "KeGetCurrentIrql",
    MM_COPY_MEMORY: "MmCopyMemory",
    INIT_SAFE_BOOT_MODE: "InitSafeBootMode",
}

type KeGetCurrentIrqlFn = unsafe extern "system" fn() -> u8;
type MmCopyMemoryFn =
    unsafe extern "system" fn(*mut c_void, u64, usize, u32, *mut usize) -> NTSTATUS;

/// MM_COPY_MEMORY_VIRTUAL: the source is a virtual address.
const MM_COPY_MEMORY_VIRTUAL: u32 = 2;

/// The current IRQL, if the kernel exports KeGetCurrentIrql (x64 Windows
/// does; Wine does not).
pub fn current_irql() -> Option<u8> {
    // SAFETY: the slot holds KeGetCurrentIrql, of this type.
    let f = unsafe { get::<KeGetCurrentIrqlFn>(&KE_GET_CURRENT_IRQL) }?;
    // SAFETY: callable at any IRQL.
    Some(unsafe { f() })
}

/// Copies `dst.len()` bytes from the kernel address `src` with
/// MmCopyMemory, which stops at an invalid page instead of faulting;
/// `None` if the kernel lacks it (before Windows 8.1, Wine), else how many
/// bytes it copied. IRQL <= APC_LEVEL.
pub fn mm_copy_memory(dst: &mut [u8], src: u64) -> Option<usize> {
    // SAFETY: the slot holds MmCopyMemory, of this type (MM_COPY_ADDRESS
    // is an 8-byte union: here its VirtualAddress).
    let f = unsafe { get::<MmCopyMemoryFn>(&MM_COPY_MEMORY) }?;
    let mut copied = 0usize;
    // SAFETY: `dst` is writable for its length; MmCopyMemory checks the
    // source and reports how much it could read.
    let status = unsafe {
        f(
            dst.as_mut_ptr().cast(),
            src,
            dst.len(),
            MM_COPY_MEMORY_VIRTUAL,
            &mut copied,
        )
    };
    // A failed copy still says how much it read before the bad page.
    let _ = status;
    Some(copied.min(dst.len()))
}

/// Is Windows running in Safe Mode (`*InitSafeBootMode != 0`)? False when
/// the kernel does not export it (Wine).
pub fn safe_boot() -> bool {
    match INIT_SAFE_BOOT_MODE.load(Ordering::Acquire) {
        0 => false,
        // SAFETY: the exported ULONG InitSafeBootMode, read once at start.
        p => unsafe { core::ptr::read_volatile(p as *const u32) != 0 },
    }
}

/// RtlCaptureStackBackTrace into `frames` (return addresses, the caller's
/// first); how many it wrote, 0 if the kernel lacks it. Any IRQL up to
/// DISPATCH_LEVEL.
pub fn rtl_capture_stack_back_trace(frames: &mut [usize]) -> usize {
    let capacity = u32::try_from(frames.len()).unwrap_or(u32::MAX);
    // SAFETY: the slot holds RtlCaptureStackBackTrace, of this type.
    match unsafe { get::<RtlCaptureStackBackTraceFn>(&RTL_CAPTURE_STACK_BACK_TRACE) } {
        // SAFETY: `frames` is writable for `capacity` pointers; no hash.
        Some(f) => usize::from(unsafe {
            f(
                0,
                capacity,
                frames.as_mut_ptr().cast(),
                core::ptr::null_mut(),
            )
        })
        .min(frames.len()),
        None => 0,
    }
}

/// The resolved routine in `slot` as a `F`, if the kernel has it.
///
/// # Safety
/// `F` is the routine's true function-pointer type.
unsafe fn get<F: Copy>(slot: &AtomicUsize) -> Option<F> {
    const { assert!(core::mem::size_of::<F>() == core::mem::size_of::<usize>()) };
    match slot.load(Ordering::Acquire) {
        0 => None,
        // SAFETY: a non-null routine address, of type F (caller's contract).
        f => Some(unsafe { core::mem::transmute_copy::<usize, F>(&f) }),
    }
}

/// DbgPrintEx("%s", line); nothing if unresolved.
///
/// # Safety
/// `line` is NUL-terminated.
pub unsafe fn dbg_print_line(line: *const u8) {
    // SAFETY: DbgPrintEx's type; "%s" with a NUL-terminated string.
    if let Some(f) = unsafe { get::<DbgPrintExFn>(&DBG_PRINT_EX) } {
        unsafe {
            f(
                DPFLTR_IHVDRIVER_ID,
                DPFLTR_ERROR_LEVEL,
                c"%s".as_ptr().cast(),
                line,
            )
        };
    }
}

macro_rules! wrappers {
    ($($(#[$m:meta])* fn $name:ident($($arg:ident: $t:ty),*) via $slot:ident as $fty:ty;)*) => {
        $(
            $(#[$m])*
            ///
            /// # Safety
            /// As the kernel routine of the same name.
            #[allow(non_snake_case)]
            pub unsafe fn $name($($arg: $t),*) -> NTSTATUS {
                // SAFETY: the slot holds the routine of this name and type.
                match unsafe { get::<$fty>(&$slot) } {
                    // SAFETY: the caller's contract.
                    Some(f) => unsafe { f($($arg),*) },
                    None => STATUS_PROCEDURE_NOT_FOUND,
                }
            }
        )*
    };
}

wrappers! {
    /// ZwOpenKey.
    fn ZwOpenKey(key: *mut HANDLE, access: u32, attributes: *const OBJECT_ATTRIBUTES) via ZW_OPEN_KEY as ZwOpenKeyFn;
    /// ZwQueryValueKey.
    fn ZwQueryValueKey(key: HANDLE, name: *const UNICODE_STRING, class: u32, info: *mut c_void, length: u32, result_length: *mut u32) via ZW_QUERY_VALUE_KEY as ZwQueryValueKeyFn;
    /// ZwClose.
    fn ZwClose(handle: HANDLE) via ZW_CLOSE as ZwCloseFn;
    /// ZwQuerySystemInformation.
    fn ZwQuerySystemInformation(class: u32, info: *mut c_void, length: u32, result_length: *mut u32) via ZW_QUERY_SYSTEM_INFORMATION as ZwQuerySystemInformationFn;
    /// RtlCreateSecurityDescriptor.
    fn RtlCreateSecurityDescriptor(sd: *mut c_void, revision: u32) via RTL_CREATE_SECURITY_DESCRIPTOR as RtlCreateSecurityDescriptorFn;
    /// RtlCreateAcl.
    fn RtlCreateAcl(acl: *mut c_void, length: u32, revision: u32) via RTL_CREATE_ACL as RtlCreateAclFn;
    /// RtlAddAccessAllowedAce.
    fn RtlAddAccessAllowedAce(acl: *mut c_void, revision: u32, mask: u32, sid: *const c_void) via RTL_ADD_ACCESS_ALLOWED_ACE as RtlAddAccessAllowedAceFn;
    /// RtlSetDaclSecurityDescriptor.
    fn RtlSetDaclSecurityDescriptor(sd: *mut c_void, present: u8, dacl: *const c_void, defaulted: u8) via RTL_SET_DACL_SECURITY_DESCRIPTOR as RtlSetDaclSecurityDescriptorFn;
    /// ZwSetSecurityObject.
    fn ZwSetSecurityObject(handle: HANDLE, information: u32, sd: *const c_void) via ZW_SET_SECURITY_OBJECT as ZwSetSecurityObjectFn;
}

/// ZwProtectVirtualMemory, resolved at run time (see [`super::patch`]).
pub type ZwProtectVirtualMemory = unsafe extern "system" fn(
    process: HANDLE,
    base: *mut *mut c_void,
    size: *mut usize,
    protect: u32,
    old: *mut u32,
) -> NTSTATUS;

/// KeQuerySystemTime(Precise), resolved at run time (see [`super::time`]).
pub type KeQuerySystemTime = unsafe extern "system" fn(time: *mut i64);

// The compiler's own helpers (memcpy for copies, __chkstk for stack
// frames over a page, ...) come from ntoskrnl.exe in a driver; declaring
// them here puts them in the import library rustc makes for it.
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn memset(dst: *mut c_void, c: i32, n: usize) -> *mut c_void;
    fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> i32;
    fn strlen(s: *const u8) -> usize;
    fn __chkstk();
}

/// Keeps the helpers' declarations in the link (they are referenced by
/// generated code only, which rustc does not see when it builds the
/// import library).
#[used]
static COMPILER_HELPERS: [unsafe extern "C" fn(); 6] = [
    // SAFETY (of the casts): only the addresses are kept, never called
    // through these types.
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void,
            unsafe extern "C" fn(),
        >(memcpy)
    },
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void,
            unsafe extern "C" fn(),
        >(memmove)
    },
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, i32, usize) -> *mut c_void,
            unsafe extern "C" fn(),
        >(memset)
    },
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*const c_void, *const c_void, usize) -> i32,
            unsafe extern "C" fn(),
        >(memcmp)
    },
    unsafe {
        core::mem::transmute::<unsafe extern "C" fn(*const u8) -> usize, unsafe extern "C" fn()>(
            strlen,
        )
    },
    __chkstk,
];
