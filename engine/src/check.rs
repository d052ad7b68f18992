//! The run-time predicates of DV's code integrity checks (0x2000–0x2002).
//!
//! Each predicate takes the argument a driver passed to a kernel API and, when
//! the request is for executable memory, returns the [`Violation`] with the
//! bug check's arguments laid out as Driver Verifier lays them out. Clean
//! requests return `None`. The predicates are x64/ARM64 semantics: on those
//! architectures paged pool is never executable.

use crate::code::{BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION, Code};

/// POOL_TYPE values and modifier bits (wdm.h).
pub mod pool_type {
    /// NonPagedPool, also called NonPagedPoolExecute: executable.
    pub const NON_PAGED_POOL: u32 = 0;
    /// PagedPool.
    pub const PAGED_POOL: u32 = 1;
    /// NonPagedPoolMustSucceed.
    pub const NON_PAGED_POOL_MUST_SUCCEED: u32 = 2;
    /// DontUseThisType.
    pub const DONT_USE_THIS_TYPE: u32 = 3;
    /// NonPagedPoolCacheAligned.
    pub const NON_PAGED_POOL_CACHE_ALIGNED: u32 = 4;
    /// PagedPoolCacheAligned.
    pub const PAGED_POOL_CACHE_ALIGNED: u32 = 5;
    /// NonPagedPoolCacheAlignedMustS.
    pub const NON_PAGED_POOL_CACHE_ALIGNED_MUST_S: u32 = 6;
    /// Added to a base type for its session variant.
    pub const SESSION: u32 = 0x20;
    /// POOL_QUOTA_FAIL_INSTEAD_OF_RAISE.
    pub const POOL_QUOTA_FAIL_INSTEAD_OF_RAISE: u32 = 0x8;
    /// POOL_RAISE_IF_ALLOCATION_FAILURE.
    pub const POOL_RAISE_IF_ALLOCATION_FAILURE: u32 = 0x10;
    /// POOL_COLD_ALLOCATION.
    pub const POOL_COLD_ALLOCATION: u32 = 0x100;
    /// POOL_NX_ALLOCATION: the bit that makes nonpaged pool NX.
    pub const POOL_NX_ALLOCATION: u32 = 0x200;
    /// POOL_ZERO_ALLOCATION.
    pub const POOL_ZERO_ALLOCATION: u32 = 0x400;
    /// NonPagedPoolNx.
    pub const NON_PAGED_POOL_NX: u32 = 0x200;
    /// NonPagedPoolNxCacheAligned.
    pub const NON_PAGED_POOL_NX_CACHE_ALIGNED: u32 = 0x204;
    /// NonPagedPoolSessionNx.
    pub const NON_PAGED_POOL_SESSION_NX: u32 = 0x220;
}

/// POOL_FLAG_* bits of ExAllocatePool2/3 (wdm.h; not in windows-sys).
pub mod pool_flags {
    /// POOL_FLAG_USE_QUOTA.
    pub const USE_QUOTA: u64 = 0x1;
    /// POOL_FLAG_UNINITIALIZED.
    pub const UNINITIALIZED: u64 = 0x2;
    /// POOL_FLAG_SESSION.
    pub const SESSION: u64 = 0x4;
    /// POOL_FLAG_CACHE_ALIGNED.
    pub const CACHE_ALIGNED: u64 = 0x8;
    /// POOL_FLAG_RAISE_ON_FAILURE.
    pub const RAISE_ON_FAILURE: u64 = 0x20;
    /// POOL_FLAG_NON_PAGED: nonpaged and NX.
    pub const NON_PAGED: u64 = 0x40;
    /// POOL_FLAG_NON_PAGED_EXECUTE: the only executable pool flag.
    pub const NON_PAGED_EXECUTE: u64 = 0x80;
    /// POOL_FLAG_PAGED.
    pub const PAGED: u64 = 0x100;
    /// POOL_FLAG_SPECIAL_POOL.
    pub const SPECIAL_POOL: u64 = 0x1_0000_0000;
}

