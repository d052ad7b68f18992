//! The loaded kernel modules, as `ZwQuerySystemInformation(SystemModule-
//! Information)` returns them: civ hooks targets that loaded before it
//! started from this list.
//!
//! The buffer is an RTL_PROCESS_MODULES: a ULONG count, then (8-aligned)
//! that many RTL_PROCESS_MODULE_INFORMATION records of 296 bytes. The list
//! is read as untrusted bytes; an entry is only a claim: the driver must
//! check an image is really mapped at the base before reading it (Wine,
//! for one, answers with a made-up list).

use crate::path::file_name;

/// SystemModuleInformation.
pub const SYSTEM_MODULE_INFORMATION: u32 = 11;
/// Size of RTL_PROCESS_MODULE_INFORMATION on x64.
pub const RECORD_SIZE: usize = 296;
/// Offset of the first record.
pub const RECORDS_OFFSET: usize = 8;
const PATH_LEN: usize = 256;

/// One loaded module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// ImageBase.
    pub base: u64,
    /// ImageSize.
    pub size: u32,
    /// FullPathName, up to its NUL (e.g. `\SystemRoot\system32\drivers\x.sys`).
    pub path: &'a [u8],
    /// The file name part of `path`.
    pub file_name: &'a [u8],
}

/// Why a module list could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModulesError {
    /// Shorter than its count says.
    Truncated {
        /// NumberOfModules.
        count: u32,
        /// The buffer's length.
        len: usize,
    },
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

/// Calls `f` for each module of the list.
pub fn for_each_module<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(Module<'a>),
) -> Result<(), ModulesError> {
    let count = u32_at(buf, 0);
    let need = (count as usize)
        .checked_mul(RECORD_SIZE)
        .and_then(|n| n.checked_add(RECORDS_OFFSET));
    if need.is_none_or(|n| n > buf.len()) {
        return Err(ModulesError::Truncated {
            count,
            len: buf.len(),
        });
    }
    for i in 0..count as usize {
        let Some(r) =
            buf.get(RECORDS_OFFSET + i * RECORD_SIZE..RECORDS_OFFSET + (i + 1) * RECORD_SIZE)
        else {
            break;
        };
        // Section (8), MappedBase (8), ImageBase (8), ImageSize (4), Flags (4),
        // LoadOrderIndex, InitOrderIndex, LoadCount, OffsetToFileName (2 each),
        // FullPathName[256].
        let base = u64_at(r, 16);
        let size = u32_at(r, 24);
        let offset_to_file_name = usize::from(u16::from_le_bytes([r[38], r[39]]));
        let raw = r.get(40..40 + PATH_LEN).unwrap_or(&[]);
        let path = raw
            .get(..raw.iter().position(|&b| b == 0).unwrap_or(raw.len()))
            .unwrap_or(&[]);
        let file_name = path
            .get(offset_to_file_name..)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| file_name(path));
        f(Module {
            base,
            size,
            path,
            file_name,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A list as Windows lays it out, built field by field.
    fn list(entries: &[(u64, u32, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((entries.len() as u32).to_le_bytes());
        b.extend([0u8; 4]);
        for (i, (base, size, path)) in entries.iter().enumerate() {
            let mut r = [0u8; RECORD_SIZE];
            r[8..16].copy_from_slice(&base.to_le_bytes()); // MappedBase
            r[16..24].copy_from_slice(&base.to_le_bytes());
            r[24..28].copy_from_slice(&size.to_le_bytes());
            r[32..34].copy_from_slice(&(i as u16).to_le_bytes());
            let name_at = path.rfind('\\').map_or(0, |p| p + 1) as u16;
            r[38..40].copy_from_slice(&name_at.to_le_bytes());
            r[40..40 + path.len()].copy_from_slice(path.as_bytes());
            b.extend(r);
        }
        b
    }

    #[test]
    fn reads_a_windows_style_list() {
        let b = list(&[
            (
                0xFFFF_F800_0000_0000,
                0x0100_0000,
                "\\SystemRoot\\system32\\ntoskrnl.exe",
            ),
            (
                0xFFFF_F801_2000_0000,
                0x8000,
                "\\SystemRoot\\System32\\drivers\\WinDivert64.sys",
            ),
        ]);
        let mut got = Vec::new();
        for_each_module(&b, |m| got.push(m)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].base, 0xFFFF_F801_2000_0000);
        assert_eq!(got[1].size, 0x8000);
        assert_eq!(got[1].file_name, b"WinDivert64.sys");
        assert_eq!(got[0].path, b"\\SystemRoot\\system32\\ntoskrnl.exe");
    }

    #[test]
    fn wine_style_fake_list_parses_but_is_only_a_claim() {
        // Wine 8 answers ntoskrnl.exe, hal.dll, mountmgr.sys at made-up bases.
        let b = list(&[
            (
                0x1000_0000,
                0x20_0000,
                "\\SystemRoot\\system32\\ntoskrnl.exe",
            ),
            (0x1020_0000, 0x20_0000, "\\SystemRoot\\system32\\hal.dll"),
            (
                0x1040_0000,
                0x20_0000,
                "\\SystemRoot\\system32\\drivers\\mountmgr.sys",
            ),
        ]);
        let mut names = Vec::new();
        for_each_module(&b, |m| names.push(m.file_name.to_vec())).unwrap();
        assert_eq!(
            names,
            [
                b"ntoskrnl.exe".to_vec(),
                b"hal.dll".to_vec(),
                b"mountmgr.sys".to_vec()
            ]
        );
    }

    #[test]
    fn short_or_lying_buffers_are_errors() {
        let mut b = list(&[(1, 2, "a.sys")]);
        b[0] = 2; // claims two records, holds one
        assert!(matches!(
            for_each_module(&b, |_| {}),
            Err(ModulesError::Truncated { count: 2, .. })
        ));
        assert!(for_each_module(&[], |_| {}).is_err());
        let mut b = list(&[(1, 2, "")]);
        b[RECORDS_OFFSET + 38] = 0xFF; // OffsetToFileName past the path
        let mut n = Vec::new();
        for_each_module(&b, |m| n.push(m.file_name.len())).unwrap();
        assert_eq!(n, [0]);
        // A path with no NUL in 256 bytes is cut at 256.
        let mut b = list(&[(1, 2, "x")]);
        b[RECORDS_OFFSET + 40..RECORDS_OFFSET + 296].fill(b'a');
        for_each_module(&b, |m| assert_eq!(m.path.len(), 256)).unwrap();
        assert!(for_each_module(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0], |_| {}).is_err());
    }
}
