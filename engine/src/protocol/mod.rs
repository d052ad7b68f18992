//! The IOCTL contract between civ.sys and civctl.
//!
//! Both sides link this module, so the wire format is written once. Every
//! message is a 16-byte [`Header`] (magic, version, kind, total size, status)
//! followed by a body with a fixed little-endian layout; the replies that
//! carry records (targets, sites, events) end in an array of fixed-size
//! [`Record`]s. Fields are copied with `from_le_bytes` / `to_le_bytes`, never
//! read through a cast pointer, so the buffer's alignment does not matter and
//! no `unsafe` is needed. Nothing here allocates or panics: a malformed
//! message, or an output buffer too small for one, is a [`ProtoError`].
//!
//! The flow: civctl encodes a [`Request`] and sends it with
//! `DeviceIoControl(`[`Kind::ioctl`]`)`; civ.sys reads it with
//! [`Request::decode_ioctl`], answers with [`Version::encode`],
//! [`write_status`], [`write_sites`], [`write_events`] or [`write_ack`] (or
//! [`reply_error`] when it cannot), and civctl reads the answer with the
//! `decode_reply_*` functions or [`Reply::decode`].
//!
//! Decoding is strict (reserved fields must be zero, sizes must agree
//! exactly, the padding of names must be zero) so that a request that
//! decodes re-encodes to the same bytes, and so that any change of layout
//! has to bump [`PROTOCOL_VERSION`] instead of slipping through.
//!
//! Paging: sites are paged by index ([`GetSites::start`], the reply's
//! `total`, see [`SitesReply::next_page`]); events by sequence number
//! ([`GetEvents::since_seq`], the reply's `next_seq`).

use core::fmt;
use core::marker::PhantomData;
use core::slice::ChunksExact;

use crate::code::Counter;
// One `Action` for the registry, the engine and the wire: 0 bug check, 1 log.
pub use crate::settings::Action;

/// The protocol version both sides must speak; any change of layout bumps it.
pub const PROTOCOL_VERSION: u16 = 2;
/// The first four bytes of every message, `CIV1`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"CIV1");

/// The control device's NT name, created by civ.sys.
pub const DEVICE_NAME: &str = "\\Device\\CodeIntegrityVerifier";
/// The symbolic link civ.sys creates so that user mode can open the device.
pub const DOS_NAME: &str = "\\DosDevices\\CodeIntegrityVerifier";
/// The path civctl opens with `CreateFileW`.
pub const USER_PATH: &str = "\\\\.\\CodeIntegrityVerifier";

/// FILE_DEVICE_UNKNOWN: the device type of civ's IOCTLs.
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
/// METHOD_BUFFERED: the I/O manager copies both buffers.
pub const METHOD_BUFFERED: u32 = 0;
/// FILE_ANY_ACCESS.
pub const FILE_ANY_ACCESS: u32 = 0;
/// FILE_READ_DATA: the handle must be open for reading.
pub const FILE_READ_DATA: u32 = 1;
/// FILE_WRITE_DATA: the handle must be open for writing.
pub const FILE_WRITE_DATA: u32 = 2;

/// CTL_CODE of winioctl.h.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// STATUS_SUCCESS: the reply carries its body.
pub const STATUS_SUCCESS: u32 = 0;
/// STATUS_INVALID_PARAMETER: the request is malformed.
pub const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
/// STATUS_BUFFER_TOO_SMALL: the output buffer cannot hold the reply.
pub const STATUS_BUFFER_TOO_SMALL: u32 = 0xC000_0023;
/// STATUS_REVISION_MISMATCH: the request speaks another protocol version.
pub const STATUS_REVISION_MISMATCH: u32 = 0xC000_0059;
/// STATUS_NOT_SUPPORTED: the driver does not know the request's kind.
pub const STATUS_NOT_SUPPORTED: u32 = 0xC000_00BB;

/// The name of a status this protocol uses.
pub const fn status_name(status: u32) -> Option<&'static str> {
    match status {
        STATUS_SUCCESS => Some("STATUS_SUCCESS"),
        STATUS_INVALID_PARAMETER => Some("STATUS_INVALID_PARAMETER"),
        STATUS_BUFFER_TOO_SMALL => Some("STATUS_BUFFER_TOO_SMALL"),
        STATUS_REVISION_MISMATCH => Some("STATUS_REVISION_MISMATCH"),
        STATUS_NOT_SUPPORTED => Some("STATUS_NOT_SUPPORTED"),
        _ => None,
    }
}

