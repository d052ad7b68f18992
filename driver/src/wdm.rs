//! The WDM shell: DriverEntry, the control device, IRP dispatch, unload.
//! Built on Linux with rust-lld (`cargo wdm`) and run under Wine; it also
//! serves anyone who wants civ.sys without the WDK.

use crate::civ;
use crate::log;
use crate::nt::{self, security};
use civ_engine::protocol::{DEVICE_NAME, DOS_NAME};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP};
use windows_sys::Wdk::System::SystemServices::{
    IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink, IofCompleteRequest,
};
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

const IRP_MJ_CREATE: usize = 0x00;
const IRP_MJ_CLOSE: usize = 0x02;
const IRP_MJ_DEVICE_CONTROL: usize = 0x0E;
const FILE_DEVICE_UNKNOWN: u32 = 0x22;
const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;
const STATUS_SUCCESS: NTSTATUS = 0;
const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = 0xC000_0010_u32 as NTSTATUS;

static DEVICE: &[u16] = crate::utf16!(DEVICE_NAME);
static LINK: &[u16] = crate::utf16!(DOS_NAME);

/// The driver's entry point. Order matters: the dispatch and unload
/// routines first (an unload of a civ that hooked something must find its
/// unload routine, which leaves the hooks), then civ starts (settings, notification,
/// targets already loaded), and only then does the control device appear,
/// so that no civctl request races the settings civ reads at start. Once
/// civ has started, DriverEntry never fails: the loader would unmap an
/// image that targets may already call into.
///
/// # Safety
/// Called by the I/O manager with a valid driver object and registry path.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    civ::prepare();
    // SAFETY: the I/O manager's object for this driver.
    unsafe { civ::set_driver_object(driver) };
    // SAFETY: the driver object is ours to fill during DriverEntry.
    unsafe {
        (*driver).MajorFunction[IRP_MJ_CREATE] = Some(create_close);
        (*driver).MajorFunction[IRP_MJ_CLOSE] = Some(create_close);
        (*driver).MajorFunction[IRP_MJ_DEVICE_CONTROL] = Some(device_control);
        (*driver).DriverUnload = Some(unload);
    }
    // SAFETY: the registry path is valid during DriverEntry.
    match unsafe { registry_path.as_ref() } {
        Some(path) => {
            civ::start(path);
        }
        None => log!("no registry path: civ checks nothing"),
    }
    // SAFETY: DriverEntry, PASSIVE_LEVEL, our driver object.
    if let Err(why) = unsafe { create_control_device(driver) } {
        // civ still checks its targets; only civctl cannot reach it.
        log!("{why}: civctl cannot reach this civ");
    }
    STATUS_SUCCESS
}

/// Creates `\Device\CodeIntegrityVerifier`, open to SYSTEM and
/// Administrators only, and its DOS link. A device whose DACL cannot be
/// applied is deleted rather than left open to everyone.
///
/// # Safety
/// `driver` is this driver's object, in DriverEntry.
unsafe fn create_control_device(driver: *mut DRIVER_OBJECT) -> Result<(), &'static str> {
    let device_name = nt::unicode(DEVICE);
    let link_name = nt::unicode(LINK);
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: a valid driver object and device name; `device` receives the
    // new object.
    let status = unsafe {
        IoCreateDevice(
            driver,
            0,
            &device_name,
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            false,
            &mut device,
        )
    };
    if status < 0 {
        log!("IoCreateDevice failed ({status:#x})");
        return Err("cannot create the control device");
    }
    if let Err(s) = security::restrict_to_admins(device) {
        log!("cannot apply the admin-only DACL ({s:#x}); the device is deleted");
        // SAFETY: the device just created, not yet visible by a link.
        unsafe { IoDeleteDevice(device) };
        return Err("cannot restrict the control device to administrators");
    }
    // SAFETY: valid names; the link is deleted at unload.
    let status = unsafe { IoCreateSymbolicLink(&link_name, &device_name) };
    if status < 0 {
        log!("IoCreateSymbolicLink failed ({status:#x})");
        return Err("cannot create the DOS link");
    }
    Ok(())
}

/// Completes an IRP with a status and a byte count.
///
/// # Safety
/// `irp` is a valid IRP this driver owns.
unsafe fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe {
        (*irp).IoStatus.Anonymous.Status = status;
        (*irp).IoStatus.Information = information;
        IofCompleteRequest(irp, 0);
    }
    status
}

unsafe extern "system" fn create_close(_device: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid IRP.
    unsafe { complete(irp, STATUS_SUCCESS, 0) }
}

/// IO_STACK_LOCATION.Parameters.DeviceIoControl as wdm.h lays it out: its
/// ULONGs are POINTER_ALIGNMENT (8 bytes on x64), which windows-sys'
/// IO_STACK_LOCATION_0_16 leaves out (it packs them at 0, 4, 8; the kernel
/// puts them at 0, 8, 16).
#[repr(C)]
struct DeviceIoControlParameters {
    output_length: u32,
    _pad0: u32,
    input_length: u32,
    _pad1: u32,
    code: u32,
    _pad2: u32,
    type3_input: *mut core::ffi::c_void,
}

const _: () = assert!(core::mem::size_of::<DeviceIoControlParameters>() == 32);

/// The DEVICE_CONTROL parameters of a stack location.
///
/// # Safety
/// `stack` is the current stack location of a DEVICE_CONTROL IRP.
unsafe fn device_io_control(
    stack: *const windows_sys::Wdk::Foundation::IO_STACK_LOCATION,
) -> DeviceIoControlParameters {
    // SAFETY: Parameters is a union at least 32 bytes long, 8-aligned,
    // holding the DeviceIoControl member for this IRP.
    unsafe {
        core::ptr::addr_of!((*stack).Parameters)
            .cast::<DeviceIoControlParameters>()
            .read()
    }
}

unsafe extern "system" fn device_control(_device: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid IRP whose current stack
    // location describes this DEVICE_CONTROL request (METHOD_BUFFERED: one
    // system buffer of max(input, output) bytes).
    unsafe {
        let stack = (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation;
        let params = device_io_control(stack);
        // Only METHOD_BUFFERED codes have one system buffer of
        // max(input, output) bytes; civ has no other.
        if !civ::is_buffered(params.code) {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
        }
        let buffer = (*irp).AssociatedIrp.SystemBuffer.cast::<u8>();
        let answer = civ::buffered_ioctl(
            params.code,
            buffer,
            params.input_length as usize,
            params.output_length as usize,
        );
        complete(irp, answer.status as NTSTATUS, answer.bytes)
    }
}

unsafe extern "system" fn unload(driver: *const DRIVER_OBJECT) {
    // Whether civ really goes or stays pinned in memory, the device goes:
    // the I/O manager refuses new opens of an unloading driver's devices.
    civ::stop();
    let link_name = nt::unicode(LINK);
    // SAFETY: the link and device created in DriverEntry.
    unsafe {
        IoDeleteSymbolicLink(&link_name);
        let device = (*driver).DeviceObject;
        if !device.is_null() {
            IoDeleteDevice(device);
        }
    }
}
