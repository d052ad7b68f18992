//! Reads civ's settings from its service key's Parameters subkey:
//! VerifyDriverLevel, VerifyDrivers, ViolationAction. The raw values go to
//! the engine's settings parser, which never fails: absent or bad values
//! become safe defaults with a note.

use super::ffi::{
    KEY_READ, KEY_VALUE_PARTIAL_INFORMATION, OBJ_KERNEL_CASE_INSENSITIVE, STATUS_BUFFER_OVERFLOW,
    ZwClose, ZwOpenKey, ZwQueryValueKey,
};
use civ_engine::settings::Settings;
use civ_engine::sync::SpinLock;
use core::ffi::c_void;
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Win32::Foundation::{HANDLE, UNICODE_STRING};

/// Room for the key path and for each value (VerifyDrivers: 64 names).
const PATH_UNITS: usize = 512;
const VALUE_BYTES: usize = 16 * 1024;
/// KEY_VALUE_PARTIAL_INFORMATION: TitleIndex, Type, DataLength, Data.
const DATA_OFFSET: usize = 12;

struct Buffers {
    path: [u16; PATH_UNITS],
    values: [[u8; VALUE_BYTES]; 3],
}

/// Only DriverEntry reads the registry; the lock keeps the buffers
/// (too big for a kernel stack) single-user anyway.
static BUFFERS: SpinLock<Buffers> = SpinLock::new(Buffers {
    path: [0; PATH_UNITS],
    values: [[0; VALUE_BYTES]; 3],
});

/// Why the key could not be read.
#[derive(Clone, Copy, Debug)]
pub struct RegistryError(pub i32);

fn value<'a>(
    key: HANDLE,
    name: &'static [u16],
    buf: &'a mut [u8; VALUE_BYTES],
) -> Option<(u32, &'a [u8])> {
    let name = super::unicode(name);
    let mut got = 0u32;
    // SAFETY: `buf` is writable for its length; `name` is a valid string.
    let status = unsafe {
        ZwQueryValueKey(
            key,
            &name,
            KEY_VALUE_PARTIAL_INFORMATION,
            buf.as_mut_ptr().cast::<c_void>(),
            VALUE_BYTES as u32,
            &mut got,
        )
    };
    if status < 0 {
        return None;
    }
    let u32_at = |at: usize| {
        buf.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (typ, len) = (u32_at(4), u32_at(8) as usize);
    if status == STATUS_BUFFER_OVERFLOW {
        crate::log!(
            "registry value longer than {} bytes: only its start is read",
            VALUE_BYTES - DATA_OFFSET
        );
    }
    let end = (DATA_OFFSET + len).min(VALUE_BYTES);
    Some((typ, buf.get(DATA_OFFSET..end).unwrap_or(&[])))
}

/// Reads `<service key>\Parameters`; a missing key gives civ's defaults.
pub fn read_settings(service_key: &UNICODE_STRING) -> Result<Settings, RegistryError> {
    BUFFERS.with(|b| {
        // SAFETY: the registry path DriverEntry received is valid while it runs.
        let key_units = unsafe { super::units(service_key) };
        let suffix = crate::utf16!("\\Parameters");
        let total = key_units.len() + suffix.len();
        let path = b.path.get_mut(..total).ok_or(RegistryError(-1))?;
        let (head, tail) = path
            .split_at_mut_checked(key_units.len())
            .ok_or(RegistryError(-1))?;
        head.copy_from_slice(key_units);
        tail.copy_from_slice(suffix);
        let name = UNICODE_STRING {
            Length: (total * 2) as u16,
            MaximumLength: (total * 2) as u16,
            Buffer: path.as_mut_ptr(),
        };
        let attributes = OBJECT_ATTRIBUTES {
            Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: core::ptr::null_mut(),
            ObjectName: &name,
            Attributes: OBJ_KERNEL_CASE_INSENSITIVE,
            SecurityDescriptor: core::ptr::null(),
            SecurityQualityOfService: core::ptr::null(),
        };
        let mut key: HANDLE = core::ptr::null_mut();
        // SAFETY: valid attributes naming a key path in a live buffer.
        let status = unsafe { ZwOpenKey(&mut key, KEY_READ, &attributes) };
        if status < 0 {
            crate::log!(
                "no Parameters key ({status:#x}): civ checks nothing until civctl enables it"
            );
            return Ok(Settings::EMPTY);
        }
        let [level, drivers, action] = &mut b.values;
        let settings = Settings::parse(
            value(key, crate::utf16!("VerifyDriverLevel"), level),
            value(key, crate::utf16!("VerifyDrivers"), drivers),
            value(key, crate::utf16!("ViolationAction"), action),
        );
        // SAFETY: a handle ZwOpenKey gave us.
        unsafe { ZwClose(key) };
        Ok(settings)
    })
}
