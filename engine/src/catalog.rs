//! The hook catalog: the kernel APIs civ intercepts in target drivers, as data.
//!
//! A row names the API, how many arguments it takes, which of them carry the
//! value to check and the pool tag, and which predicate of [`crate::check`]
//! decides. Adding an API is adding a row; the handlers, the IAT planner and
//! `civctl scan` all read this table.

use crate::check::{self, Violation};
use crate::code::Code;

/// The module every catalog API is exported from.
pub const NTOSKRNL: &str = "ntoskrnl.exe";

/// How wide a C argument is: a ULONG or enum is 32 bits, and the upper half
/// of its register is undefined on x64, so it must be masked off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// CCHAR / KPROCESSOR_MODE.
    U8,
    /// ULONG, POOL_TYPE, MM_PAGE_PRIORITY.
    U32,
    /// POOL_FLAGS, pointers.
    U64,
}

/// One argument of a call: its zero-based position and its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// Zero-based position in the C prototype.
    pub index: u8,
    /// The argument's C width.
    pub width: Width,
}

impl Arg {
    const fn u32(index: u8) -> Arg {
        Arg {
            index,
            width: Width::U32,
        }
    }
    const fn u64(index: u8) -> Arg {
        Arg {
            index,
            width: Width::U64,
        }
    }
    const fn u8(index: u8) -> Arg {
        Arg {
            index,
            width: Width::U8,
        }
    }

    /// The argument's value out of the raw 64-bit argument slots, masked to
    /// its width; 0 when the slot does not exist.
    pub fn read(self, args: &[u64]) -> u64 {
        let raw = args.get(usize::from(self.index)).copied().unwrap_or(0);
        match self.width {
            Width::U8 => raw & 0xFF,
            Width::U32 => raw & 0xFFFF_FFFF,
            Width::U64 => raw,
        }
    }
}

/// Which predicate judges the call, and where its inputs are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A POOL_TYPE argument (0x2000).
    PoolType {
        /// The POOL_TYPE.
        pool_type: Arg,
        /// The pool tag, if the API takes one.
        tag: Option<Arg>,
    },
    /// POOL_FLAGS of ExAllocatePool2/3 (0x2000).
    PoolFlags {
        /// The POOL_FLAGS.
        flags: Arg,
        /// The pool tag.
        tag: Arg,
    },
    /// ExInitializeNPagedLookasideList's Flags (0x2000).
    NPagedLookasideFlags {
        /// The Flags.
        flags: Arg,
        /// The pool tag.
        tag: Arg,
    },
    /// A PAGE_* protection (0x2001).
    Protection {
        /// The protection.
        protect: Arg,
    },
    /// MmMapLockedPagesSpecifyCache's AccessMode and Priority (0x2002).
    MdlMapping {
        /// KPROCESSOR_MODE.
        access_mode: Arg,
        /// MM_PAGE_PRIORITY | MdlMapping*.
        priority: Arg,
    },
    /// MmMapLockedPages' AccessMode; it cannot ask for NX (0x2002).
    MdlMappingLegacy {
        /// KPROCESSOR_MODE.
        access_mode: Arg,
    },
    /// MmGetSystemRoutineAddress: not checked, but answered with civ's entry
    /// when the name is a hooked API.
    RoutineLookup,
}

/// One hooked API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The exporting module, lower case.
    pub module: &'static str,
    /// The export name.
    pub name: &'static str,
    /// How many arguments the C prototype has.
    pub arity: u8,
    /// How the call is judged.
    pub rule: Rule,
}

impl Hook {
    /// The DV code a violation of this API carries, if it can have one.
    pub const fn code(&self) -> Option<Code> {
        match self.rule {
            Rule::PoolType { .. } | Rule::PoolFlags { .. } | Rule::NPagedLookasideFlags { .. } => {
                Some(Code::ExecutePoolType)
            }
            Rule::Protection { .. } => Some(Code::ExecutePageProtection),
            Rule::MdlMapping { .. } | Rule::MdlMappingLegacy { .. } => {
                Some(Code::ExecutePageMapping)
            }
            Rule::RoutineLookup => None,
        }
    }

