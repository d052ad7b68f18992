//! The KMDF shell: a non-PnP KMDF driver with a control device (admin-only
//! SDDL) and a sequential IOCTL queue whose callbacks run at PASSIVE_LEVEL,
//! over the same `civ` module as the WDM shell. Built on Windows with the
//! WDK (`cargo make` in driver/); on Linux, scripts/kmdf-check.sh
//! type-checks and lints it against wdk-sys' real bindings, but no test
//! runs it, so it does as little as it can.
//!
//! Checked against wdk-sys 0.5.2 (`call_unsafe_wdf_function_binding!`,
//! `WDF_DRIVER_CONFIG`, `WDF_IO_QUEUE_CONFIG`, `WDF_OBJECT_ATTRIBUTES`,
//! `_WDF_*` constant modules) and the windows-drivers-rs samples (echo
//! DriverSync).

use crate::{civ, log};
use core::sync::atomic::{AtomicPtr, Ordering};
use wdk_sys::{
    _WDF_DRIVER_INIT_FLAGS, _WDF_EXECUTION_LEVEL, _WDF_IO_QUEUE_DISPATCH_TYPE,
    _WDF_SYNCHRONIZATION_SCOPE, _WDF_TRI_STATE, NTSTATUS, PCUNICODE_STRING, PDRIVER_OBJECT, PVOID,
    PWDFDEVICE_INIT, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST, STATUS_SUCCESS,
    ULONG, UNICODE_STRING, WDF_DRIVER_CONFIG, WDF_IO_QUEUE_CONFIG, WDF_NO_HANDLE,
    WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES, WDFDEVICE, WDFDRIVER, WDFOBJECT, WDFQUEUE,
    WDFREQUEST, call_unsafe_wdf_function_binding,
};

// Links wdk-panic's panic handler.
extern crate wdk_panic;

#[global_allocator]
static ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

/// The control device, deleted at unload.
static DEVICE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

fn unicode(s: &'static [u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: (s.len() * 2) as u16,
        MaximumLength: (s.len() * 2) as u16,
        Buffer: s.as_ptr().cast_mut(),
    }
}

fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

/// The driver's entry point (KMDF's FxDriverEntry calls it).
///
/// # Safety
/// Called by the framework with a valid driver object and registry path.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: PDRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    civ::prepare();
    // SAFETY: the I/O manager's object for this driver; wdk-sys'
    // DRIVER_OBJECT and windows-sys' have the same layout.
    unsafe { civ::set_driver_object(driver.cast()) };
    let mut config = WDF_DRIVER_CONFIG {
        Size: core::mem::size_of::<WDF_DRIVER_CONFIG>() as ULONG,
        EvtDriverUnload: Some(evt_driver_unload),
        DriverInitFlags: _WDF_DRIVER_INIT_FLAGS::WdfDriverInitNonPnpDriver as ULONG,
        ..WDF_DRIVER_CONFIG::default()
    };
    let mut wdf_driver: WDFDRIVER = WDF_NO_HANDLE.cast();
    // SAFETY: the framework's own arguments, a filled config, an out handle.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            driver,
            registry_path,
            WDF_NO_OBJECT_ATTRIBUTES,
            &mut config,
            &mut wdf_driver
        )
    };
    if !nt_success(status) {
        log!("WdfDriverCreate failed ({status:#x})");
        return status;
    }
    // civ starts (settings, load notification, targets already loaded)
    // after WdfDriverCreate has set the driver's unload routine (an unload
    // of a pinned civ must reach civ::stop) and before the control device
    // takes a request: a
    // SetSettings from civctl must not land before start() reads the
    // registry and overwrites it. From here on DriverEntry never fails: a
    // target may already call into civ.
    // SAFETY: the registry path is valid during DriverEntry; wdk-sys'
    // UNICODE_STRING and windows-sys' have the same layout.
    match unsafe {
        registry_path
            .cast::<windows_sys::Win32::Foundation::UNICODE_STRING>()
            .as_ref()
    } {
        Some(path) => {
            civ::start(path);
        }
        None => log!("no registry path: civ checks nothing"),
    }
    // SAFETY: `wdf_driver` was just created; DriverEntry runs at PASSIVE_LEVEL.
    let status = unsafe { create_control_device(wdf_driver) };
    if !nt_success(status) {
        // civ still checks its targets; only civctl cannot reach it.
        log!("cannot create the control device ({status:#x}): civctl cannot reach this civ");
    }
    STATUS_SUCCESS
}

