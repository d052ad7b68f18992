//! The entry stubs: one tiny x86-64 function per catalog row, which a hooked
//! IAT slot points to.
//!
//! A stub first runs its row's *fast path*: a couple of instructions that
//! recognise an argument that is certainly clean (for a pool type, bit 0 or
//! POOL_NX_ALLOCATION set) and jump straight to the original function, so
//! a clean call costs next to nothing. Anything else takes the *slow path*:
//! the stub homes the four register arguments into the caller's shadow
//! space (the callee owns it by the Windows x64 convention), calls
//! [`crate::runtime::dispatch`] with its row index and a pointer to
//! `[return address, arg1, .., arg8]`, restores the registers and jumps to
//! the address dispatch returned — the original, or civ's own handler for
//! MmGetSystemRoutineAddress. Dispatch judges the call again with the
//! engine's predicate, which alone decides; the fast path only ever skips
//! calls that predicate passes (tests check this value by value).
//!
//! Either way the caller's stack is left as it was, so the callee sees the
//! caller's stack arguments and returns straight to the caller with its own
//! return value: no arity-specific code is needed.
//!
//! Stack at the call to dispatch: entry RSP ≡ 8 (mod 16) after the caller's
//! call; `sub rsp, 40` makes it 16-aligned and gives dispatch its 32 bytes
//! of shadow space. At entry, stack argument 5 is at [rsp + 0x28] and 6 at
//! [rsp + 0x30].
//!
//! Unwind data: a crash dump's stack walk (a 0xC4 raised from dispatch)
//! must pass through the stub to the target driver's call. The fast path
//! and the jump to the original leave the stack as it was at entry, which
//! an unwinder assumes of code without unwind data (a leaf). The slow
//! path has a frame and calls, so on COFF targets it gets a
//! RUNTIME_FUNCTION of its own, from its first instruction (the prolog:
//! the home stores and `sub rsp, 40`, described by one ALLOC_SMALL) to its
//! last, and an epilog of the only shape the unwinder recognises when it
//! ends in a jump through a register: `add rsp, 40` then `rex.w jmp rax`
//! (x64 code marks a jump out of a function with the otherwise redundant
//! REX.W). civ-fixtures' unwind tests check this on the built civ.sys.

use crate::catalog::{Arg, CATALOG_LEN, Rule, Width};

/// A stub's address, as written into an IAT slot.
pub type Entry = unsafe extern "win64" fn();

/// The fast-path test a stub runs, chosen per row; [`FAST_PATHS`] lists
/// them and a test checks each matches its row's [`Rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPath {
    /// POOL_TYPE in ecx: clean if bit 0 or 0x200 is set.
    PoolTypeArg1,
    /// POOL_TYPE in r9d: clean if bit 0 or 0x200 is set.
    PoolTypeArg4,
    /// POOL_FLAGS in rcx: clean without 0x80 (NON_PAGED_EXECUTE).
    PoolFlagsArg1,
    /// Lookaside Flags in r9d: clean with 0x200 (POOL_NX_ALLOCATION).
    LookasideFlagsArg4,
    /// Protection in edx: clean without any 0xF0 bit.
    ProtectArg2,
    /// Protection in r8d: clean without any 0xF0 bit.
    ProtectArg3,
    /// Protection as stack argument 5: clean without any 0xF0 bit.
    ProtectArg5,
    /// AccessMode in dl and priority as stack argument 6: clean if UserMode
    /// or MdlMappingNoExecute.
    MdlModeArg2PriorityArg6,
    /// AccessMode in dl: clean if UserMode.
    MdlModeArg2,
    /// No fast path (the routine lookup always goes to civ's handler).
    None,
}

/// The fast path a row's rule calls for, if the stubs know it.
pub const fn fast_path_for(rule: Rule) -> Option<FastPath> {
    const fn is(a: Arg, index: u8, width: Width) -> bool {
        a.index == index
            && matches!(
                (a.width, width),
                (Width::U8, Width::U8) | (Width::U32, Width::U32) | (Width::U64, Width::U64)
            )
    }
    match rule {
        Rule::PoolType { pool_type, .. } if is(pool_type, 0, Width::U32) => {
            Some(FastPath::PoolTypeArg1)
        }
        Rule::PoolType { pool_type, .. } if is(pool_type, 3, Width::U32) => {
            Some(FastPath::PoolTypeArg4)
        }
        Rule::PoolFlags { flags, .. } if is(flags, 0, Width::U64) => Some(FastPath::PoolFlagsArg1),
        Rule::NPagedLookasideFlags { flags, .. } if is(flags, 3, Width::U32) => {
            Some(FastPath::LookasideFlagsArg4)
        }
        Rule::Protection { protect } if is(protect, 1, Width::U32) => Some(FastPath::ProtectArg2),
        Rule::Protection { protect } if is(protect, 2, Width::U32) => Some(FastPath::ProtectArg3),
        Rule::Protection { protect } if is(protect, 4, Width::U32) => Some(FastPath::ProtectArg5),
        Rule::MdlMapping {
            access_mode,
            priority,
        } if is(access_mode, 1, Width::U8) && is(priority, 5, Width::U32) => {
            Some(FastPath::MdlModeArg2PriorityArg6)
        }
        Rule::MdlMappingLegacy { access_mode } if is(access_mode, 1, Width::U8) => {
            Some(FastPath::MdlModeArg2)
        }
        Rule::RoutineLookup => Some(FastPath::None),
        _ => None,
    }
}

