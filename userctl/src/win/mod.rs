//! The Windows side of civctl's [`Host`]: civ's Parameters through the
//! `windows-registry` crate ([`registry`]), its control device through
//! `CreateFileW` / `DeviceIoControl` ([`device`]), and the service manager
//! for `install` / `uninstall` ([`service`]). Only the calls live here; what
//! to write, send and print is decided in [`crate::control`].

pub mod device;
pub mod registry;
pub mod service;

use crate::control::host::{
    Clear, Device, ERROR_ACCESS_DENIED, Host, HostError, InstallSpec, Installed, ParamValues,
    RawParams, Uninstalled,
};
use std::time::{Duration, Instant};

/// Null-terminated UTF-16, for the W functions.
pub(crate) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A Win32 error as civctl reports it: access denied means "not elevated".
pub(crate) fn os_error(what: impl Into<String>, code: u32) -> HostError {
    if code == ERROR_ACCESS_DENIED {
        HostError::AccessDenied
    } else {
        HostError::Os {
            what: what.into(),
            code,
        }
    }
}

/// The machine civctl runs on.
#[derive(Debug)]
pub struct WinHost {
    started: Instant,
}

impl WinHost {
    /// The host, its clock starting now.
    pub fn new() -> WinHost {
        WinHost {
            started: Instant::now(),
        }
    }
}

impl Default for WinHost {
    fn default() -> Self {
        WinHost::new()
    }
}

impl Host for WinHost {
    fn installed(&mut self) -> Result<bool, HostError> {
        registry::service_installed()
    }
    fn read_params(&mut self) -> Result<RawParams, HostError> {
        registry::read_params()
    }
    fn write_params(&mut self, values: &ParamValues) -> Result<(), HostError> {
        registry::write_params(values)
    }
    fn clear_params(&mut self, which: Clear) -> Result<usize, HostError> {
        registry::clear_params(which)
    }
    fn open_device(&mut self) -> Result<Option<Box<dyn Device>>, HostError> {
        Ok(device::CivDevice::open()?.map(|d| Box::new(d) as Box<dyn Device>))
    }
    fn install(&mut self, spec: &InstallSpec) -> Result<Installed, HostError> {
        service::install(spec)
    }
    fn uninstall(&mut self) -> Result<Uninstalled, HostError> {
        service::uninstall()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
    fn elapsed(&mut self) -> Duration {
        self.started.elapsed()
    }
}