/// Creates `\Device\CodeIntegrityVerifier`, its DOS link and its queue.
///
/// # Safety
/// `driver` is this driver's WDFDRIVER, at PASSIVE_LEVEL.
unsafe fn create_control_device(driver: WDFDRIVER) -> NTSTATUS {
    // SDDL_DEVOBJ_SYS_ALL_ADM_ALL: SYSTEM and Administrators only.
    let sddl = unicode(crate::utf16!("D:P(A;;GA;;;SY)(A;;GA;;;BA)"));
    let name = unicode(crate::utf16!(civ_engine::protocol::DEVICE_NAME));
    let link = unicode(crate::utf16!(civ_engine::protocol::DOS_NAME));
    // SAFETY: a valid driver handle and SDDL string.
    let mut init: PWDFDEVICE_INIT =
        unsafe { call_unsafe_wdf_function_binding!(WdfControlDeviceInitAllocate, driver, &sddl) };
    if init.is_null() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: `init` is ours until WdfDeviceCreate consumes it.
    let status = unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitAssignName, init, &name) };
    if !nt_success(status) {
        // SAFETY: not consumed: we free it.
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init) };
        return status;
    }
    let mut device: WDFDEVICE = WDF_NO_HANDLE.cast();
    // SAFETY: `init` is valid; on success the framework takes it.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreate,
            &mut init,
            WDF_NO_OBJECT_ATTRIBUTES,
            &mut device
        )
    };
    if !nt_success(status) {
        // SAFETY: a failed create leaves `init` to the driver.
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init) };
        return status;
    }
    DEVICE.store(device.cast(), Ordering::Release);
    // SAFETY: a valid device and link name.
    let status =
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceCreateSymbolicLink, device, &link) };
    if !nt_success(status) {
        log!("cannot create the DOS link for civctl ({status:#x})");
    }
    let mut queue_config = WDF_IO_QUEUE_CONFIG {
        Size: core::mem::size_of::<WDF_IO_QUEUE_CONFIG>() as ULONG,
        // A control device has no power state to manage.
        PowerManaged: _WDF_TRI_STATE::WdfFalse,
        DefaultQueue: u8::from(true),
        DispatchType: _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential,
        EvtIoDeviceControl: Some(evt_io_device_control),
        ..WDF_IO_QUEUE_CONFIG::default()
    };
    // civ's IOCTL path takes locks meant for PASSIVE_LEVEL; without this
    // the framework may call back at up to DISPATCH_LEVEL.
    let mut queue_attributes = WDF_OBJECT_ATTRIBUTES {
        Size: core::mem::size_of::<WDF_OBJECT_ATTRIBUTES>() as ULONG,
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ..WDF_OBJECT_ATTRIBUTES::default()
    };
    let mut queue: WDFQUEUE = WDF_NO_HANDLE.cast();
    // SAFETY: a valid device, a filled queue config and attributes.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfIoQueueCreate,
            device,
            &mut queue_config,
            &mut queue_attributes,
            &mut queue
        )
    };
    if !nt_success(status) {
        // A device without a queue would only fail every request: delete it
        // (and its DOS link) now rather than at unload.
        DEVICE.store(core::ptr::null_mut(), Ordering::Release);
        // SAFETY: the device created above, not yet finished; unload no
        // longer sees it, so it is deleted once.
        unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, device as WDFOBJECT) };
        return status;
    }
    // SAFETY: the device is fully set up.
    unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
    STATUS_SUCCESS
}

/// An IOCTL from civctl: METHOD_BUFFERED, so input and output are one
/// system buffer, which civ's shared code copies and answers.
extern "C" fn evt_io_device_control(
    _queue: WDFQUEUE,
    request: WDFREQUEST,
    output_length: usize,
    input_length: usize,
    code: ULONG,
) {
    // civ's codes are all METHOD_BUFFERED; for the other methods the
    // buffers below are not one system buffer of max(in, out) bytes.
    if !civ::is_buffered(code) {
        // SAFETY: completing the request we were given, once.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestComplete,
                request,
                STATUS_INVALID_DEVICE_REQUEST
            )
        };
        return;
    }
    let mut buffer: PVOID = core::ptr::null_mut();
    let mut length: usize = 0;
    // SAFETY: a request the framework presented; retrieving its buffer
    // with a minimum size of 0 succeeds whenever it has one.
    let status = unsafe {
        if input_length > 0 {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveInputBuffer,
                request,
                0,
                &mut buffer,
                &mut length
            )
        } else if output_length > 0 {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveOutputBuffer,
                request,
                0,
                &mut buffer,
                &mut length
            )
        } else {
            STATUS_SUCCESS
        }
    };
    let answer = if nt_success(status) {
        // SAFETY: METHOD_BUFFERED: the system buffer holds
        // max(input_length, output_length) bytes.
        unsafe { civ::buffered_ioctl(code, buffer.cast(), input_length, output_length) }
    } else {
        civ_engine::serve::Answer {
            status: status as u32,
            bytes: 0,
        }
    };
    // SAFETY: completing the request we were given, once.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRequestCompleteWithInformation,
            request,
            answer.status as NTSTATUS,
            answer.bytes as u64
        )
    };
}

extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
    // Whether civ really goes or stays pinned in memory (a pin that raced
    // this unload), the control device goes.
    civ::stop();
    let device = DEVICE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !device.is_null() {
        // SAFETY: the control device created in DriverEntry, deleted once.
        unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, device as WDFOBJECT) };
    }
}
