//! civctl's Windows side, the front door to civ.sys the way verifier.exe is
//! Driver Verifier's: set the flag and the targets, reboot (or not, when
//! civ.sys runs), ask what happened.
//!
//! Everything here is portable and tested on any host:
//! - [`verifier`]: verifier.exe's command line rewritten into subcommands;
//! - [`flags`]: flag numbers and driver names, checked before anything is written;
//! - [`model`]: what `enable` writes and what `query` shows (through the
//!   engine's own settings parser);
//! - [`report`]: `status` and `log` from civ.sys's protocol replies;
//! - [`verifier_query`]: `status` as `verifier /query` prints it;
//! - [`commands`]: what the commands share (exit statuses, output), and
//!   the commands over a [`host::Host`], one concept a module:
//!   [`configure`] (`enable`, `disable`, `reset`, `query`), [`live`]
//!   (`status`, `log`), [`install`] (`install`, `uninstall`), with
//!   [`client`], the requests they send civ.sys;
//! - [`host`]: that trait, and the errors a person reads.
//!
//! The Windows calls (registry, `DeviceIoControl`, the service manager) are
//! in `crate::win`, compiled on Windows only.
pub mod client;
pub mod commands;
pub mod configure;
#[cfg(test)]
mod fake;
pub mod flags;
pub mod host;
pub mod install;
pub mod live;
pub mod model;
pub mod report;
pub mod verifier;
pub mod verifier_query;