macro_rules! fast_path_asm {
    (PoolTypeArg1) => {
        "test ecx, 0x201\n jnz 2f"
    };
    (PoolTypeArg4) => {
        "test r9d, 0x201\n jnz 2f"
    };
    (PoolFlagsArg1) => {
        "test cl, 0x80\n jz 2f"
    };
    (LookasideFlagsArg4) => {
        "test r9d, 0x200\n jnz 2f"
    };
    (ProtectArg2) => {
        "test dl, 0xF0\n jz 2f"
    };
    (ProtectArg3) => {
        "test r8b, 0xF0\n jz 2f"
    };
    (ProtectArg5) => {
        "test byte ptr [rsp + 0x28], 0xF0\n jz 2f"
    };
    (MdlModeArg2PriorityArg6) => {
        "test dl, dl\n jnz 2f\n test dword ptr [rsp + 0x30], 0x40000000\n jnz 2f"
    };
    (MdlModeArg2) => {
        "test dl, dl\n jnz 2f"
    };
    (None) => {
        ""
    };
}

/// Unwind directives for COFF targets: the assembler turns them into the
/// slow path's RUNTIME_FUNCTION (.pdata) and UNWIND_INFO (.xdata). Other
/// targets (the host tests) get the same code, the directives left as
/// comments.
#[cfg(windows)]
macro_rules! seh {
    ($($directive:literal),*) => {
        concat!($($directive, "\n"),*)
    };
}
#[cfg(not(windows))]
macro_rules! seh {
    ($($directive:literal),*) => {
        concat!($("/* ", $directive, " */\n"),*)
    };
}

macro_rules! stubs {
    ($($name:ident = $index:literal : $fast:ident),* $(,)?) => {
        $(
            #[unsafe(naked)]
            #[doc = concat!("Entry stub of catalog row ", stringify!($index), ".")]
            unsafe extern "win64" fn $name() {
                core::arch::naked_asm!(
                    // Fast path: no frame, so no unwind data (a leaf).
                    fast_path_asm!($fast),
                    // Slow path: judge the call in the engine. It has a
                    // frame and calls, so it is a function of its own to
                    // the unwinder: its RUNTIME_FUNCTION starts here, with
                    // the prolog, and ends after the epilog.
                    "1:",
                    seh!(".seh_proc {stub}"),
                    "mov [rsp + 8], rcx",
                    "mov [rsp + 16], rdx",
                    "mov [rsp + 24], r8",
                    "mov [rsp + 32], r9",
                    "sub rsp, 40",
                    seh!(".seh_stackalloc 40", ".seh_endprologue"),
                    "mov ecx, {index}",
                    "lea rdx, [rsp + 40]",
                    "call {dispatch}",
                    // The registers come back before the frame goes, so
                    // that the epilog is what the unwinder recognises:
                    // `add rsp, n`, then a jump out with REX.W (the mark
                    // of a tail jump through a register).
                    "mov rcx, [rsp + 48]",
                    "mov rdx, [rsp + 56]",
                    "mov r8, [rsp + 64]",
                    "mov r9, [rsp + 72]",
                    "add rsp, 40",
                    "rex64 jmp rax",
                    seh!(".seh_endproc"),
                    // Clean: straight to the original, if one is recorded.
                    "2:",
                    "mov rax, qword ptr [rip + {originals} + {offset}]",
                    "test rax, rax",
                    "jz 1b",
                    "jmp rax",
                    index = const $index,
                    offset = const $index * 8,
                    stub = sym $name,
                    dispatch = sym crate::runtime::dispatch,
                    originals = sym crate::runtime::ORIGINALS,
                )
            }
        )*
        /// The stubs, indexed like the catalog.
        pub static ENTRIES: [Entry; CATALOG_LEN] = [$($name),*];
        /// Each stub's fast path, indexed like the catalog.
        pub static FAST_PATHS: [FastPath; CATALOG_LEN] = [$(FastPath::$fast),*];
    };
}

stubs! {
    entry_0 = 0: PoolTypeArg1,              // ExAllocatePool
    entry_1 = 1: PoolTypeArg1,              // ExAllocatePoolWithTag
    entry_2 = 2: PoolTypeArg1,              // ExAllocatePoolWithQuota
    entry_3 = 3: PoolTypeArg1,              // ExAllocatePoolWithQuotaTag
    entry_4 = 4: PoolTypeArg1,              // ExAllocatePoolWithTagPriority
    entry_5 = 5: PoolFlagsArg1,             // ExAllocatePool2
    entry_6 = 6: PoolFlagsArg1,             // ExAllocatePool3
    entry_7 = 7: LookasideFlagsArg4,        // ExInitializeNPagedLookasideList
    entry_8 = 8: PoolTypeArg4,              // ExInitializeLookasideListEx
    entry_9 = 9: ProtectArg3,               // MmMapIoSpaceEx
    entry_10 = 10: ProtectArg5,             // MmAllocateContiguousNodeMemory
    entry_11 = 11: ProtectArg2,             // MmProtectMdlSystemAddress
    entry_12 = 12: MdlModeArg2PriorityArg6, // MmMapLockedPagesSpecifyCache
    entry_13 = 13: MdlModeArg2,             // MmMapLockedPages
    entry_14 = 14: None,                    // MmGetSystemRoutineAddress
}

/// The stub address for a catalog row.
pub fn entry(index: usize) -> Option<u64> {
    ENTRIES.get(index).map(|e| *e as usize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;

    #[test]
    fn every_stub_fast_path_matches_its_rows_rule() {
        for (i, hook) in CATALOG.iter().enumerate() {
            assert_eq!(
                Some(FAST_PATHS[i]),
                fast_path_for(hook.rule),
                "row {i} ({})",
                hook.name
            );
        }
    }
}