/// PAGE_* protections (WIN32_PROTECTION_MASK) and modifiers.
pub mod page {
    /// PAGE_NOACCESS.
    pub const NOACCESS: u32 = 0x01;
    /// PAGE_READONLY.
    pub const READONLY: u32 = 0x02;
    /// PAGE_READWRITE.
    pub const READWRITE: u32 = 0x04;
    /// PAGE_WRITECOPY.
    pub const WRITECOPY: u32 = 0x08;
    /// PAGE_EXECUTE.
    pub const EXECUTE: u32 = 0x10;
    /// PAGE_EXECUTE_READ.
    pub const EXECUTE_READ: u32 = 0x20;
    /// PAGE_EXECUTE_READWRITE.
    pub const EXECUTE_READWRITE: u32 = 0x40;
    /// PAGE_EXECUTE_WRITECOPY.
    pub const EXECUTE_WRITECOPY: u32 = 0x80;
    /// PAGE_GUARD.
    pub const GUARD: u32 = 0x100;
    /// PAGE_NOCACHE.
    pub const NOCACHE: u32 = 0x200;
    /// PAGE_WRITECOMBINE.
    pub const WRITECOMBINE: u32 = 0x400;
    /// Every PAGE_EXECUTE* bit.
    pub const EXECUTE_MASK: u32 = 0xF0;
}

/// MM_PAGE_PRIORITY values, MdlMapping* bits and KPROCESSOR_MODE.
pub mod mdl {
    /// LowPagePriority.
    pub const LOW_PAGE_PRIORITY: u32 = 0;
    /// NormalPagePriority.
    pub const NORMAL_PAGE_PRIORITY: u32 = 16;
    /// HighPagePriority.
    pub const HIGH_PAGE_PRIORITY: u32 = 32;
    /// MdlMappingNoWrite.
    pub const MDL_MAPPING_NO_WRITE: u32 = 0x8000_0000;
    /// MdlMappingNoExecute: the bit that makes a kernel mapping NX.
    pub const MDL_MAPPING_NO_EXECUTE: u32 = 0x4000_0000;
    /// MdlMappingWithGuardPtes.
    pub const MDL_MAPPING_WITH_GUARD_PTES: u32 = 0x2000_0000;
    /// KernelMode.
    pub const KERNEL_MODE: u8 = 0;
    /// UserMode: such a mapping is always NX.
    pub const USER_MODE: u8 = 1;
}

/// A code-integrity violation at run time: what bug check 0xC4 would carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Arg1.
    pub code: Code,
    /// Arg2: the return address of the call, inside the offending driver.
    pub caller: u64,
    /// Arg3: the pool type, flags, protection or priority asked for.
    pub arg3: u64,
    /// Arg4: the pool tag, or 0.
    pub arg4: u64,
}

impl Violation {
    /// The bug check code, always 0xC4.
    pub const BUGCHECK_CODE: u32 = BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION;

    /// The four arguments of `KeBugCheckEx(0xC4, ...)`, in DV's order.
    pub const fn bugcheck_args(&self) -> [u64; 4] {
        [self.code as u64, self.caller, self.arg3, self.arg4]
    }
}

/// Is this POOL_TYPE executable? A nonpaged base type (bit 0 clear) without
/// POOL_NX_ALLOCATION is; every paged type is not (x64/ARM64).
pub const fn pool_type_is_executable(pool_type: u32) -> bool {
    pool_type & 1 == 0 && pool_type & pool_type::POOL_NX_ALLOCATION == 0
}

/// 0x2000 for the ExAllocatePool* family and ExInitializeLookasideListEx.
pub const fn check_pool_type(pool_type: u32, tag: u32, caller: u64) -> Option<Violation> {
    if pool_type_is_executable(pool_type) {
        Some(Violation {
            code: Code::ExecutePoolType,
            caller,
            arg3: pool_type as u64,
            arg4: tag as u64,
        })
    } else {
        None
    }
}

/// 0x2000 for ExAllocatePool2/3: only POOL_FLAG_NON_PAGED_EXECUTE is executable.
pub const fn check_pool_flags(flags: u64, tag: u32, caller: u64) -> Option<Violation> {
    if flags & pool_flags::NON_PAGED_EXECUTE != 0 {
        Some(Violation {
            code: Code::ExecutePoolType,
            caller,
            arg3: flags,
            arg4: tag as u64,
        })
    } else {
        None
    }
}

/// 0x2000 for ExInitializeNPagedLookasideList: its entries come from
/// nonpaged pool, executable unless `Flags` carries POOL_NX_ALLOCATION.
pub const fn check_npaged_lookaside_flags(flags: u32, tag: u32, caller: u64) -> Option<Violation> {
    if flags & pool_type::POOL_NX_ALLOCATION == 0 {
        Some(Violation {
            code: Code::ExecutePoolType,
            caller,
            arg3: flags as u64,
            arg4: tag as u64,
        })
    } else {
        None
    }
}

