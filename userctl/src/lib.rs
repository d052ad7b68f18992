//! civctl: the user-mode side of civ.
//!
//! - [`audit`]: which drivers keep memory integrity (HVCI) off, and how
//!   to remove them, on a live system or a mounted Windows volume.
//! - [`scan`]: the static checks of .sys files and folders (DV's 0x2003–0x2005
//!   and the imports civ hooks), with human, JSON and SARIF output.
//! - [`decode`]: explains a bug check 0xC4 code-integrity violation.
//! - [`predict`]: call sites of hooked imports found in x64 code, with the
//!   checked argument where it is a constant, judged by the engine.
//! - [`symbols`]: PDB lookups (address to function and file:line).
//! - [`control`]: the Windows commands (`enable`, `disable`, `reset`,
//!   `query`, `status`, `log`, `install`, `uninstall`), written over a host
//!   trait; `win` implements it on Windows.
//! - [`format`]: output formats several commands share.
//! - [`cli`]: the command line.
pub mod audit;
pub mod cli;
pub mod control;
pub mod decode;
pub mod format;
pub mod predict;
pub mod scan;
pub mod symbols;
#[cfg(windows)]
pub mod win;
