//! Only SYSTEM and Administrators may open civ's control device: the same
//! rule as SDDL `D:P(A;;GA;;;SY)(A;;GA;;;BA)`, built with Rtl* calls since
//! IoCreateDeviceSecure lives in a static library (wdmsec.lib) no Linux
//! build can link.

use super::ffi::{
    RtlAddAccessAllowedAce, RtlCreateAcl, RtlCreateSecurityDescriptor,
    RtlSetDaclSecurityDescriptor, ZwClose, ZwSetSecurityObject,
};
use core::ffi::c_void;
use windows_sys::Wdk::Foundation::DEVICE_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::ObOpenObjectByPointer;
use windows_sys::Win32::Foundation::HANDLE;

/// S-1-5-18, LocalSystem.
const SID_SYSTEM: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
/// S-1-5-32-544, BUILTIN\Administrators.
const SID_ADMINS: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0];
const GENERIC_ALL: u32 = 0x1000_0000;
const WRITE_DAC: u32 = 0x0004_0000;
const DACL_SECURITY_INFORMATION: u32 = 4;
const OBJ_KERNEL_HANDLE: u32 = 0x200;

#[repr(C, align(8))]
struct Aligned<const N: usize>([u8; N]);

/// Applies the admin-only DACL to the device; returns the first failing
/// NTSTATUS (the device stays with the default descriptor then).
pub fn restrict_to_admins(device: *mut DEVICE_OBJECT) -> Result<(), i32> {
    let mut sd = Aligned::<64>([0; 64]);
    let mut acl = Aligned::<64>([0; 64]);
    let sd_ptr = sd.0.as_mut_ptr().cast::<c_void>();
    let acl_ptr = acl.0.as_mut_ptr().cast::<c_void>();
    let check = |s: i32| if s < 0 { Err(s) } else { Ok(()) };
    // SAFETY: the buffers are 8-aligned, large enough (SD 40 bytes, ACL 8 +
    // two ACEs of 20 and 24 bytes), and live until ZwSetSecurityObject has
    // copied the descriptor.
    unsafe {
        check(RtlCreateSecurityDescriptor(sd_ptr, 1))?;
        check(RtlCreateAcl(acl_ptr, 64, 2))?;
        check(RtlAddAccessAllowedAce(
            acl_ptr,
            2,
            GENERIC_ALL,
            SID_SYSTEM.as_ptr().cast(),
        ))?;
        check(RtlAddAccessAllowedAce(
            acl_ptr,
            2,
            GENERIC_ALL,
            SID_ADMINS.as_ptr().cast(),
        ))?;
        check(RtlSetDaclSecurityDescriptor(sd_ptr, 1, acl_ptr, 0))?;
        let mut handle: HANDLE = core::ptr::null_mut();
        check(ObOpenObjectByPointer(
            device.cast::<c_void>(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null(),
            WRITE_DAC,
            0,
            0,
            &mut handle,
        ))?;
        let status = ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION, sd_ptr);
        ZwClose(handle);
        check(status)
    }
}