    /// Judges one call from its raw 64-bit argument slots (as many as the
    /// arity; missing slots read as 0).
    pub fn check(&self, args: &[u64], caller: u64) -> Option<Violation> {
        // Masked to 32 or 8 bits by `Arg::read`, so the casts lose nothing.
        let u32_of = |a: Arg| a.read(args) as u32;
        match self.rule {
            Rule::PoolType { pool_type, tag } => {
                check::check_pool_type(u32_of(pool_type), tag.map_or(0, u32_of), caller)
            }
            Rule::PoolFlags { flags, tag } => {
                check::check_pool_flags(flags.read(args), u32_of(tag), caller)
            }
            Rule::NPagedLookasideFlags { flags, tag } => {
                check::check_npaged_lookaside_flags(u32_of(flags), u32_of(tag), caller)
            }
            Rule::Protection { protect } => check::check_page_protection(u32_of(protect), caller),
            Rule::MdlMapping {
                access_mode,
                priority,
            } => check::check_mdl_mapping(access_mode.read(args) as u8, u32_of(priority), caller),
            Rule::MdlMappingLegacy { access_mode } => {
                check::check_mdl_mapping_legacy(access_mode.read(args) as u8, caller)
            }
            Rule::RoutineLookup => None,
        }
    }
}

const fn row(name: &'static str, arity: u8, rule: Rule) -> Hook {
    Hook {
        module: NTOSKRNL,
        name,
        arity,
        rule,
    }
}

/// How many APIs the catalog has.
pub const CATALOG_LEN: usize = 15;

/// The catalog (DESIGN.md's first set). The position of a row is its index
/// everywhere: entry stubs, originals, the log's `api`.
pub static CATALOG: [Hook; CATALOG_LEN] = [
    row(
        "ExAllocatePool",
        2,
        Rule::PoolType {
            pool_type: Arg::u32(0),
            tag: None,
        },
    ),
    row(
        "ExAllocatePoolWithTag",
        3,
        Rule::PoolType {
            pool_type: Arg::u32(0),
            tag: Some(Arg::u32(2)),
        },
    ),
    row(
        "ExAllocatePoolWithQuota",
        2,
        Rule::PoolType {
            pool_type: Arg::u32(0),
            tag: None,
        },
    ),
    row(
        "ExAllocatePoolWithQuotaTag",
        3,
        Rule::PoolType {
            pool_type: Arg::u32(0),
            tag: Some(Arg::u32(2)),
        },
    ),
    row(
        "ExAllocatePoolWithTagPriority",
        4,
        Rule::PoolType {
            pool_type: Arg::u32(0),
            tag: Some(Arg::u32(2)),
        },
    ),
    row(
        "ExAllocatePool2",
        3,
        Rule::PoolFlags {
            flags: Arg::u64(0),
            tag: Arg::u32(2),
        },
    ),
    row(
        "ExAllocatePool3",
        5,
        Rule::PoolFlags {
            flags: Arg::u64(0),
            tag: Arg::u32(2),
        },
    ),
    row(
        "ExInitializeNPagedLookasideList",
        7,
        Rule::NPagedLookasideFlags {
            flags: Arg::u32(3),
            tag: Arg::u32(5),
        },
    ),
    row(
        "ExInitializeLookasideListEx",
        8,
        Rule::PoolType {
            pool_type: Arg::u32(3),
            tag: Some(Arg::u32(6)),
        },
    ),
    row(
        "MmMapIoSpaceEx",
        3,
        Rule::Protection {
            protect: Arg::u32(2),
        },
    ),
    row(
        "MmAllocateContiguousNodeMemory",
        6,
        Rule::Protection {
            protect: Arg::u32(4),
        },
    ),
    row(
        "MmProtectMdlSystemAddress",
        2,
        Rule::Protection {
            protect: Arg::u32(1),
        },
    ),
    row(
        "MmMapLockedPagesSpecifyCache",
        6,
        Rule::MdlMapping {
            access_mode: Arg::u8(1),
            priority: Arg::u32(5),
        },
    ),
    row(
        "MmMapLockedPages",
        2,
        Rule::MdlMappingLegacy {
            access_mode: Arg::u8(1),
        },
    ),
    row("MmGetSystemRoutineAddress", 1, Rule::RoutineLookup),
];