/// Is this page protection executable? Any PAGE_EXECUTE* bit, whatever the
/// modifiers.
pub const fn protection_is_executable(protect: u32) -> bool {
    protect & page::EXECUTE_MASK != 0
}

/// 0x2001 for MmMapIoSpaceEx, MmAllocateContiguousNodeMemory and
/// MmProtectMdlSystemAddress.
pub const fn check_page_protection(protect: u32, caller: u64) -> Option<Violation> {
    if protection_is_executable(protect) {
        Some(Violation {
            code: Code::ExecutePageProtection,
            caller,
            arg3: protect as u64,
            arg4: 0,
        })
    } else {
        None
    }
}

/// Is this MDL mapping executable? A kernel-mode mapping without
/// MdlMappingNoExecute is; a user-mode mapping never is.
pub const fn mdl_mapping_is_executable(access_mode: u8, priority: u32) -> bool {
    access_mode == mdl::KERNEL_MODE && priority & mdl::MDL_MAPPING_NO_EXECUTE == 0
}

/// 0x2002 for MmMapLockedPagesSpecifyCache (and so MmGetSystemAddressForMdlSafe).
pub const fn check_mdl_mapping(access_mode: u8, priority: u32, caller: u64) -> Option<Violation> {
    if mdl_mapping_is_executable(access_mode, priority) {
        Some(Violation {
            code: Code::ExecutePageMapping,
            caller,
            arg3: priority as u64,
            arg4: 0,
        })
    } else {
        None
    }
}

