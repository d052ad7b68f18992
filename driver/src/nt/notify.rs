//! The load-image notification: the kernel calls civ after it maps a
//! driver image and before the driver's entry point runs, at PASSIVE_LEVEL.
//! Only kernel images (ProcessId 0) go on to civ.

use windows_sys::Wdk::System::SystemServices::{
    IMAGE_INFO, PsRemoveLoadImageNotifyRoutine, PsSetLoadImageNotifyRoutine,
};
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};

/// ImageSignatureLevel: bits 12..16 of IMAGE_INFO.Properties.
fn signature_level(properties: u32) -> u8 {
    ((properties >> 12) & 0xF) as u8
}

unsafe extern "system" fn on_image_load(
    name: *const UNICODE_STRING,
    process: HANDLE,
    info: *const IMAGE_INFO,
) {
    if !process.is_null() {
        return;
    }
    // SAFETY: the kernel passes a valid IMAGE_INFO for the call's duration.
    let Some(info) = (unsafe { info.as_ref() }) else {
        return;
    };
    // SAFETY: reading the union's plain u32 view.
    let properties = unsafe { info.Anonymous.Properties };
    // SAFETY: the kernel's name and image, valid during the notification.
    unsafe {
        crate::civ::image_loaded(
            name,
            info.ImageBase as usize as u64,
            info.ImageSize as u64,
            signature_level(properties),
        )
    };
}

/// Registers the callback.
pub fn register() -> NTSTATUS {
    // SAFETY: `on_image_load` has the routine's signature and lives as long
    // as the driver; it is removed in `unregister` before unload.
    unsafe { PsSetLoadImageNotifyRoutine(Some(on_image_load)) }
}

/// Removes the callback (before unload).
pub fn unregister() -> NTSTATUS {
    // SAFETY: the routine registered above.
    unsafe { PsRemoveLoadImageNotifyRoutine(Some(on_image_load)) }
}
