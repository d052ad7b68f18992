//! Reads civ's settings from its service key's Parameters subkey:
//! VerifyDriverLevel, VerifyDrivers, ViolationAction. Each value is read
//! whole, into pool sized by asking the kernel first; the raw values go to
//! the engine's settings parser, which never fails: absent or bad values
//! become safe defaults with a note. DriverEntry only (PASSIVE_LEVEL).

use super::ffi::{
    KEY_READ, KEY_VALUE_PARTIAL_INFORMATION, OBJ_KERNEL_CASE_INSENSITIVE, STATUS_BUFFER_OVERFLOW,
    STATUS_BUFFER_TOO_SMALL, STATUS_OBJECT_NAME_NOT_FOUND, ZwClose, ZwOpenKey, ZwQueryValueKey,
};
use alloc::vec::Vec;
use civ_engine::runtime;
use core::ffi::c_void;
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};

/// KEY_VALUE_PARTIAL_INFORMATION: TitleIndex, Type, DataLength, Data.
const DATA_OFFSET: usize = 12;
/// Longest value civ reads: 64 names of 64 characters take 8 KiB; a value
/// longer than this is not a setting, and is reported and ignored.
const MAX_VALUE: usize = 64 * 1024;
/// A value that keeps growing between the size query and the read.
const ATTEMPTS: usize = 3;

/// Why a value was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// Longer than [`MAX_VALUE`] (its length).
    TooLong(usize),
    /// No pool for it.
    NoMemory,
    /// The query failed with this status.
    Query(NTSTATUS),
}

/// One value: `Ok(None)` when absent, else its type and data.
fn value(key: HANDLE, name: &'static [u16]) -> Result<Option<(u32, Vec<u8>)>, ValueError> {
    let name = super::unicode(name);
    let mut needed = 0u32;
    // SAFETY: a size query: no buffer, `needed` receives the length.
    let status = unsafe {
        ZwQueryValueKey(
            key,
            &name,
            KEY_VALUE_PARTIAL_INFORMATION,
            core::ptr::null_mut(),
            0,
            &mut needed,
        )
    };
    for _ in 0..ATTEMPTS {
        match status {
            STATUS_OBJECT_NAME_NOT_FOUND => return Ok(None),
            STATUS_BUFFER_TOO_SMALL | STATUS_BUFFER_OVERFLOW => {}
            s if s < 0 => return Err(ValueError::Query(s)),
            _ => {}
        }
        let len = (needed as usize).max(DATA_OFFSET);
        if len > MAX_VALUE + DATA_OFFSET {
            return Err(ValueError::TooLong(len - DATA_OFFSET));
        }
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| ValueError::NoMemory)?;
        buf.resize(len, 0u8);
        let mut got = 0u32;
        // SAFETY: `buf` is writable for its length; `name` is valid.
        let status = unsafe {
            ZwQueryValueKey(
                key,
                &name,
                KEY_VALUE_PARTIAL_INFORMATION,
                buf.as_mut_ptr().cast::<c_void>(),
                len as u32,
                &mut got,
            )
        };
        if status == STATUS_BUFFER_OVERFLOW || status == STATUS_BUFFER_TOO_SMALL {
            // Written to since the size query: ask again with the new size.
            needed = got;
            continue;
        }
        if status < 0 {
            return Err(ValueError::Query(status));
        }
        let u32_at = |at: usize| {
            buf.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        let (typ, data_len) = (u32_at(4), u32_at(8) as usize);
        let end = DATA_OFFSET.saturating_add(data_len).min(buf.len());
        buf.truncate(end);
        buf.drain(..DATA_OFFSET.min(buf.len()));
        return Ok(Some((typ, buf)));
    }
    Err(ValueError::Query(STATUS_BUFFER_OVERFLOW))
}

/// A value for the settings parser; a value that could not be read is
/// reported and taken as absent.
fn read(key: HANDLE, name: &'static [u16], shown: &str) -> Option<(u32, Vec<u8>)> {
    match value(key, name) {
        Ok(v) => v,
        Err(ValueError::TooLong(n)) => {
            crate::log!("settings: {shown} is {n} bytes, over civ's limit of {MAX_VALUE}: ignored");
            None
        }
        Err(ValueError::NoMemory) => {
            crate::log!("settings: no memory to read {shown}: ignored");
            None
        }
        Err(ValueError::Query(s)) => {
            crate::log!("settings: cannot read {shown} ({s:#x}): ignored");
            None
        }
    }
}

/// Reads `<service key>\Parameters` into the settings in force; a missing
/// key leaves civ off. Returns false if the key could not be opened.
pub fn load_settings(service_key: &UNICODE_STRING) -> bool {
    // SAFETY: the registry path DriverEntry received is valid while it runs.
    let key_units = unsafe { super::units(service_key) };
    let suffix = crate::utf16!("\\Parameters");
    let mut path = Vec::new();
    if path
        .try_reserve_exact(key_units.len() + suffix.len())
        .is_err()
    {
        crate::log!("settings: no memory for the key path: civ checks nothing");
        return false;
    }
    path.extend_from_slice(key_units);
    path.extend_from_slice(suffix);
    let Ok(bytes) = u16::try_from(path.len() * 2) else {
        crate::log!("settings: the service key path is too long: civ checks nothing");
        return false;
    };
    let name = UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
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
        crate::log!("no Parameters key ({status:#x}): civ checks nothing until civctl enables it");
        return false;
    }
    let level = read(key, crate::utf16!("VerifyDriverLevel"), "VerifyDriverLevel");
    let drivers = read(key, crate::utf16!("VerifyDrivers"), "VerifyDrivers");
    let action = read(key, crate::utf16!("ViolationAction"), "ViolationAction");
    // SAFETY: a handle ZwOpenKey gave us.
    unsafe { ZwClose(key) };
    fn raw(v: &Option<(u32, Vec<u8>)>) -> Option<(u32, &[u8])> {
        v.as_ref().map(|(t, d)| (*t, d.as_slice()))
    }
    // Parsed in place: the settings are too big to copy on a kernel stack.
    runtime::update_settings(|s| s.parse_into(raw(&level), raw(&drivers), raw(&action)));
    true
}
