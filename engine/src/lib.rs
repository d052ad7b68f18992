//! civ-engine: every decision civ makes, with no kernel and no Windows types.
//!
//! The kernel driver (civ.sys) and the user-mode tool (civctl) both call this
//! crate; neither decides on its own whether a pool type is executable or an
//! image is HVCI-ready. The crate is `no_std`, never allocates and never
//! panics on input, so the same code runs inside a hook in the kernel and in
//! the host's unit tests.
//!
//! - [`code`]: Driver Verifier's code-integrity codes and its seven counters.
//! - [`check`]: the predicates for 0x2000–0x2002 and the bug check they imply.
//! - [`catalog`]: the hooked kernel APIs, as data.
//! - [`pe`]: a bounds-checked PE reader for file and mapped layouts.
//! - [`path`]: the file name of a kernel image path (bytes or UTF-16).
//! - [`image`]: the image checks 0x2003–0x2005 and unsupported relocations.
//! - [`iat`]: the IAT planner: which slots of a target to rewrite, and back.
//! - [`names`]: human names of pool types, flags, protections and priorities.
//! - [`protocol`]: the versioned IOCTL contract between civ.sys and civctl.
//! - [`modules`]: the loaded-module list (targets loaded before civ).
//! - [`log`]: the lock-free violation log (counters, sites, recent events).
//! - [`settings`]: VerifyDriverLevel / VerifyDrivers / ViolationAction.
//! - [`scope`]: which images civ verifies (never what Windows owns).
//! - [`dvrt`]: import call optimization (calls the kernel binds past the IAT).
//! - [`attach`]: a target image loads: image checks, IAT plan, hooks.
//! - [`serve`]: civ.sys's answers to civctl's IOCTLs.
//! - [`stubs`], [`runtime`]: the entry stubs a hooked IAT slot points to,
//!   and the dispatch, handlers and originals behind them (x86-64).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(all(target_arch = "x86_64", not(loom)))]
pub mod attach;
pub mod catalog;
pub mod check;
pub mod code;
pub mod dvrt;
pub mod iat;
pub mod image;
pub mod log;
pub mod modules;
pub mod names;
pub mod path;
pub mod pe;
pub mod protocol;
#[cfg(all(target_arch = "x86_64", not(loom)))]
pub mod runtime;
pub mod scope;
#[cfg(all(target_arch = "x86_64", not(loom)))]
pub mod serve;
pub mod settings;
#[cfg(all(target_arch = "x86_64", not(loom)))]
pub mod stubs;
pub mod sync;
