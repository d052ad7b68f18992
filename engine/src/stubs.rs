//! The entry stubs: one tiny x86-64 function per catalog row, which a hooked
//! IAT slot points to.
//!
//! A stub homes the four register arguments into the caller's shadow space
//! (the callee owns it by the Windows x64 convention), calls
//! [`crate::runtime::dispatch`] with its row index and a pointer to
//! `[return address, arg1, .., arg8]` on the stack, restores the registers
//! and jumps to the address dispatch returned — the original kernel
//! function, or civ's own handler for MmGetSystemRoutineAddress. The jump
//! leaves the caller's stack exactly as it was, so the callee sees the
//! caller's stack arguments and returns straight to the caller with its
//! own return value: no arity-specific code is needed.
//!
//! Stack at the call to dispatch: entry RSP ≡ 8 (mod 16) after the caller's
//! call; `sub rsp, 40` makes it 16-aligned and gives dispatch its 32 bytes
//! of shadow space.

use crate::catalog::CATALOG_LEN;

/// A stub's address, as written into an IAT slot.
pub type Entry = unsafe extern "win64" fn();

macro_rules! stubs {
    ($($name:ident = $index:literal),* $(,)?) => {
        $(
            #[unsafe(naked)]
            #[doc = concat!("Entry stub of catalog row ", stringify!($index), ".")]
            unsafe extern "win64" fn $name() {
                core::arch::naked_asm!(
                    "mov [rsp + 8], rcx",
                    "mov [rsp + 16], rdx",
                    "mov [rsp + 24], r8",
                    "mov [rsp + 32], r9",
                    "sub rsp, 40",
                    "mov ecx, {index}",
                    "lea rdx, [rsp + 40]",
                    "call {dispatch}",
                    "add rsp, 40",
                    "mov rcx, [rsp + 8]",
                    "mov rdx, [rsp + 16]",
                    "mov r8, [rsp + 24]",
                    "mov r9, [rsp + 32]",
                    "jmp rax",
                    index = const $index,
                    dispatch = sym crate::runtime::dispatch,
                )
            }
        )*
        /// The stubs, indexed like the catalog.
        pub static ENTRIES: [Entry; CATALOG_LEN] = [$($name),*];
    };
}

stubs! {
    entry_0 = 0, entry_1 = 1, entry_2 = 2, entry_3 = 3, entry_4 = 4,
    entry_5 = 5, entry_6 = 6, entry_7 = 7, entry_8 = 8, entry_9 = 9,
    entry_10 = 10, entry_11 = 11, entry_12 = 12, entry_13 = 13, entry_14 = 14,
}

/// The stub address for a catalog row.
pub fn entry(index: usize) -> Option<u64> {
    ENTRIES.get(index).map(|e| *e as usize as u64)
}
