//! civctl's Windows commands, over a [`Host`](super::host::Host): what
//! they share. Exit statuses follow verifier.exe: [`OK`], [`ERROR`]
//! (returned as a [`HostError`], which the caller prints), [`REBOOT`] (the
//! settings are written and take effect at the next boot).
//!
//! The commands themselves, one concept a module:
//! - [`super::configure`]: `enable`, `disable`, `reset`, `query` (the
//!   settings for the next boot, applied at once when civ.sys runs);
//! - [`super::live`]: `status` and `log` (what civ.sys says now);
//! - [`super::install`]: `install` and `uninstall` (the kernel service);
//! - [`super::client`]: the requests they send civ.sys.

use super::host::HostError;
use std::io::Write;

/// Done.
pub const OK: u8 = 0;
/// Failed (a [`HostError`]).
pub const ERROR: u8 = 1;
/// Written; a reboot (or starting civ) is needed for it to take effect.
pub const REBOOT: u8 = 2;

/// Where a command prints: results to `out`, warnings and notes to `err`.
pub struct Io<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
}

/// A failed write of the output, as a command error.
pub(super) fn io_error(e: std::io::Error) -> HostError {
    HostError::Other(format!("cannot write the output: {e}"))
}

/// Pretty JSON of a view, or why not.
pub(super) fn json<T: serde::Serialize>(v: &T) -> Result<String, HostError> {
    serde_json::to_string_pretty(v).map_err(|e| HostError::Other(format!("JSON: {e}")))
}
