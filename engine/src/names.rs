//! Human names for the values a violation carries, as the WDK headers spell
//! them: `NonPagedPoolCacheAligned | POOL_RAISE_IF_ALLOCATION_FAILURE`,
//! `PAGE_EXECUTE_READWRITE | PAGE_NOCACHE`, `NormalPagePriority`. Bits with
//! no name are printed in hex, never dropped.

use crate::check::{mdl, page, pool_flags, pool_type};
use core::fmt;

/// Writes `names` of the set bits of `value`, then what is left in hex.
fn write_bits(
    f: &mut fmt::Formatter<'_>,
    mut first: bool,
    value: u64,
    names: &[(u64, &str)],
) -> fmt::Result {
    let mut rest = value;
    for &(bit, name) in names {
        if value & bit == bit && bit != 0 {
            f.write_str(if first { "" } else { " | " })?;
            f.write_str(name)?;
            rest &= !bit;
            first = false;
        }
    }
    // A value with no bits at all still prints, as 0x0, when nothing came before.
    if rest != 0 || first {
        f.write_str(if first { "" } else { " | " })?;
        write!(f, "{rest:#x}")?;
    }
    Ok(())
}

/// A POOL_TYPE with its modifiers, named.
#[derive(Clone, Copy, Debug)]
pub struct PoolTypeName(pub u32);

impl fmt::Display for PoolTypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let nx = v & pool_type::POOL_NX_ALLOCATION != 0;
        let session = v & pool_type::SESSION != 0;
        let base = v & 0x7;
        let name = match (base, nx, session) {
            (0, false, false) => "NonPagedPool",
            (1, false, false) => "PagedPool",
            (2, false, false) => "NonPagedPoolMustSucceed",
            (3, false, false) => "DontUseThisType",
            (4, false, false) => "NonPagedPoolCacheAligned",
            (5, false, false) => "PagedPoolCacheAligned",
            (6, false, false) => "NonPagedPoolCacheAlignedMustS",
            (7, false, false) => "MaxPoolType",
            (0, false, true) => "NonPagedPoolSession",
            (1, false, true) => "PagedPoolSession",
            (2, false, true) => "NonPagedPoolMustSucceedSession",
            (3, false, true) => "DontUseThisTypeSession",
            (4, false, true) => "NonPagedPoolCacheAlignedSession",
            (5, false, true) => "PagedPoolCacheAlignedSession",
            (6, false, true) => "NonPagedPoolCacheAlignedMustSSession",
            (0, true, false) => "NonPagedPoolNx",
            (4, true, false) => "NonPagedPoolNxCacheAligned",
            (0, true, true) => "NonPagedPoolSessionNx",
            _ => "",
        };
        let mut consumed = base | if session { pool_type::SESSION } else { 0 };
        if nx && !name.is_empty() {
            consumed |= pool_type::POOL_NX_ALLOCATION;
        }
        if name.is_empty() {
            // An NX or odd variant with no name of its own: base name plus the bits.
            write!(f, "{}", PoolTypeName(base | (v & pool_type::SESSION)))?;
        } else {
            f.write_str(name)?;
        }
        write_bits(
            f,
            false,
            u64::from(v & !consumed),
            &[
                (
                    u64::from(pool_type::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE),
                    "POOL_QUOTA_FAIL_INSTEAD_OF_RAISE",
                ),
                (
                    u64::from(pool_type::POOL_RAISE_IF_ALLOCATION_FAILURE),
                    "POOL_RAISE_IF_ALLOCATION_FAILURE",
                ),
                (
                    u64::from(pool_type::POOL_COLD_ALLOCATION),
                    "POOL_COLD_ALLOCATION",
                ),
                (
                    u64::from(pool_type::POOL_NX_ALLOCATION),
                    "POOL_NX_ALLOCATION",
                ),
                (
                    u64::from(pool_type::POOL_ZERO_ALLOCATION),
                    "POOL_ZERO_ALLOCATION",
                ),
            ],
        )
    }
}

/// POOL_FLAGS of ExAllocatePool2/3, named.
#[derive(Clone, Copy, Debug)]
pub struct PoolFlagsName(pub u64);

impl fmt::Display for PoolFlagsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use pool_flags::*;
        write_bits(
            f,
            true,
            self.0,
            &[
                (USE_QUOTA, "POOL_FLAG_USE_QUOTA"),
                (UNINITIALIZED, "POOL_FLAG_UNINITIALIZED"),
                (SESSION, "POOL_FLAG_SESSION"),
                (CACHE_ALIGNED, "POOL_FLAG_CACHE_ALIGNED"),
                (RAISE_ON_FAILURE, "POOL_FLAG_RAISE_ON_FAILURE"),
                (NON_PAGED, "POOL_FLAG_NON_PAGED"),
                (NON_PAGED_EXECUTE, "POOL_FLAG_NON_PAGED_EXECUTE"),
                (PAGED, "POOL_FLAG_PAGED"),
                (SPECIAL_POOL, "POOL_FLAG_SPECIAL_POOL"),
            ],
        )
    }
}

