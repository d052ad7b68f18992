//! `civctl install` / `uninstall` for the WDM civ.sys, where the INF is not
//! used: copy the image to `%SystemRoot%\System32\drivers\civ.sys` and
//! create (or stop and delete) the kernel service `civ` through the service
//! control manager.

use super::{os_error, wide};
use crate::control::host::{
    ERROR_ACCESS_DENIED, HostError, InstallSpec, Installed, SERVICE_NAME, StartType, Uninstalled,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_EXISTS, ERROR_SERVICE_MARKED_FOR_DELETE,
    ERROR_SERVICE_NOT_ACTIVE, GetLastError,
};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, ControlService, CreateServiceW, DeleteService, OpenSCManagerW,
    OpenServiceW, QueryServiceStatus, SC_HANDLE, SC_MANAGER_ALL_ACCESS, SERVICE_ALL_ACCESS,
    SERVICE_BOOT_START, SERVICE_CONTROL_STOP, SERVICE_DEMAND_START, SERVICE_ERROR_NORMAL,
    SERVICE_KERNEL_DRIVER, SERVICE_STATUS, SERVICE_STOPPED, SERVICE_SYSTEM_START,
};

/// The ImagePath civ's service gets: relative to the Windows folder, so
/// that the boot loader finds a boot-start civ.sys too.
const IMAGE_PATH: &str = "\\SystemRoot\\System32\\drivers\\civ.sys";

/// A service-manager handle, closed on drop.
struct Sc(SC_HANDLE);

impl Drop for Sc {
    fn drop(&mut self) {
        // SAFETY: a handle the service manager gave, closed once.
        unsafe { CloseServiceHandle(self.0) };
    }
}

fn last_error() -> u32 {
    // SAFETY: always safe to call.
    unsafe { GetLastError() }
}

fn manager() -> Result<Sc, HostError> {
    // SAFETY: null machine and database: the local, active one.
    let h = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_ALL_ACCESS) };
    if h.is_null() {
        return Err(os_error(
            "cannot open the service control manager",
            last_error(),
        ));
    }
    Ok(Sc(h))
}

/// The service `civ`, or `None` if it does not exist.
fn open_service(scm: &Sc) -> Result<Option<Sc>, HostError> {
    let name = wide(SERVICE_NAME);
    // SAFETY: an open manager handle and a NUL-terminated name.
    let h = unsafe { OpenServiceW(scm.0, name.as_ptr(), SERVICE_ALL_ACCESS) };
    if h.is_null() {
        return match last_error() {
            ERROR_SERVICE_DOES_NOT_EXIST => Ok(None),
            code => Err(os_error("cannot open the service civ", code)),
        };
    }
    Ok(Some(Sc(h)))
}

/// `%SystemRoot%\System32\drivers\civ.sys`.
fn driver_file() -> PathBuf {
    let root = std::env::var_os("SystemRoot")
        .or_else(|| std::env::var_os("windir"))
        .unwrap_or_else(|| "C:\\Windows".into());
    PathBuf::from(root).join("System32\\drivers\\civ.sys")
}

fn file_error(what: String, e: &std::io::Error) -> HostError {
    match e.raw_os_error() {
        Some(code) if code as u32 == ERROR_ACCESS_DENIED => HostError::AccessDenied,
        _ => HostError::Other(format!("{what}: {e}")),
    }
}

