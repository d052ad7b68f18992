//! What civctl's Windows commands need of the machine, as a trait: civ's
//! registry values, its control device, and the service manager. The
//! commands ([`super::commands`]) are written against it, so they run in
//! unit tests on any host with a fake; `crate::win` implements it on
//! Windows, and [`Unsupported`] everywhere else says that the command needs
//! Windows.

use civ_engine::protocol::{self, ProtoError};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The service key civ.sys reads its Parameters from.
pub const SERVICE_KEY: &str = "SYSTEM\\CurrentControlSet\\Services\\civ";
/// civ's settings.
pub const PARAMETERS_KEY: &str = "SYSTEM\\CurrentControlSet\\Services\\civ\\Parameters";
/// The service's name.
pub const SERVICE_NAME: &str = "civ";

/// A registry value as read: its REG_* type and bytes.
pub type Raw = Option<(u32, Vec<u8>)>;

/// The three values of civ's Parameters key, raw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawParams {
    /// VerifyDriverLevel.
    pub level: Raw,
    /// VerifyDrivers.
    pub drivers: Raw,
    /// ViolationAction.
    pub action: Raw,
}

/// The values `enable` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamValues {
    /// VerifyDriverLevel (REG_DWORD).
    pub level: u32,
    /// VerifyDrivers (REG_SZ, names joined by spaces).
    pub drivers: String,
    /// ViolationAction (REG_DWORD): 0 bug check, 1 log.
    pub action: u32,
}

/// Which values `disable` and `reset` remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clear {
    /// VerifyDriverLevel, VerifyDrivers and ViolationAction.
    Settings,
    /// Every value of the Parameters key.
    All,
}

/// SERVICE_BOOT_START, SERVICE_SYSTEM_START or SERVICE_DEMAND_START.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartType {
    /// Loaded by the boot loader: checks drivers from the first boot-start one on.
    Boot,
    /// Loaded by the kernel at system start.
    System,
    /// Started by hand (`sc start civ`).
    Demand,
}

impl StartType {
    /// The name `sc qc` shows.
    pub fn name(self) -> &'static str {
        match self {
            StartType::Boot => "boot",
            StartType::System => "system",
            StartType::Demand => "demand",
        }
    }
}

/// What `install` creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSpec {
    /// The civ.sys to copy to `%SystemRoot%\System32\drivers\civ.sys`.
    pub sys: PathBuf,
    /// The start type.
    pub start: StartType,
    /// The load order group.
    pub group: String,
}

/// What `install` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// Where civ.sys was copied.
    pub file: String,
    /// The service's ImagePath.
    pub image_path: String,
}

/// What `uninstall` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uninstalled {
    /// The driver was running and stopped.
    pub stopped: bool,
    /// The driver was running and could not be stopped (it goes at the next
    /// reboot).
    pub stop_failed: Option<String>,
    /// The copied civ.sys could not be deleted.
    pub file_left: Option<String>,
}

/// Why a command could not be carried out, in words a person understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// This is not Windows.
    NotWindows,
    /// Access denied: not elevated.
    AccessDenied,
    /// The service `civ` does not exist.
    NotInstalled,
    /// The device is not there.
    NotRunning {
        /// The service `civ` exists (stopped, or failed to start).
        installed: bool,
    },
    /// `install` when the service exists.
    AlreadyInstalled,
    /// civ.sys speaks another protocol version.
    VersionMismatch {
        /// The driver's.
        driver: u16,
    },
    /// civ.sys's reply could not be read, or it failed the request.
    Protocol {
        /// The request.
        request: &'static str,
        /// What went wrong.
        error: ProtoError,
    },
    /// A Windows call failed.
    Os {
        /// What civctl was doing.
        what: String,
        /// GetLastError / the Win32 error.
        code: u32,
    },
    /// Anything else, already in words.
    Other(String),
}

