//! civctl: the user-mode side of civ.
//!
//! - [`scan`]: the static checks of .sys files and folders (DV's 0x2003–0x2005
//!   and the imports civ hooks), with human, JSON and SARIF output.
//! - [`decode`]: explains a bug check 0xC4 code-integrity violation.
//! - [`cli`]: the command line.
pub mod cli;
pub mod decode;
pub mod scan;