/// Copies civ.sys into place and creates the service.
pub fn install(spec: &InstallSpec) -> Result<Installed, HostError> {
    std::fs::metadata(&spec.sys)
        .map_err(|e| HostError::Other(format!("cannot read {}: {e}", spec.sys.display())))?;
    let scm = manager()?;
    if open_service(&scm)?.is_some() {
        return Err(HostError::AlreadyInstalled);
    }
    let dest = driver_file();
    let same = match (spec.sys.canonicalize(), dest.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        std::fs::copy(&spec.sys, &dest).map_err(|e| {
            file_error(
                format!("cannot copy {} to {}", spec.sys.display(), dest.display()),
                &e,
            )
        })?;
    }
    let start = match spec.start {
        StartType::Boot => SERVICE_BOOT_START,
        StartType::System => SERVICE_SYSTEM_START,
        StartType::Demand => SERVICE_DEMAND_START,
    };
    let (name, display, path, group) = (
        wide(SERVICE_NAME),
        wide("civ code integrity verifier"),
        wide(IMAGE_PATH),
        wide(&spec.group),
    );
    // SAFETY: an open manager handle; every string is NUL-terminated and
    // outlives the call; no tag, dependencies, account or password.
    let h = unsafe {
        CreateServiceW(
            scm.0,
            name.as_ptr(),
            display.as_ptr(),
            SERVICE_ALL_ACCESS,
            SERVICE_KERNEL_DRIVER,
            start,
            SERVICE_ERROR_NORMAL,
            path.as_ptr(),
            if spec.group.is_empty() {
                std::ptr::null()
            } else {
                group.as_ptr()
            },
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if h.is_null() {
        let code = last_error();
        if !same {
            // No copy of civ.sys without a service to load it.
            let _ = std::fs::remove_file(&dest);
        }
        return Err(match code {
            ERROR_SERVICE_EXISTS => HostError::AlreadyInstalled,
            ERROR_SERVICE_MARKED_FOR_DELETE => HostError::Other(
                "the service civ is marked for deletion: reboot, then civctl install".into(),
            ),
            code => os_error("cannot create the service civ", code),
        });
    }
    drop(Sc(h));
    Ok(Installed {
        file: dest.display().to_string(),
        image_path: IMAGE_PATH.into(),
    })
}

fn state(service: &Sc) -> Option<u32> {
    let mut status = SERVICE_STATUS::default();
    // SAFETY: an open service handle and a status to fill.
    (unsafe { QueryServiceStatus(service.0, &mut status) } != 0).then_some(status.dwCurrentState)
}

/// Stops the driver if it runs, deletes the service and the copied file.
pub fn uninstall() -> Result<Uninstalled, HostError> {
    let scm = manager()?;
    let service = open_service(&scm)?.ok_or(HostError::NotInstalled)?;
    let mut done = Uninstalled {
        stopped: false,
        stop_failed: None,
        file_left: None,
    };
    if state(&service).is_some_and(|s| s != SERVICE_STOPPED) {
        let mut status = SERVICE_STATUS::default();
        // SAFETY: an open service handle and a status to fill.
        let ok = unsafe { ControlService(service.0, SERVICE_CONTROL_STOP, &mut status) } != 0;
        let error = if ok { 0 } else { last_error() };
        if error == ERROR_ACCESS_DENIED {
            return Err(HostError::AccessDenied);
        }
        if ok || error == ERROR_SERVICE_NOT_ACTIVE {
            let until = Instant::now() + Duration::from_secs(15);
            while state(&service).is_some_and(|s| s != SERVICE_STOPPED) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if state(&service).is_some_and(|s| s != SERVICE_STOPPED) {
            done.stop_failed = Some(if ok {
                "it did not stop within 15 s".to_string()
            } else {
                HostError::Os {
                    what: "stop".into(),
                    code: error,
                }
                .to_string()
            });
        } else {
            done.stopped = true;
        }
    }
    // SAFETY: an open service handle.
    if unsafe { DeleteService(service.0) } == 0 {
        let code = last_error();
        if code != ERROR_SERVICE_MARKED_FOR_DELETE {
            return Err(os_error("cannot delete the service civ", code));
        }
    }
    drop(service);
    let file = driver_file();
    if done.stop_failed.is_none()
        && file.exists()
        && let Err(e) = std::fs::remove_file(&file)
    {
        done.file_left = Some(format!("{} is left: {e}", file.display()));
    }
    Ok(done)
}
