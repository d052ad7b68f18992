//! Import call optimization: does an image carry import-control-transfer
//! entries in its dynamic value relocation table (DVRT)?
//!
//! Such entries (from MSVC's retpoline and import-call-optimization
//! builds) let the kernel's loader rewrite the image's `call [IAT]` sites
//! into direct calls of the imported routine. Those calls then never read
//! the IAT, so an IAT hook (civ's, Driver Verifier's thunks are applied
//! differently) does not see them. civ reports such images, at load and in
//! `civctl scan`, rather than claiming to see every call.
//!
//! The table is found through the load configuration directory
//! (`DynamicValueRelocTableOffset` and `DynamicValueRelocTableSection`, or
//! the older `DynamicValueRelocTable` address) and read as untrusted bytes.

use crate::pe::{PeError, PeImage};
use core::mem::offset_of;
use object::pe::{ImageLoadConfigDirectory32, ImageLoadConfigDirectory64};

/// IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG.
pub const DIR_LOAD_CONFIG: usize = 10;
/// IMAGE_DYNAMIC_RELOCATION_GUARD_IMPORT_CONTROL_TRANSFER (x64).
pub const IMPORT_CONTROL_TRANSFER: u64 = 3;
/// IMAGE_DYNAMIC_RELOCATION_ARM64_KERNEL_IMPORT_CALL_TRANSFER.
pub const ARM64_KERNEL_IMPORT_CALL_TRANSFER: u64 = 8;
/// Most DVRT entries read: real images have a handful.
const MAX_ENTRIES: usize = 256;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The DVRT's RVA, if the load configuration names one.
fn table_rva(image: &PeImage<'_>) -> Result<Option<u32>, PeError> {
    let Some((rva, _)) = image.data_directory(DIR_LOAD_CONFIG) else {
        return Ok(None);
    };
    let bytes = image.bytes_from(rva, "load configuration")?;
    // The structure's own Size says which fields it has.
    let declared = u32_at(bytes, 0).ok_or(PeError::BadRva {
        what: "load configuration",
        rva,
    })? as usize;
    let config = bytes.get(..declared.min(bytes.len())).unwrap_or(bytes);
    let (offset_at, section_at, address) = if image.is_64() {
        (
            offset_of!(ImageLoadConfigDirectory64, dynamic_value_reloc_table_offset),
            offset_of!(
                ImageLoadConfigDirectory64,
                dynamic_value_reloc_table_section
            ),
            u64_at(
                config,
                offset_of!(ImageLoadConfigDirectory64, dynamic_value_reloc_table),
            ),
        )
    } else {
        (
            offset_of!(ImageLoadConfigDirectory32, dynamic_value_reloc_table_offset),
            offset_of!(
                ImageLoadConfigDirectory32,
                dynamic_value_reloc_table_section
            ),
            u32_at(
                config,
                offset_of!(ImageLoadConfigDirectory32, dynamic_value_reloc_table),
            )
            .map(u64::from),
        )
    };
    let in_section = match (u32_at(config, offset_at), u16_at(config, section_at)) {
        (Some(offset), Some(section)) if section != 0 => image
            .sections()
            .nth(usize::from(section) - 1)
            .and_then(|s| s.rva().checked_add(offset)),
        _ => None,
    };
    let by_address = address
        .filter(|&a| a != 0)
        .and_then(|a| a.checked_sub(image.image_base()))
        .and_then(|r| u32::try_from(r).ok());
    Ok(in_section.or(by_address))
}

/// Does the image have import-control-transfer dynamic relocations (x64's
/// or ARM64's) with at least one fixup?
pub fn has_import_call_transfers(image: &PeImage<'_>) -> Result<bool, PeError> {
    let Some(rva) = table_rva(image)? else {
        return Ok(false);
    };
    let what = "dynamic value relocation table";
    let bad = PeError::BadRva { what, rva };
    let bytes = image.bytes_from(rva, what)?;
    let (version, size) = (u32_at(bytes, 0).ok_or(bad)?, u32_at(bytes, 4).ok_or(bad)?);
    let table = bytes
        .get(8..8usize.saturating_add(size as usize))
        .ok_or(bad)?;
    let mut at = 0usize;
    for _ in 0..MAX_ENTRIES {
        if at >= table.len() {
            break;
        }
        let (symbol, fixups, next) = match (version, image.is_64()) {
            // IMAGE_DYNAMIC_RELOCATION64 / 32: Symbol, BaseRelocSize, relocs.
            (1, true) => {
                let size = u32_at(table, at + 8).ok_or(bad)? as usize;
                (u64_at(table, at).ok_or(bad)?, size, 12 + size)
            }
            (1, false) => {
                let size = u32_at(table, at + 4).ok_or(bad)? as usize;
                (u64::from(u32_at(table, at).ok_or(bad)?), size, 8 + size)
            }
            // IMAGE_DYNAMIC_RELOCATION64_V2 / 32_V2: HeaderSize,
            // FixupInfoSize, Symbol, ...
            (2, is_64) => {
                let header = u32_at(table, at).ok_or(bad)? as usize;
                let fixups = u32_at(table, at + 4).ok_or(bad)? as usize;
                let symbol = if is_64 {
                    u64_at(table, at + 8).ok_or(bad)?
                } else {
                    u64::from(u32_at(table, at + 8).ok_or(bad)?)
                };
                (symbol, fixups, header.saturating_add(fixups))
            }
            _ => return Ok(false),
        };
        if matches!(
            symbol,
            IMPORT_CONTROL_TRANSFER | ARM64_KERNEL_IMPORT_CALL_TRANSFER
        ) && fixups > 0
        {
            return Ok(true);
        }
        if next == 0 {
            break;
        }
        at = at.saturating_add(next);
    }
    Ok(false)
}
