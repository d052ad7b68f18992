//! An exception guard for the kernel routines that report failure by
//! raising (MmProbeAndLockPages): Rust has no SEH, and an exception that
//! unwinds through Rust frames with no handler bug-checks the machine
//! (0x1E / 0x7E).
//!
//! [`call3`] calls a routine inside a frame that has a structured exception
//! handler, written here in assembly the way MSVC writes `__try { f(a, b,
//! c); } __except (filter(GetExceptionInformation())) { return code; }`:
//! unwind data for the frame (`.seh_proc` ... `.seh_endproc`), the
//! kernel's `__C_specific_handler` as its language handler, and a
//! one-entry scope table naming a filter and the handler label. When the
//! routine raises, the dispatcher finds this frame's scope and calls the
//! filter, which stores the exception code in the guard's own frame and
//! answers EXCEPTION_EXECUTE_HANDLER; the unwind then resumes at the
//! handler, which returns the stored code. (The code is passed through the
//! frame, not RAX: Windows' `__C_specific_handler` hands it to the handler
//! in RAX, Wine's hands over 0.)
//!
//! The file stands alone (no `crate::` paths) so that a fixture driver can
//! include it and show under Wine, whose unwinder and `__C_specific_handler`
//! read the same tables, that a raised exception comes back as a status.

use core::ffi::c_void;

core::arch::global_asm!(
    ".section .text,\"xr\"",
    ".globl civ_guarded_call3",
    ".def civ_guarded_call3",
    ".scl 2",
    ".type 32",
    ".endef",
    ".p2align 4",
    "civ_guarded_call3:",
    ".seh_proc civ_guarded_call3",
    ".seh_handler __C_specific_handler, @except",
    // The callee's shadow space (32 bytes) and the exception code's slot
    // at [rsp + 32]; RSP stays 16-aligned at the call.
    "sub rsp, 40",
    ".seh_stackalloc 40",
    ".seh_endprologue",
    // rcx = routine, rdx/r8/r9 = its three arguments.
    "mov rax, rcx",
    "mov rcx, rdx",
    "mov rdx, r8",
    "mov r8, r9",
    ".Lciv_guard_begin:",
    "call rax",
    // The call's return address must lie inside the guarded range.
    "nop",
    ".Lciv_guard_end:",
    "xor eax, eax",
    "add rsp, 40",
    "ret",
    // Reached by the unwind, RSP back at this frame's body.
    ".Lciv_guard_except:",
    "mov eax, dword ptr [rsp + 32]",
    "add rsp, 40",
    "ret",
    ".seh_handlerdata",
    ".long 1",
    ".long .Lciv_guard_begin@IMGREL",
    ".long .Lciv_guard_end@IMGREL",
    ".long civ_guard_filter@IMGREL",
    ".long .Lciv_guard_except@IMGREL",
    ".text",
    ".seh_endproc",
    // The filter: rcx = EXCEPTION_POINTERS, rdx = the guard's frame (its
    // RSP after the prologue). A leaf that touches no stack: no unwind
    // data needed.
    ".p2align 4",
    "civ_guard_filter:",
    "mov rax, qword ptr [rcx]",
    "mov eax, dword ptr [rax]",
    "mov dword ptr [rdx + 32], eax",
    "mov eax, 1",
    "ret",
);

unsafe extern "C" {
    fn civ_guarded_call3(routine: *const c_void, a: usize, b: usize, c: usize) -> i32;
}

// The language handler the scope table names; the kernel exports it.
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    fn __C_specific_handler();
}

/// Keeps `__C_specific_handler` in the import library rustc makes: only
/// the assembly above names it.
#[used]
static LANGUAGE_HANDLER: unsafe extern "C" fn() = __C_specific_handler;

/// Calls `routine(a, b, c)` (a kernel routine of the `system` ABI whose
/// result, if any, is not needed) and returns the code of the exception it
/// raised, if it raised one.
///
/// # Safety
/// `routine` is a routine taking three pointer-sized arguments, and calling
/// it with `a`, `b`, `c` is sound but for the exception it may raise.
pub unsafe fn call3(routine: *const c_void, a: usize, b: usize, c: usize) -> Result<(), i32> {
    // SAFETY: the caller's contract; the assembly above preserves every
    // non-volatile register and the stack, and returns 0 or the code.
    match unsafe { civ_guarded_call3(routine, a, b, c) } {
        0 => Ok(()),
        code => Err(code),
    }
}