/// 0x2002 for MmMapLockedPages, which cannot ask for NX: a kernel-mode
/// mapping is always executable, reported with HighPagePriority.
pub const fn check_mdl_mapping_legacy(access_mode: u8, caller: u64) -> Option<Violation> {
    check_mdl_mapping(access_mode, mdl::HIGH_PAGE_PRIORITY, caller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const CALLER: u64 = 0xFFFF_F801_2345_6789;
    const TAG: u32 = u32::from_le_bytes(*b"Civt");

    /// Every POOL_TYPE wdm.h names, with whether it is executable on x64.
    const POOL_TYPES: &[(&str, u32, bool)] = &[
        ("NonPagedPool", 0, true),
        ("PagedPool", 1, false),
        ("NonPagedPoolMustSucceed", 2, true),
        ("DontUseThisType", 3, false),
        ("NonPagedPoolCacheAligned", 4, true),
        ("PagedPoolCacheAligned", 5, false),
        ("NonPagedPoolCacheAlignedMustS", 6, true),
        ("MaxPoolType", 7, false),
        ("NonPagedPoolBase", 0, true),
        ("NonPagedPoolBaseMustSucceed", 2, true),
        ("NonPagedPoolBaseCacheAligned", 4, true),
        ("NonPagedPoolBaseCacheAlignedMustS", 6, true),
        ("NonPagedPoolSession", 32, true),
        ("PagedPoolSession", 33, false),
        ("NonPagedPoolMustSucceedSession", 34, true),
        ("DontUseThisTypeSession", 35, false),
        ("NonPagedPoolCacheAlignedSession", 36, true),
        ("PagedPoolCacheAlignedSession", 37, false),
        ("NonPagedPoolCacheAlignedMustSSession", 38, true),
        ("NonPagedPoolNx", 512, false),
        ("NonPagedPoolNxCacheAligned", 516, false),
        ("NonPagedPoolSessionNx", 544, false),
    ];

    const POOL_MODIFIERS: &[u32] = &[
        pool_type::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE,
        pool_type::POOL_RAISE_IF_ALLOCATION_FAILURE,
        pool_type::POOL_COLD_ALLOCATION,
        pool_type::POOL_ZERO_ALLOCATION,
    ];

    /// Every subset of the modifiers that do not change executability.
    fn modifier_sets() -> Vec<u32> {
        (0..1u32 << POOL_MODIFIERS.len())
            .map(|mask| {
                POOL_MODIFIERS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .fold(0, |acc, (_, bit)| acc | bit)
            })
            .collect()
    }

    #[test]
    fn every_pool_type_with_every_modifier_set() {
        for &(name, value, executable) in POOL_TYPES {
            for mods in modifier_sets() {
                let pt = value | mods;
                let got = check_pool_type(pt, TAG, CALLER);
                if executable {
                    assert_eq!(
                        got.map(|v| v.bugcheck_args()),
                        Some([0x2000, CALLER, u64::from(pt), u64::from(TAG)]),
                        "{name} | {mods:#x}"
                    );
                } else {
                    assert_eq!(got, None, "{name} | {mods:#x}");
                }
                // POOL_NX_ALLOCATION always makes it clean.
                assert_eq!(
                    check_pool_type(pt | pool_type::POOL_NX_ALLOCATION, TAG, CALLER),
                    None,
                    "{name} | {mods:#x} | NX"
                );
            }
        }
    }

    #[test]
    fn every_pool_flag_alone_and_with_execute() {
        use pool_flags::*;
        let flags = [
            USE_QUOTA,
            UNINITIALIZED,
            SESSION,
            CACHE_ALIGNED,
            RAISE_ON_FAILURE,
            NON_PAGED,
            NON_PAGED_EXECUTE,
            PAGED,
            SPECIAL_POOL,
        ];
        for mask in 0..1u32 << flags.len() {
            let f = flags
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .fold(0u64, |acc, (_, bit)| acc | bit);
            let got = check_pool_flags(f, TAG, CALLER);
            if f & NON_PAGED_EXECUTE != 0 {
                assert_eq!(
                    got.map(|v| v.bugcheck_args()),
                    Some([0x2000, CALLER, f, u64::from(TAG)]),
                    "{f:#x}"
                );
            } else {
                assert_eq!(got, None, "{f:#x}");
            }
        }
        // The public mistake: 0x20 is RAISE_ON_FAILURE, not EXECUTE.
        assert_eq!(check_pool_flags(0x20 | NON_PAGED, TAG, CALLER), None);
    }

    #[test]
    fn npaged_lookaside_needs_nx_flag() {
        for mods in modifier_sets() {
            assert_eq!(
                check_npaged_lookaside_flags(mods, TAG, CALLER).map(|v| v.bugcheck_args()),
                Some([0x2000, CALLER, u64::from(mods), u64::from(TAG)])
            );
            assert_eq!(
                check_npaged_lookaside_flags(mods | pool_type::POOL_NX_ALLOCATION, TAG, CALLER),
                None
            );
        }
    }

    #[test]
    fn every_page_protection_with_every_modifier_set() {
        use page::*;
        let bases = [
            (NOACCESS, false),
            (READONLY, false),
            (READWRITE, false),
            (WRITECOPY, false),
            (EXECUTE, true),
            (EXECUTE_READ, true),
            (EXECUTE_READWRITE, true),
            (EXECUTE_WRITECOPY, true),
        ];
        for (base, executable) in bases {
            for mods in 0..8u32 {
                let protect = base | (mods << 8); // GUARD, NOCACHE, WRITECOMBINE
                let got = check_page_protection(protect, CALLER);
                if executable {
                    assert_eq!(
                        got.map(|v| v.bugcheck_args()),
                        Some([0x2001, CALLER, u64::from(protect), 0]),
                        "{protect:#x}"
                    );
                } else {
                    assert_eq!(got, None, "{protect:#x}");
                }
            }
        }
        // Combinations of several PAGE_* bits: executable iff any execute bit.
        for protect in 0..=0xFFFu32 {
            assert_eq!(
                check_page_protection(protect, CALLER).is_some(),
                protect & 0xF0 != 0,
                "{protect:#x}"
            );
        }
    }

    #[test]
    fn every_mdl_priority_flag_and_mode() {
        use mdl::*;
        for priority in [LOW_PAGE_PRIORITY, NORMAL_PAGE_PRIORITY, HIGH_PAGE_PRIORITY] {
            for flags in 0..8u32 {
                let p = priority | (flags << 29); // GuardPtes, NoExecute, NoWrite
                let nx = p & MDL_MAPPING_NO_EXECUTE != 0;
                assert_eq!(check_mdl_mapping(USER_MODE, p, CALLER), None, "{p:#x}");
                let got = check_mdl_mapping(KERNEL_MODE, p, CALLER);
                if nx {
                    assert_eq!(got, None, "{p:#x}");
                } else {
                    assert_eq!(
                        got.map(|v| v.bugcheck_args()),
                        Some([0x2002, CALLER, u64::from(p), 0]),
                        "{p:#x}"
                    );
                }
            }
        }
        assert_eq!(
            check_mdl_mapping_legacy(KERNEL_MODE, CALLER).map(|v| v.bugcheck_args()),
            Some([0x2002, CALLER, u64::from(HIGH_PAGE_PRIORITY), 0])
        );
        assert_eq!(check_mdl_mapping_legacy(USER_MODE, CALLER), None);
    }
}