/// A PAGE_* protection with its modifiers, named.
#[derive(Clone, Copy, Debug)]
pub struct ProtectionName(pub u32);

impl fmt::Display for ProtectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use page::*;
        write_bits(
            f,
            true,
            u64::from(self.0),
            &[
                (u64::from(NOACCESS), "PAGE_NOACCESS"),
                (u64::from(READONLY), "PAGE_READONLY"),
                (u64::from(READWRITE), "PAGE_READWRITE"),
                (u64::from(WRITECOPY), "PAGE_WRITECOPY"),
                (u64::from(EXECUTE), "PAGE_EXECUTE"),
                (u64::from(EXECUTE_READ), "PAGE_EXECUTE_READ"),
                (u64::from(EXECUTE_READWRITE), "PAGE_EXECUTE_READWRITE"),
                (u64::from(EXECUTE_WRITECOPY), "PAGE_EXECUTE_WRITECOPY"),
                (u64::from(GUARD), "PAGE_GUARD"),
                (u64::from(NOCACHE), "PAGE_NOCACHE"),
                (u64::from(WRITECOMBINE), "PAGE_WRITECOMBINE"),
            ],
        )
    }
}

/// An MM_PAGE_PRIORITY OR'd with MdlMapping* bits, named.
#[derive(Clone, Copy, Debug)]
pub struct PriorityName(pub u32);

impl fmt::Display for PriorityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use mdl::*;
        let flags = MDL_MAPPING_NO_WRITE | MDL_MAPPING_NO_EXECUTE | MDL_MAPPING_WITH_GUARD_PTES;
        let priority = self.0 & !flags;
        match priority {
            LOW_PAGE_PRIORITY => f.write_str("LowPagePriority")?,
            NORMAL_PAGE_PRIORITY => f.write_str("NormalPagePriority")?,
            HIGH_PAGE_PRIORITY => f.write_str("HighPagePriority")?,
            other => write!(f, "{other:#x}")?,
        }
        write_bits(
            f,
            false,
            u64::from(self.0 & flags),
            &[
                (u64::from(MDL_MAPPING_NO_WRITE), "MdlMappingNoWrite"),
                (u64::from(MDL_MAPPING_NO_EXECUTE), "MdlMappingNoExecute"),
                (
                    u64::from(MDL_MAPPING_WITH_GUARD_PTES),
                    "MdlMappingWithGuardPtes",
                ),
            ],
        )
    }
}

/// A pool tag as the four characters drivers write it in (`'Civt'`), with
/// unprintable bytes shown as `.`.
#[derive(Clone, Copy, Debug)]
pub struct TagName(pub u32);

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.to_le_bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn pool_types() {
        assert_eq!(PoolTypeName(0).to_string(), "NonPagedPool");
        assert_eq!(PoolTypeName(0x200).to_string(), "NonPagedPoolNx");
        assert_eq!(
            PoolTypeName(0x204).to_string(),
            "NonPagedPoolNxCacheAligned"
        );
        assert_eq!(PoolTypeName(0x220).to_string(), "NonPagedPoolSessionNx");
        assert_eq!(
            PoolTypeName(38).to_string(),
            "NonPagedPoolCacheAlignedMustSSession"
        );
        assert_eq!(
            PoolTypeName(4 | 0x10).to_string(),
            "NonPagedPoolCacheAligned | POOL_RAISE_IF_ALLOCATION_FAILURE"
        );
        assert_eq!(
            PoolTypeName(0x202).to_string(),
            "NonPagedPoolMustSucceed | POOL_NX_ALLOCATION"
        );
        assert_eq!(
            PoolTypeName(0x400 | 0x800).to_string(),
            "NonPagedPool | POOL_ZERO_ALLOCATION | 0x800"
        );
    }

    #[test]
    fn flags_protections_priorities_tags() {
        assert_eq!(
            PoolFlagsName(0x80).to_string(),
            "POOL_FLAG_NON_PAGED_EXECUTE"
        );
        assert_eq!(
            PoolFlagsName(0x41).to_string(),
            "POOL_FLAG_USE_QUOTA | POOL_FLAG_NON_PAGED"
        );
        assert_eq!(PoolFlagsName(0).to_string(), "0x0");
        assert_eq!(
            PoolFlagsName(0x1000_0000_0000).to_string(),
            "0x100000000000"
        );
        assert_eq!(
            ProtectionName(0x240).to_string(),
            "PAGE_EXECUTE_READWRITE | PAGE_NOCACHE"
        );
        assert_eq!(PriorityName(16).to_string(), "NormalPagePriority");
        assert_eq!(
            PriorityName(0x4000_0020).to_string(),
            "HighPagePriority | MdlMappingNoExecute"
        );
        assert_eq!(PriorityName(7).to_string(), "0x7");
        assert_eq!(TagName(u32::from_le_bytes(*b"Civt")).to_string(), "Civt");
        assert_eq!(TagName(0x0001_4141).to_string(), "AA..");
    }
}