/// The catalog row for an import, matching the module case-insensitively
/// (import tables spell it `NTOSKRNL.exe`, `ntoskrnl.exe`, ...) and the
/// name exactly, as the loader does.
pub fn find(module: &[u8], name: &[u8]) -> Option<&'static Hook> {
    CATALOG
        .iter()
        .find(|h| h.name.as_bytes() == name && h.module.as_bytes().eq_ignore_ascii_case(module))
}

/// The catalog row for a routine name asked of MmGetSystemRoutineAddress.
pub fn find_routine(name: &[u8]) -> Option<&'static Hook> {
    CATALOG.iter().find(|h| h.name.as_bytes() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{mdl, page, pool_flags, pool_type};

    const CALLER: u64 = 0x1_4000_1234;
    const TAG: u64 = 0x7476_6943; // 'Civt'
    /// Garbage the caller may leave in the upper half of a 32-bit argument.
    const HIGH: u64 = 0xDEAD_BEEF_0000_0000;

    fn hook(name: &str) -> &'static Hook {
        find_routine(name.as_bytes()).expect("in catalog")
    }

    /// For each row: the arguments of an executable call, what arg3/arg4 of
    /// the bug check must be, and the arguments of the NX twin.
    /// (API, executable call's arguments, arg3, arg4, NX call's arguments).
    type Case = (&'static str, [u64; 8], u64, u64, [u64; 8]);

    fn cases() -> std::vec::Vec<Case> {
        use pool_type::*;
        let nx = u64::from(NON_PAGED_POOL_NX);
        std::vec![
            (
                "ExAllocatePool",
                [HIGH, 64, 0, 0, 0, 0, 0, 0],
                0,
                0,
                [nx, 64, 0, 0, 0, 0, 0, 0]
            ),
            (
                "ExAllocatePoolWithTag",
                [HIGH | 4, 64, TAG, 0, 0, 0, 0, 0],
                4,
                TAG,
                [nx, 64, TAG, 0, 0, 0, 0, 0]
            ),
            (
                "ExAllocatePoolWithQuota",
                [2, 64, 0, 0, 0, 0, 0, 0],
                2,
                0,
                [1, 64, 0, 0, 0, 0, 0, 0]
            ),
            (
                "ExAllocatePoolWithQuotaTag",
                [0x8, 64, TAG, 0, 0, 0, 0, 0],
                8,
                TAG,
                [0x208, 64, TAG, 0, 0, 0, 0, 0]
            ),
            (
                "ExAllocatePoolWithTagPriority",
                [32, 64, TAG, 16, 0, 0, 0, 0],
                32,
                TAG,
                [0x220, 64, TAG, 16, 0, 0, 0, 0]
            ),
            (
                "ExAllocatePool2",
                [pool_flags::NON_PAGED_EXECUTE, 64, HIGH | TAG, 0, 0, 0, 0, 0],
                0x80,
                TAG,
                [pool_flags::NON_PAGED, 64, TAG, 0, 0, 0, 0, 0]
            ),
            (
                "ExAllocatePool3",
                [0x88, 64, TAG, 0, 0, 0, 0, 0],
                0x88,
                TAG,
                [0x48, 64, TAG, 0, 0, 0, 0, 0]
            ),
            (
                "ExInitializeNPagedLookasideList",
                [1, 0, 0, HIGH, 64, TAG, 0, 0],
                0,
                TAG,
                [1, 0, 0, 0x200, 64, TAG, 0, 0]
            ),
            (
                "ExInitializeLookasideListEx",
                [1, 0, 0, 0, 0, 64, TAG, 0],
                0,
                TAG,
                [1, 0, 0, nx, 0, 64, TAG, 0]
            ),
            (
                "MmMapIoSpaceEx",
                [
                    0xFED0_0000,
                    4096,
                    u64::from(page::EXECUTE_READWRITE | page::NOCACHE),
                    0,
                    0,
                    0,
                    0,
                    0
                ],
                0x240,
                0,
                [
                    0xFED0_0000,
                    4096,
                    u64::from(page::READWRITE | page::NOCACHE),
                    0,
                    0,
                    0,
                    0,
                    0
                ]
            ),
            (
                "MmAllocateContiguousNodeMemory",
                [4096, 0, !0, 0, u64::from(page::EXECUTE_READ), 0, 0, 0],
                0x20,
                0,
                [4096, 0, !0, 0, u64::from(page::READWRITE), 0, 0, 0]
            ),
            (
                "MmProtectMdlSystemAddress",
                [0x1000, HIGH | u64::from(page::EXECUTE), 0, 0, 0, 0, 0, 0],
                0x10,
                0,
                [0x1000, u64::from(page::READONLY), 0, 0, 0, 0, 0, 0]
            ),
            (
                "MmMapLockedPagesSpecifyCache",
                [
                    0x1000,
                    0xFF00,
                    1,
                    0,
                    0,
                    u64::from(mdl::NORMAL_PAGE_PRIORITY),
                    0,
                    0
                ],
                16,
                0,
                [
                    0x1000,
                    0,
                    1,
                    0,
                    0,
                    u64::from(mdl::NORMAL_PAGE_PRIORITY | mdl::MDL_MAPPING_NO_EXECUTE),
                    0,
                    0
                ]
            ),
            (
                "MmMapLockedPages",
                [0x1000, 0, 0, 0, 0, 0, 0, 0],
                32,
                0,
                [0x1000, 1, 0, 0, 0, 0, 0, 0]
            ),
        ]
    }

    #[test]
    fn every_checked_row_catches_executable_and_passes_nx() {
        let cases = cases();
        for h in CATALOG.iter().filter(|h| h.code().is_some()) {
            let (_, bad, arg3, arg4, good) = cases
                .iter()
                .find(|c| c.0 == h.name)
                .unwrap_or_else(|| panic!("no case for {}", h.name));
            let v = h.check(&bad[..usize::from(h.arity)], CALLER).expect(h.name);
            assert_eq!(v.code, h.code().unwrap(), "{}", h.name);
            assert_eq!(
                v.bugcheck_args(),
                [u64::from(v.code.value()), CALLER, *arg3, *arg4],
                "{}",
                h.name
            );
            assert_eq!(
                h.check(&good[..usize::from(h.arity)], CALLER),
                None,
                "{}",
                h.name
            );
        }
        assert_eq!(cases.len(), CATALOG.len() - 1);
    }

    #[test]
    fn rows_are_consistent() {
        for (i, h) in CATALOG.iter().enumerate() {
            assert!(h.arity >= 1 && h.arity <= 8, "{}", h.name);
            let args: &[Arg] = match h.rule {
                Rule::PoolType { pool_type, tag } => &[pool_type, tag.unwrap_or(pool_type)],
                Rule::PoolFlags { flags, tag } | Rule::NPagedLookasideFlags { flags, tag } => {
                    &[flags, tag]
                }
                Rule::Protection { protect } => &[protect],
                Rule::MdlMapping {
                    access_mode,
                    priority,
                } => &[access_mode, priority],
                Rule::MdlMappingLegacy { access_mode } => &[access_mode],
                Rule::RoutineLookup => &[],
            };
            for a in args {
                assert!(a.index < h.arity, "{} reads past its arity", h.name);
            }
            assert!(
                CATALOG[..i].iter().all(|o| o.name != h.name),
                "{} twice",
                h.name
            );
        }
    }

    #[test]
    fn lookup_is_case_insensitive_on_module_only() {
        assert!(find(b"NTOSKRNL.EXE", b"ExAllocatePoolWithTag").is_some());
        assert!(find(b"ntoskrnl.exe", b"exallocatepoolwithtag").is_none());
        assert!(find(b"hal.dll", b"ExAllocatePoolWithTag").is_none());
        assert!(find_routine(b"MmMapIoSpace").is_none());
    }

    #[test]
    fn short_argument_slice_reads_zero() {
        // A zero pool type is executable, so a missing slot must read as 0,
        // never panic.
        let h = hook("ExAllocatePoolWithTag");
        assert_eq!(h.check(&[], CALLER).map(|v| v.arg3), Some(0));
    }
}