/// Size of the [`Header`] that starts every message.
pub const HEADER_SIZE: usize = 16;
/// Size of a [`GetSites`] request.
pub const GET_SITES_SIZE: usize = HEADER_SIZE + 8;
/// Size of a [`GetEvents`] request.
pub const GET_EVENTS_SIZE: usize = HEADER_SIZE + 16;
/// Size of a [`SetSettings`] request with no target names.
pub const SET_SETTINGS_MIN: usize = HEADER_SIZE + 16;
/// At most this many target names in [`SetSettings`].
pub const MAX_TARGETS: usize = 64;
/// At most this many bytes in a target name.
pub const MAX_NAME_LEN: usize = 255;
/// The largest request: [`SetSettings`] with every name at its longest.
pub const MAX_REQUEST_SIZE: usize = SET_SETTINGS_MIN + MAX_TARGETS * (2 + MAX_NAME_LEN);
/// Size of the [`Version`] reply.
pub const VERSION_REPLY_SIZE: usize = HEADER_SIZE + 16;
/// Size of the status reply before its [`TargetRecord`]s.
pub const STATUS_REPLY_MIN: usize = HEADER_SIZE + 32;
/// Size of the sites reply before its [`SiteRecord`]s.
pub const SITES_REPLY_MIN: usize = HEADER_SIZE + 16;
/// Size of the events reply before its [`EventRecord`]s.
pub const EVENTS_REPLY_MIN: usize = HEADER_SIZE + 24;
/// Bytes of [`TargetRecord::name`].
pub const TARGET_NAME_LEN: usize = 64;
/// [`SiteRecord::target`] / [`EventRecord::target`] when the target is unknown.
pub const UNKNOWN_TARGET: u8 = 0xFF;
/// [`SiteRecord::api`] / [`EventRecord::api`] for an image finding (no hook).
pub const NO_API: u8 = 0xFF;
/// Return addresses a [`SiteRecord`] carries: the call stack at the
/// site's first hit.
pub const STACK_FRAMES: usize = 8;
/// [`TargetRecord::signature_level`] when no load notification said.
pub const UNKNOWN_SIGNATURE_LEVEL: u8 = 0xFF;

// Each size is the sum of its fields as `put`/`get` write them (the unit
// tests also check that every encoder writes exactly its size). Records start
// and end on 8-byte boundaries, so every u64 in a reply is naturally aligned.
const _: () = {
    assert!(HEADER_SIZE == 4 + 2 + 2 + 4 + 4);
    assert!(GET_SITES_SIZE == HEADER_SIZE + 4 + 4);
    assert!(GET_EVENTS_SIZE == HEADER_SIZE + 8 + 4 + 4);
    assert!(SET_SETTINGS_MIN == HEADER_SIZE + 4 + 4 + 4 + 4);
    assert!(MAX_REQUEST_SIZE <= u32::MAX as usize);
    assert!(MAX_NAME_LEN <= u16::MAX as usize);
    assert!(VERSION_REPLY_SIZE == HEADER_SIZE + 2 + 2 + 2 + 2 + 4 + 4);
    assert!(STATUS_REPLY_MIN == HEADER_SIZE + 4 + 4 + 8 + 4 + 4 + 4 + 4);
    assert!(SITES_REPLY_MIN == HEADER_SIZE + 4 + 4 + 8);
    assert!(EVENTS_REPLY_MIN == HEADER_SIZE + 8 + 8 + 4 + 4);
    assert!(Counter::ALL.len() == 7);
    assert!(STACK_FRAMES == crate::log::STACK_DEPTH);
    assert!(TargetRecord::SIZE == TARGET_NAME_LEN + 8 + 8 + 7 * 8 + 4 + 4 + 4 + 2 + 1 + 1);
    assert!(SiteRecord::SIZE == 1 + 1 + 1 + 1 + 2 + 2 + 8 + 8 + 8 + 8 + 8 + 8 + STACK_FRAMES * 8);
    assert!(EventRecord::SIZE == 8 + 8 + 1 + 1 + 1 + 1 + 2 + 2 + 8 + 8 + 8);
    assert!(STATUS_REPLY_MIN.is_multiple_of(8) && TargetRecord::SIZE.is_multiple_of(8));
    assert!(SITES_REPLY_MIN.is_multiple_of(8) && SiteRecord::SIZE.is_multiple_of(8));
    assert!(EVENTS_REPLY_MIN.is_multiple_of(8) && EventRecord::SIZE.is_multiple_of(8));
};

mod message;
mod paging;
mod record;
mod reply;
mod request;
#[cfg(test)]
mod testutil;

pub use message::*;
pub use paging::*;
pub use record::*;
pub use reply::*;
pub use request::*;
