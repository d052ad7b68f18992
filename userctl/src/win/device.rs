//! civ's control device, `\\.\CodeIntegrityVerifier`: opened with
//! `CreateFileW`, spoken to with buffered `DeviceIoControl`. The bytes are
//! the engine's protocol; this file only moves them.

use super::{os_error, wide};
use crate::control::host::{Device, HostError};
use civ_engine::protocol::{self, Kind};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, GENERIC_READ, GENERIC_WRITE,
    GetLastError, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::DeviceIoControl;

/// ERROR_REVISION_MISMATCH: STATUS_REVISION_MISMATCH as Win32 reports it.
const ERROR_REVISION_MISMATCH: u32 = 1306;

/// An open handle to civ.sys's device, closed on drop.
#[derive(Debug)]
pub struct CivDevice(HANDLE);

impl CivDevice {
    /// Opens the device for reading and writing; `None` when civ.sys does
    /// not run (no such device).
    pub fn open() -> Result<Option<CivDevice>, HostError> {
        let path = wide(protocol::USER_PATH);
        // SAFETY: `path` is a NUL-terminated UTF-16 string that outlives the
        // call; no security attributes, no template.
        let handle = unsafe {
            CreateFileW(
                path.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL,
                std::ptr::null_mut(),
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            // SAFETY: no other call since CreateFileW.
            let code = unsafe { GetLastError() };
            return match code {
                ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => Ok(None),
                code => Err(os_error(
                    format!("cannot open {}", protocol::USER_PATH),
                    code,
                )),
            };
        }
        Ok(Some(CivDevice(handle)))
    }
}

impl Device for CivDevice {
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, HostError> {
        let (Ok(in_len), Ok(out_len)) = (u32::try_from(input.len()), u32::try_from(output.len()))
        else {
            return Err(HostError::Other("an IOCTL buffer over 4 GiB".into()));
        };
        let mut returned = 0u32;
        // SAFETY: the handle is open; `input` is readable for `in_len` bytes
        // and `output` writable for `out_len`, both live for the call; a
        // synchronous handle, so no OVERLAPPED.
        let ok = unsafe {
            DeviceIoControl(
                self.0,
                code,
                input.as_ptr().cast(),
                in_len,
                output.as_mut_ptr().cast(),
                out_len,
                &mut returned,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            // SAFETY: no other call since DeviceIoControl.
            let error = unsafe { GetLastError() };
            let kind = Kind::from_ioctl(code).map_or("an IOCTL", Kind::name);
            return Err(match error {
                ERROR_REVISION_MISMATCH => HostError::Other(format!(
                    "civ.sys refused {kind}: it speaks another protocol version than this civctl ({}); install a civctl and a civ.sys of the same release",
                    protocol::PROTOCOL_VERSION
                )),
                e => os_error(format!("civ.sys refused {kind}"), e),
            });
        }
        Ok((returned as usize).min(output.len()))
    }
}

impl Drop for CivDevice {
    fn drop(&mut self) {
        // SAFETY: a handle CreateFileW opened, closed once.
        unsafe { CloseHandle(self.0) };
    }
}