/// ERROR_ACCESS_DENIED.
pub const ERROR_ACCESS_DENIED: u32 = 5;

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::NotWindows => f.write_str(
                "this command controls civ.sys and needs Windows; here civctl can scan and decode",
            ),
            HostError::AccessDenied => f.write_str(
                "access denied: run civctl from an elevated prompt (Administrator)",
            ),
            HostError::NotInstalled => {
                f.write_str("civ is not installed (civctl install, or the INF)")
            }
            HostError::NotRunning { installed } => write!(
                f,
                "civ.sys is not running: civctl install, then sc start civ / reboot ({})",
                if *installed {
                    "the service civ is installed but stopped"
                } else {
                    "civ is not installed"
                }
            ),
            HostError::AlreadyInstalled => f.write_str(
                "the service civ already exists: civctl uninstall first (or update it with the INF)",
            ),
            HostError::VersionMismatch { driver } => write!(
                f,
                "civ.sys speaks protocol version {driver}, this civctl speaks version {}: install a civctl and a civ.sys of the same release",
                protocol::PROTOCOL_VERSION
            ),
            HostError::Protocol { request, error } => {
                write!(f, "civ.sys's answer to {request}: {error}")
            }
            HostError::Os { what, code } => write!(
                f,
                "{what}: {} (Windows error {code})",
                os_message(*code)
            ),
            HostError::Other(s) => f.write_str(s),
        }
    }
}

/// The system's words for a Win32 error, without the trailing `(os error N)`.
fn os_message(code: u32) -> String {
    let text = std::io::Error::from_raw_os_error(code as i32).to_string();
    match text.rfind(" (os error") {
        Some(i) => text[..i].trim_end_matches(['.', '\r', '\n']).to_string(),
        None => text,
    }
}

/// civ's control device, open.
pub trait Device {
    /// Sends one buffered IOCTL; returns the bytes of `output` the driver
    /// wrote.
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, HostError>;
}

/// The machine, as the Windows commands see it.
pub trait Host {
    /// Is the service `civ` installed (its key has a Type or ImagePath)?
    fn installed(&mut self) -> Result<bool, HostError>;
    /// Reads the Parameters values (absent key: every value `None`).
    fn read_params(&mut self) -> Result<RawParams, HostError>;
    /// Creates the Parameters key if needed and writes the three values.
    fn write_params(&mut self, values: &ParamValues) -> Result<(), HostError>;
    /// Removes values from the Parameters key; returns how many there were.
    fn clear_params(&mut self, which: Clear) -> Result<usize, HostError>;
    /// Opens `\\.\CodeIntegrityVerifier`; `None` when civ.sys is not running.
    fn open_device(&mut self) -> Result<Option<Box<dyn Device>>, HostError>;
    /// Creates the service.
    fn install(&mut self, spec: &InstallSpec) -> Result<Installed, HostError>;
    /// Stops and deletes the service.
    fn uninstall(&mut self) -> Result<Uninstalled, HostError>;
    /// Waits (between `log --follow` polls).
    fn sleep(&mut self, d: Duration);
    /// Time since an arbitrary start (for `log --follow --for`).
    fn elapsed(&mut self) -> Duration;
}

/// The host on systems other than Windows: every command says it needs Windows.
#[derive(Debug, Default)]
pub struct Unsupported;

impl Host for Unsupported {
    fn installed(&mut self) -> Result<bool, HostError> {
        Err(HostError::NotWindows)
    }
    fn read_params(&mut self) -> Result<RawParams, HostError> {
        Err(HostError::NotWindows)
    }
    fn write_params(&mut self, _: &ParamValues) -> Result<(), HostError> {
        Err(HostError::NotWindows)
    }
    fn clear_params(&mut self, _: Clear) -> Result<usize, HostError> {
        Err(HostError::NotWindows)
    }
    fn open_device(&mut self) -> Result<Option<Box<dyn Device>>, HostError> {
        Err(HostError::NotWindows)
    }
    fn install(&mut self, _: &InstallSpec) -> Result<Installed, HostError> {
        Err(HostError::NotWindows)
    }
    fn uninstall(&mut self) -> Result<Uninstalled, HostError> {
        Err(HostError::NotWindows)
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
    fn elapsed(&mut self) -> Duration {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_advice() {
        assert!(
            HostError::AccessDenied
                .to_string()
                .contains("run civctl from an elevated prompt (Administrator)")
        );
        assert_eq!(
            HostError::NotInstalled.to_string(),
            "civ is not installed (civctl install, or the INF)"
        );
        assert!(
            HostError::NotRunning { installed: false }
                .to_string()
                .starts_with("civ.sys is not running: civctl install, then sc start civ / reboot")
        );
        let e = HostError::Os {
            what: "cannot open x".into(),
            code: 2,
        }
        .to_string();
        assert!(
            e.starts_with("cannot open x: ") && e.ends_with("(Windows error 2)"),
            "{e}"
        );
        assert!(!e.contains("os error"), "{e}");
        assert!(HostError::NotWindows.to_string().contains("needs Windows"));
    }
}
