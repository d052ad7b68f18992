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
pub const PROTOCOL_VERSION: u16 = 1;
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
pub const STATUS_REPLY_MIN: usize = HEADER_SIZE + 24;
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
    assert!(STATUS_REPLY_MIN == HEADER_SIZE + 4 + 4 + 8 + 4 + 4);
    assert!(SITES_REPLY_MIN == HEADER_SIZE + 4 + 4 + 8);
    assert!(EVENTS_REPLY_MIN == HEADER_SIZE + 8 + 8 + 4 + 4);
    assert!(Counter::ALL.len() == 7);
    assert!(TargetRecord::SIZE == TARGET_NAME_LEN + 8 + 8 + 7 * 8 + 4 + 4);
    assert!(SiteRecord::SIZE == 1 + 1 + 1 + 1 + 4 + 8 + 8 + 8 + 8 + 8 + 8);
    assert!(EventRecord::SIZE == 8 + 8 + 1 + 1 + 1 + 5 + 8 + 8 + 8);
    assert!(STATUS_REPLY_MIN.is_multiple_of(8) && TargetRecord::SIZE.is_multiple_of(8));
    assert!(SITES_REPLY_MIN.is_multiple_of(8) && SiteRecord::SIZE.is_multiple_of(8));
    assert!(EVENTS_REPLY_MIN.is_multiple_of(8) && EventRecord::SIZE.is_multiple_of(8));
};

/// The kind of a message; the value is the IOCTL's function number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    /// Which protocol and driver version is loaded. Reply: [`Version`].
    QueryVersion = 0x900,
    /// Settings and per-target counters. Reply: [`StatusReply`].
    GetStatus = 0x901,
    /// A page of unique violation sites. Reply: [`SitesReply`].
    GetSites = 0x902,
    /// Events after a sequence number. Reply: [`EventsReply`].
    GetEvents = 0x903,
    /// New settings. Reply: header only.
    SetSettings = 0x904,
    /// Clear counters, sites and events. Reply: header only.
    ResetLog = 0x905,
}

impl Kind {
    /// Every kind, in numeric order.
    pub const ALL: [Kind; 6] = [
        Kind::QueryVersion,
        Kind::GetStatus,
        Kind::GetSites,
        Kind::GetEvents,
        Kind::SetSettings,
        Kind::ResetLog,
    ];

    /// The value in the header, also the IOCTL's function number.
    pub const fn value(self) -> u16 {
        self as u16
    }

    /// The kind of a header's value.
    pub const fn from_value(value: u16) -> Option<Kind> {
        match value {
            0x900 => Some(Kind::QueryVersion),
            0x901 => Some(Kind::GetStatus),
            0x902 => Some(Kind::GetSites),
            0x903 => Some(Kind::GetEvents),
            0x904 => Some(Kind::SetSettings),
            0x905 => Some(Kind::ResetLog),
            _ => None,
        }
    }

    /// The access the handle needs: reading the log needs read access,
    /// changing anything needs write access, asking the version needs none
    /// (so that civctl can report a version mismatch on any handle).
    pub const fn access(self) -> u32 {
        match self {
            Kind::QueryVersion => FILE_ANY_ACCESS,
            Kind::GetStatus | Kind::GetSites | Kind::GetEvents => FILE_READ_DATA,
            Kind::SetSettings | Kind::ResetLog => FILE_WRITE_DATA,
        }
    }

    /// The IOCTL code for `DeviceIoControl`.
    pub const fn ioctl(self) -> u32 {
        ctl_code(
            FILE_DEVICE_UNKNOWN,
            self as u32,
            METHOD_BUFFERED,
            self.access(),
        )
    }

    /// The kind whose IOCTL code is exactly `code`.
    pub fn from_ioctl(code: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.ioctl() == code)
    }

    /// The kind's name, as in this enum.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::QueryVersion => "QueryVersion",
            Kind::GetStatus => "GetStatus",
            Kind::GetSites => "GetSites",
            Kind::GetEvents => "GetEvents",
            Kind::SetSettings => "SetSettings",
            Kind::ResetLog => "ResetLog",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a message could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The buffer ends before the message does, or an output buffer is
    /// smaller than the message to write.
    TooShort {
        /// Bytes the message needs.
        need: usize,
        /// Bytes the buffer (or the message's size field) has.
        got: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    BadMagic(u32),
    /// The message speaks another protocol version.
    VersionMismatch {
        /// The version in the message.
        got: u16,
    },
    /// The header's kind is none of [`Kind`].
    UnknownKind(u16),
    /// A reply of another kind than the one asked for, or a request whose
    /// kind is not its IOCTL's.
    WrongKind {
        /// The kind asked for.
        expected: Kind,
        /// The kind in the header.
        got: Kind,
    },
    /// The header's size disagrees with the bytes the message has or needs.
    SizeMismatch {
        /// The size in the header.
        header: u32,
        /// The size of the buffer, or the size the message's content adds up to.
        actual: usize,
    },
    /// More than [`MAX_TARGETS`] target names.
    TooManyTargets(u32),
    /// A target name is empty, longer than [`MAX_NAME_LEN`], not UTF-8, or
    /// contains a NUL, a control character, a space or a path separator.
    BadName {
        /// The name's position in the list.
        index: u32,
    },
    /// The driver answered with a failure status.
    Status(u32),
    /// A field has a value the protocol does not allow.
    BadField(&'static str),
}

impl ProtoError {
    /// The status the driver answers with when a request fails this way.
    pub const fn status(self) -> u32 {
        match self {
            ProtoError::TooShort { .. } => STATUS_BUFFER_TOO_SMALL,
            ProtoError::VersionMismatch { .. } => STATUS_REVISION_MISMATCH,
            ProtoError::UnknownKind(_) => STATUS_NOT_SUPPORTED,
            ProtoError::Status(status) => status,
            ProtoError::BadMagic(_)
            | ProtoError::WrongKind { .. }
            | ProtoError::SizeMismatch { .. }
            | ProtoError::TooManyTargets(_)
            | ProtoError::BadName { .. }
            | ProtoError::BadField(_) => STATUS_INVALID_PARAMETER,
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtoError::TooShort { need, got } => {
                write!(
                    f,
                    "message too short: it needs {need} bytes, there are {got}"
                )
            }
            ProtoError::BadMagic(magic) => write!(
                f,
                "not a civ message: magic {magic:#010x} instead of {MAGIC:#010x} (\"CIV1\")"
            ),
            ProtoError::VersionMismatch { got } => write!(
                f,
                "protocol version mismatch: the message is version {got}, \
                 this side speaks version {PROTOCOL_VERSION}"
            ),
            ProtoError::UnknownKind(kind) => write!(f, "unknown message kind {kind:#x}"),
            ProtoError::WrongKind { expected, got } => {
                write!(f, "wrong message kind: expected {expected}, got {got}")
            }
            ProtoError::SizeMismatch { header, actual } => write!(
                f,
                "size mismatch: the header says {header} bytes, the message has {actual}"
            ),
            ProtoError::TooManyTargets(count) => {
                write!(f, "{count} target names, at most {MAX_TARGETS} are allowed")
            }
            ProtoError::BadName { index } => write!(
                f,
                "target name #{index} is invalid: a name is 1 to {MAX_NAME_LEN} bytes of UTF-8 \
                 without NUL, control characters, spaces or path separators"
            ),
            ProtoError::Status(status) => match status_name(status) {
                Some(name) => write!(f, "the driver failed the request: {name} ({status:#010x})"),
                None => write!(
                    f,
                    "the driver failed the request with status {status:#010x}"
                ),
            },
            ProtoError::BadField(what) => write!(f, "invalid field: {what}"),
        }
    }
}

/// Is `name` acceptable as a target name? Names end up in the registry's
/// space-separated `VerifyDrivers` and are matched against image file names,
/// so spaces, path separators and control characters can never match.
pub fn check_target_name(name: &[u8]) -> Option<&str> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let name = core::str::from_utf8(name).ok()?;
    let forbidden = |c: char| c.is_ascii_control() || c == ' ' || c == '/' || c == '\\';
    if name.contains(forbidden) {
        return None;
    }
    Some(name)
}

// ---------------------------------------------------------------------------
// Byte cursors. They never index out of bounds: a write past the end is
// dropped and a read past the end gives zeros. Callers check lengths first
// (`Put::need`, `Get::need`), so neither happens; the fallbacks only keep the
// code free of panicking paths.

struct Put<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Put<'a> {
    /// A cursor over the first `need` bytes of `out`.
    fn need(out: &'a mut [u8], need: usize) -> Result<Put<'a>, ProtoError> {
        let got = out.len();
        let buf = out
            .get_mut(..need)
            .ok_or(ProtoError::TooShort { need, got })?;
        Ok(Put { buf, pos: 0 })
    }

    fn bytes(&mut self, src: &[u8]) {
        let end = self.pos.saturating_add(src.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(src);
        }
        self.pos = end;
    }

    fn zeros(&mut self, n: usize) {
        for _ in 0..n {
            self.u8(0);
        }
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

struct Get<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Get<'a> {
    /// A cursor over the first `need` bytes of `buf`.
    fn need(buf: &'a [u8], need: usize) -> Result<Get<'a>, ProtoError> {
        let got = buf.len();
        let buf = buf.get(..need).ok_or(ProtoError::TooShort { need, got })?;
        Ok(Get { buf, pos: 0 })
    }

    /// A cursor over a message body (after the header) that must hold at
    /// least `need` bytes; sizes in the error count the header too.
    fn body(body: &'a [u8], need: usize) -> Result<Get<'a>, ProtoError> {
        Get::need(body, need).map_err(|_| ProtoError::TooShort {
            need: HEADER_SIZE + need,
            got: HEADER_SIZE + body.len(),
        })
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let end = self.pos.saturating_add(N);
        if let Some(src) = self.buf.get(self.pos..end) {
            out.copy_from_slice(src);
        }
        self.pos = end;
        out
    }

    fn u8(&mut self) -> u8 {
        u8::from_le_bytes(self.array())
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Reserved bytes must be zero so that they can gain a meaning later.
    fn reserved<const N: usize>(&mut self, what: &'static str) -> Result<(), ProtoError> {
        if self.array::<N>() == [0; N] {
            Ok(())
        } else {
            Err(ProtoError::BadField(what))
        }
    }
}

fn counter_from_u8(value: u8) -> Result<Counter, ProtoError> {
    // `Counter::ALL` is in index order (checked in `code`'s tests).
    Counter::ALL
        .get(usize::from(value))
        .copied()
        .ok_or(ProtoError::BadField("counter"))
}

/// A size that came from a `usize` but must go into a u32 field; every
/// caller keeps it below u32::MAX, saturating is only a no-panic fallback.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------
// The header.

/// The 16 bytes that start every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// A [`Kind`] value.
    pub kind: u16,
    /// The message's total size, header included.
    pub size: u32,
    /// 0 in requests; in replies [`STATUS_SUCCESS`] or a failure status.
    pub status: u32,
}

impl Header {
    /// A header of this protocol version.
    pub const fn new(kind: Kind, size: u32, status: u32) -> Header {
        Header {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            kind: kind.value(),
            size,
            status,
        }
    }

    /// The first 16 bytes of `buf`, unchecked beyond their presence.
    pub fn read(buf: &[u8]) -> Result<Header, ProtoError> {
        let mut g = Get::need(buf, HEADER_SIZE)?;
        Ok(Header {
            magic: g.u32(),
            version: g.u16(),
            kind: g.u16(),
            size: g.u32(),
            status: g.u32(),
        })
    }

    /// Writes the header at the start of `out`; returns [`HEADER_SIZE`].
    pub fn write(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, HEADER_SIZE)?;
        self.put(&mut p);
        Ok(p.pos)
    }

    fn put(&self, p: &mut Put<'_>) {
        p.u32(self.magic);
        p.u16(self.version);
        p.u16(self.kind);
        p.u32(self.size);
        p.u32(self.status);
    }
}

/// Checks what requests and replies share: presence, magic, version.
fn open(buf: &[u8]) -> Result<(Header, usize), ProtoError> {
    let h = Header::read(buf)?;
    if h.magic != MAGIC {
        return Err(ProtoError::BadMagic(h.magic));
    }
    if h.version != PROTOCOL_VERSION {
        return Err(ProtoError::VersionMismatch { got: h.version });
    }
    let size = usize::try_from(h.size).unwrap_or(usize::MAX);
    Ok((h, size))
}

/// A request's header and body. The input buffer of a buffered IOCTL is
/// exactly what the caller sent, so its size must match the header's.
fn open_request(buf: &[u8]) -> Result<(Kind, &[u8]), ProtoError> {
    let (h, size) = open(buf)?;
    let mismatch = ProtoError::SizeMismatch {
        header: h.size,
        actual: buf.len(),
    };
    if size != buf.len() || size < HEADER_SIZE {
        return Err(mismatch);
    }
    if h.status != STATUS_SUCCESS {
        return Err(ProtoError::BadField("status of a request must be 0"));
    }
    let kind = Kind::from_value(h.kind).ok_or(ProtoError::UnknownKind(h.kind))?;
    let body = buf.get(HEADER_SIZE..size).ok_or(mismatch)?;
    Ok((kind, body))
}

/// A reply's header and body. The output buffer may be larger than the
/// reply, so the header's size may be less than the buffer. The status is
/// checked before the kind, so that a failure answer to an unknown kind still
/// reads as the failure it is.
fn open_reply(buf: &[u8], expected: Option<Kind>) -> Result<(Kind, &[u8]), ProtoError> {
    let (h, size) = open(buf)?;
    let mismatch = ProtoError::SizeMismatch {
        header: h.size,
        actual: buf.len(),
    };
    if size > buf.len() || size < HEADER_SIZE {
        return Err(mismatch);
    }
    if h.status != STATUS_SUCCESS {
        return Err(ProtoError::Status(h.status));
    }
    let kind = Kind::from_value(h.kind).ok_or(ProtoError::UnknownKind(h.kind))?;
    if let Some(expected) = expected
        && expected != kind
    {
        return Err(ProtoError::WrongKind {
            expected,
            got: kind,
        });
    }
    let body = buf.get(HEADER_SIZE..size).ok_or(mismatch)?;
    Ok((kind, body))
}

/// A body that must be exactly `len` bytes.
fn exact(body: &[u8], len: usize) -> Result<Get<'_>, ProtoError> {
    let g = Get::body(body, len)?;
    if body.len() > len {
        return Err(ProtoError::SizeMismatch {
            header: to_u32(HEADER_SIZE + body.len()),
            actual: HEADER_SIZE + len,
        });
    }
    Ok(g)
}

// ---------------------------------------------------------------------------
// Requests.

/// Body of [`Kind::GetSites`]: a page of the site table, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetSites {
    /// Index of the first site wanted.
    pub start: u32,
    /// At most this many sites (`u32::MAX`: as many as the buffer holds).
    pub max: u32,
}

impl GetSites {
    /// Encodes the request into `out`; returns its size.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        Request::GetSites(*self).encode(out)
    }
}

/// Body of [`Kind::GetEvents`]: events from a sequence number on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetEvents {
    /// The first sequence number wanted (the last reply's `next_seq`).
    pub since_seq: u64,
    /// At most this many events (`u32::MAX`: as many as the buffer holds).
    pub max: u32,
}

impl GetEvents {
    /// Encodes the request into `out`; returns its size.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        Request::GetEvents(*self).encode(out)
    }
}

/// Body of [`Kind::SetSettings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetSettings<'a> {
    /// Verifier flags (`VerifyDriverLevel`).
    pub verify_level: u32,
    /// What to do on a violation.
    pub action: Action,
    /// Target image names (`VerifyDrivers`).
    pub targets: Targets<'a>,
}

impl SetSettings<'_> {
    /// Encodes the request into `out`; returns its size.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        Request::SetSettings(*self).encode(out)
    }
}

/// The target names of [`SetSettings`]: a caller's list when encoding, the
/// validated bytes of the request when decoded.
#[derive(Clone, Copy)]
pub struct Targets<'a>(TargetsRepr<'a>);

#[derive(Clone, Copy)]
enum TargetsRepr<'a> {
    List(&'a [&'a str]),
    /// `count` names, each a u16 length and its bytes, all validated.
    Wire {
        bytes: &'a [u8],
        count: u32,
    },
}

impl<'a> Targets<'a> {
    /// Names to send; they are validated when the request is encoded.
    pub const fn new(names: &'a [&'a str]) -> Targets<'a> {
        Targets(TargetsRepr::List(names))
    }

    /// How many names.
    pub fn len(&self) -> usize {
        match self.0 {
            TargetsRepr::List(names) => names.len(),
            TargetsRepr::Wire { count, .. } => count as usize,
        }
    }

    /// No names at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names, in order.
    pub fn iter(&self) -> TargetNames<'a> {
        TargetNames(match self.0 {
            TargetsRepr::List(names) => NamesRepr::List(names.iter()),
            TargetsRepr::Wire { bytes, count } => NamesRepr::Wire { bytes, left: count },
        })
    }

    /// Bytes the names take on the wire, after validating them.
    fn wire_len(&self) -> Result<usize, ProtoError> {
        if self.len() > MAX_TARGETS {
            return Err(ProtoError::TooManyTargets(to_u32(self.len())));
        }
        let mut len = 0usize;
        for (index, name) in self.iter().enumerate() {
            if check_target_name(name.as_bytes()).is_none() {
                return Err(ProtoError::BadName {
                    index: to_u32(index),
                });
            }
            len += 2 + name.len();
        }
        Ok(len)
    }
}

impl<'a> IntoIterator for Targets<'a> {
    type Item = &'a str;
    type IntoIter = TargetNames<'a>;

    fn into_iter(self) -> TargetNames<'a> {
        self.iter()
    }
}

impl PartialEq for Targets<'_> {
    /// Equal names in the same order, however each side holds them.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Targets<'_> {}

impl fmt::Debug for Targets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the names of [`Targets`].
#[derive(Clone, Debug)]
pub struct TargetNames<'a>(NamesRepr<'a>);

#[derive(Clone, Debug)]
enum NamesRepr<'a> {
    List(core::slice::Iter<'a, &'a str>),
    Wire { bytes: &'a [u8], left: u32 },
}

impl<'a> Iterator for TargetNames<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            NamesRepr::List(names) => names.next().copied(),
            NamesRepr::Wire { bytes, left } => {
                if *left == 0 {
                    return None;
                }
                // Validated by `Request::decode`; a failure here only ends
                // the iteration early.
                let (len, rest) = bytes.split_at_checked(2)?;
                let len = u16::from_le_bytes(len.try_into().ok()?);
                let (name, rest) = rest.split_at_checked(usize::from(len))?;
                *bytes = rest;
                *left -= 1;
                core::str::from_utf8(name).ok()
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            NamesRepr::List(names) => names.size_hint(),
            NamesRepr::Wire { left, .. } => (0, Some(*left as usize)),
        }
    }
}

/// A request, as civctl sends it and civ.sys reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// [`Kind::QueryVersion`]; no body.
    QueryVersion,
    /// [`Kind::GetStatus`]; no body.
    GetStatus,
    /// [`Kind::GetSites`].
    GetSites(GetSites),
    /// [`Kind::GetEvents`].
    GetEvents(GetEvents),
    /// [`Kind::SetSettings`]; the names borrow the request buffer.
    SetSettings(SetSettings<'a>),
    /// [`Kind::ResetLog`]; no body.
    ResetLog,
}

impl<'a> Request<'a> {
    /// The request's kind.
    pub const fn kind(&self) -> Kind {
        match self {
            Request::QueryVersion => Kind::QueryVersion,
            Request::GetStatus => Kind::GetStatus,
            Request::GetSites(_) => Kind::GetSites,
            Request::GetEvents(_) => Kind::GetEvents,
            Request::SetSettings(_) => Kind::SetSettings,
            Request::ResetLog => Kind::ResetLog,
        }
    }

    /// The encoded size, header included; validates target names.
    pub fn encoded_len(&self) -> Result<usize, ProtoError> {
        Ok(match self {
            Request::QueryVersion | Request::GetStatus | Request::ResetLog => HEADER_SIZE,
            Request::GetSites(_) => GET_SITES_SIZE,
            Request::GetEvents(_) => GET_EVENTS_SIZE,
            Request::SetSettings(s) => SET_SETTINGS_MIN + s.targets.wire_len()?,
        })
    }

    /// Encodes the request at the start of `out`; returns its size. Nothing
    /// is written unless the whole request is valid and fits.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let len = self.encoded_len()?;
        let mut p = Put::need(out, len)?;
        Header::new(self.kind(), to_u32(len), STATUS_SUCCESS).put(&mut p);
        match self {
            Request::QueryVersion | Request::GetStatus | Request::ResetLog => {}
            Request::GetSites(r) => {
                p.u32(r.start);
                p.u32(r.max);
            }
            Request::GetEvents(r) => {
                p.u64(r.since_seq);
                p.u32(r.max);
                p.u32(0);
            }
            Request::SetSettings(s) => {
                p.u32(s.verify_level);
                p.u32(s.action as u32);
                p.u32(to_u32(s.targets.len()));
                p.u32(0);
                for name in s.targets.iter() {
                    // `wire_len` checked every name is at most 255 bytes.
                    p.u16(u16::try_from(name.len()).unwrap_or(u16::MAX));
                    p.bytes(name.as_bytes());
                }
            }
        }
        Ok(p.pos)
    }

    /// Decodes and validates a whole request; `buf` must be exactly the
    /// message (the input buffer of the IOCTL).
    pub fn decode(buf: &'a [u8]) -> Result<Request<'a>, ProtoError> {
        let (kind, body) = open_request(buf)?;
        match kind {
            Kind::QueryVersion => exact(body, 0).map(|_| Request::QueryVersion),
            Kind::GetStatus => exact(body, 0).map(|_| Request::GetStatus),
            Kind::ResetLog => exact(body, 0).map(|_| Request::ResetLog),
            Kind::GetSites => {
                let mut g = exact(body, GET_SITES_SIZE - HEADER_SIZE)?;
                Ok(Request::GetSites(GetSites {
                    start: g.u32(),
                    max: g.u32(),
                }))
            }
            Kind::GetEvents => {
                let mut g = exact(body, GET_EVENTS_SIZE - HEADER_SIZE)?;
                let since_seq = g.u64();
                let max = g.u32();
                g.reserved::<4>("GetEvents reserved")?;
                Ok(Request::GetEvents(GetEvents { since_seq, max }))
            }
            Kind::SetSettings => decode_settings(body).map(Request::SetSettings),
        }
    }

    /// Decodes a request that came with IOCTL `code`, as the driver does:
    /// the header's kind must be the IOCTL's.
    pub fn decode_ioctl(code: u32, buf: &'a [u8]) -> Result<Request<'a>, ProtoError> {
        // The function number occupies bits 2..14 of the code.
        let expected =
            Kind::from_ioctl(code).ok_or(ProtoError::UnknownKind(((code >> 2) & 0xFFF) as u16))?;
        let request = Request::decode(buf)?;
        if request.kind() != expected {
            return Err(ProtoError::WrongKind {
                expected,
                got: request.kind(),
            });
        }
        Ok(request)
    }
}

fn decode_settings(body: &[u8]) -> Result<SetSettings<'_>, ProtoError> {
    const FIXED: usize = SET_SETTINGS_MIN - HEADER_SIZE;
    let mut g = Get::body(body, FIXED)?;
    let verify_level = g.u32();
    let action = Action::from_value(g.u32()).ok_or(ProtoError::BadField("action"))?;
    let count = g.u32();
    g.reserved::<4>("SetSettings reserved")?;
    if count as usize > MAX_TARGETS {
        return Err(ProtoError::TooManyTargets(count));
    }
    let names = body.get(FIXED..).unwrap_or_default();
    let mut rest = names;
    for index in 0..count {
        let at = HEADER_SIZE + FIXED + (names.len() - rest.len());
        let short = |need: usize| ProtoError::TooShort {
            need: at + need,
            got: HEADER_SIZE + body.len(),
        };
        let (len, after) = rest.split_at_checked(2).ok_or(short(2))?;
        let len = usize::from(u16::from_le_bytes(len.try_into().map_err(|_| short(2))?));
        if len == 0 || len > MAX_NAME_LEN {
            return Err(ProtoError::BadName { index });
        }
        let (name, after) = after.split_at_checked(len).ok_or(short(2 + len))?;
        if check_target_name(name).is_none() {
            return Err(ProtoError::BadName { index });
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err(ProtoError::SizeMismatch {
            header: to_u32(HEADER_SIZE + body.len()),
            actual: HEADER_SIZE + body.len() - rest.len(),
        });
    }
    Ok(SetSettings {
        verify_level,
        action,
        targets: Targets(TargetsRepr::Wire {
            bytes: names,
            count,
        }),
    })
}

// ---------------------------------------------------------------------------
// Records.

/// A fixed-size record at the end of a reply.
pub trait Record: Copy {
    /// Bytes of one record on the wire.
    const SIZE: usize;

    /// Writes the record at the start of `out`; returns [`Self::SIZE`].
    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError>;

    /// Reads and validates a record from the first [`Self::SIZE`] bytes.
    fn decode(bytes: &[u8]) -> Result<Self, ProtoError>;
}

/// A target the driver watches: one entry of the status reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetRecord {
    /// The image name, UTF-8, NUL-padded (no NUL when it fills all 64 bytes).
    /// Use [`TargetRecord::name`] and [`TargetRecord::set_name`].
    pub name: [u8; TARGET_NAME_LEN],
    /// Where the image is loaded (0 when not loaded).
    pub base: u64,
    /// SizeOfImage.
    pub size: u64,
    /// The seven DV counters, indexed by `Counter as usize`.
    pub counters: [u64; 7],
    /// How many IAT slots civ rewrote.
    pub hooked_slots: u32,
    /// [`TargetRecord::LATE`], [`TargetRecord::IMAGE_CHECKED`], [`TargetRecord::UNLOADED`].
    pub flags: u32,
}

impl TargetRecord {
    /// The image was already loaded when civ hooked it, so calls made before
    /// that (often DriverEntry's) were not seen.
    pub const LATE: u32 = 1 << 0;
    /// The image checks 0x2003–0x2005 ran on it.
    pub const IMAGE_CHECKED: u32 = 1 << 1;
    /// The image has been unloaded since.
    pub const UNLOADED: u32 = 1 << 2;
    /// Every defined flag; others must be zero.
    pub const ALL_FLAGS: u32 = Self::LATE | Self::IMAGE_CHECKED | Self::UNLOADED;

    /// A record with this name and everything else zero.
    pub fn new(name: &str) -> TargetRecord {
        let mut t = TargetRecord {
            name: [0; TARGET_NAME_LEN],
            base: 0,
            size: 0,
            counters: [0; 7],
            hooked_slots: 0,
            flags: 0,
        };
        t.set_name(name);
        t
    }

    /// The name: the bytes before the first NUL, cut to their valid UTF-8.
    pub fn name(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TARGET_NAME_LEN);
        let bytes = self.name.get(..end).unwrap_or_default();
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or_default())
                .unwrap_or_default(),
        }
    }

    /// Sets the name, cut to 64 bytes on a character boundary (and at a NUL,
    /// which would end it on the wire anyway).
    pub fn set_name(&mut self, name: &str) {
        let mut end = name
            .bytes()
            .position(|b| b == 0)
            .unwrap_or(name.len())
            .min(TARGET_NAME_LEN);
        // 0 is always a boundary, so this stops.
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        self.name = [0; TARGET_NAME_LEN];
        let src = name.as_bytes().get(..end).unwrap_or_default();
        if let Some(dst) = self.name.get_mut(..src.len()) {
            dst.copy_from_slice(src);
        }
    }

    /// One counter.
    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters
            .get(counter as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl Record for TargetRecord {
    const SIZE: usize = 144;

    /// Writes the canonical form: the name as [`TargetRecord::name`] reads
    /// it and only the defined flags, so that whatever the driver put in the
    /// fields, the reader accepts the record.
    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, Self::SIZE)?;
        let name = self.name();
        p.bytes(name.as_bytes());
        p.zeros(TARGET_NAME_LEN.saturating_sub(name.len()));
        p.u64(self.base);
        p.u64(self.size);
        for c in self.counters {
            p.u64(c);
        }
        p.u32(self.hooked_slots);
        p.u32(self.flags & Self::ALL_FLAGS);
        Ok(p.pos)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut g = Get::need(bytes, Self::SIZE)?;
        let name: [u8; TARGET_NAME_LEN] = g.array();
        let end = name.iter().position(|&b| b == 0).unwrap_or(TARGET_NAME_LEN);
        let (text, pad) = name.split_at_checked(end).unwrap_or_default();
        if core::str::from_utf8(text).is_err() || pad.iter().any(|&b| b != 0) {
            return Err(ProtoError::BadField("target name"));
        }
        let base = g.u64();
        let size = g.u64();
        let mut counters = [0; 7];
        for c in &mut counters {
            *c = g.u64();
        }
        let hooked_slots = g.u32();
        let flags = g.u32();
        if flags & !Self::ALL_FLAGS != 0 {
            return Err(ProtoError::BadField("target flags"));
        }
        Ok(TargetRecord {
            name,
            base,
            size,
            counters,
            hooked_slots,
            flags,
        })
    }
}

/// A unique violation site: one entry of the sites reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteRecord {
    /// Which DV counter the violation counts in.
    pub counter: Counter,
    /// Index into the status reply's targets, or [`UNKNOWN_TARGET`].
    pub target: u8,
    /// Index into the hook catalog, or [`NO_API`] for an image finding.
    pub api: u8,
    /// The caller's offset from the target's base (the finding's RVA for an
    /// image finding), so civctl can symbolize it.
    pub offset: u64,
    /// Arg3 of the bug check DV would raise.
    pub arg3: u64,
    /// Arg4 of the bug check DV would raise.
    pub arg4: u64,
    /// When the site was first hit (100-ns units).
    pub first_time: u64,
    /// When the site was last hit (100-ns units).
    pub last_time: u64,
    /// How many times it was hit.
    pub hits: u64,
}

impl Record for SiteRecord {
    const SIZE: usize = 56;

    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, Self::SIZE)?;
        p.u8(self.counter as u8);
        p.u8(self.target);
        p.u8(self.api);
        p.zeros(1 + 4);
        p.u64(self.offset);
        p.u64(self.arg3);
        p.u64(self.arg4);
        p.u64(self.first_time);
        p.u64(self.last_time);
        p.u64(self.hits);
        Ok(p.pos)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut g = Get::need(bytes, Self::SIZE)?;
        let counter = counter_from_u8(g.u8())?;
        let target = g.u8();
        let api = g.u8();
        g.reserved::<5>("site reserved")?;
        Ok(SiteRecord {
            counter,
            target,
            api,
            offset: g.u64(),
            arg3: g.u64(),
            arg4: g.u64(),
            first_time: g.u64(),
            last_time: g.u64(),
            hits: g.u64(),
        })
    }
}

/// One violation as it happened: one entry of the events reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Sequence number, increasing by one per event.
    pub seq: u64,
    /// When it happened (100-ns units).
    pub time: u64,
    /// Which DV counter it counts in.
    pub counter: Counter,
    /// Index into the status reply's targets, or [`UNKNOWN_TARGET`].
    pub target: u8,
    /// Index into the hook catalog, or [`NO_API`] for an image finding.
    pub api: u8,
    /// The caller's offset from the target's base.
    pub offset: u64,
    /// Arg3 of the bug check DV would raise.
    pub arg3: u64,
    /// Arg4 of the bug check DV would raise.
    pub arg4: u64,
}

impl Record for EventRecord {
    const SIZE: usize = 48;

    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, Self::SIZE)?;
        p.u64(self.seq);
        p.u64(self.time);
        p.u8(self.counter as u8);
        p.u8(self.target);
        p.u8(self.api);
        p.zeros(5);
        p.u64(self.offset);
        p.u64(self.arg3);
        p.u64(self.arg4);
        Ok(p.pos)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut g = Get::need(bytes, Self::SIZE)?;
        let seq = g.u64();
        let time = g.u64();
        let counter = counter_from_u8(g.u8())?;
        let target = g.u8();
        let api = g.u8();
        g.reserved::<5>("event reserved")?;
        Ok(EventRecord {
            seq,
            time,
            counter,
            target,
            api,
            offset: g.u64(),
            arg3: g.u64(),
            arg4: g.u64(),
        })
    }
}

/// The validated records of a decoded reply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Records<'a, T> {
    bytes: &'a [u8],
    record: PhantomData<T>,
}

impl<'a, T: Record> Records<'a, T> {
    /// How many records.
    pub fn len(&self) -> usize {
        self.bytes.len() / T::SIZE
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() < T::SIZE
    }

    /// The record at `index`.
    pub fn get(&self, index: usize) -> Option<T> {
        let start = index.checked_mul(T::SIZE)?;
        let end = start.checked_add(T::SIZE)?;
        T::decode(self.bytes.get(start..end)?).ok()
    }

    /// The records, in order.
    pub fn iter(&self) -> RecordIter<'a, T> {
        // `chunks_exact` panics on 0; no record is empty.
        const { assert!(T::SIZE > 0) };
        RecordIter {
            chunks: self.bytes.chunks_exact(T::SIZE),
            record: PhantomData,
        }
    }
}

impl<'a, T: Record> IntoIterator for Records<'a, T> {
    type Item = T;
    type IntoIter = RecordIter<'a, T>;

    fn into_iter(self) -> RecordIter<'a, T> {
        self.iter()
    }
}

impl<T: Record + fmt::Debug> fmt::Debug for Records<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`Records`].
#[derive(Clone, Debug)]
pub struct RecordIter<'a, T> {
    chunks: ChunksExact<'a, u8>,
    record: PhantomData<T>,
}

impl<T: Record> Iterator for RecordIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // Every record was validated when the reply was decoded.
        T::decode(self.chunks.next()?).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl<T: Record> ExactSizeIterator for RecordIter<'_, T> {}

/// Validates `count` records of `T` after the `fixed` bytes of `body`, which
/// must be exactly what the body holds.
fn records<T: Record>(body: &[u8], fixed: usize, count: u32) -> Result<Records<'_, T>, ProtoError> {
    let bytes = body.get(fixed..).unwrap_or_default();
    let need = (count as usize)
        .checked_mul(T::SIZE)
        .and_then(|n| n.checked_add(HEADER_SIZE + fixed))
        .unwrap_or(usize::MAX);
    let have = HEADER_SIZE + body.len();
    if have < need {
        return Err(ProtoError::TooShort { need, got: have });
    }
    if have > need {
        return Err(ProtoError::SizeMismatch {
            header: to_u32(have),
            actual: need,
        });
    }
    for chunk in bytes.chunks_exact(T::SIZE) {
        T::decode(chunk)?;
    }
    Ok(Records {
        bytes,
        record: PhantomData,
    })
}

/// What a record writer wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the reply, header included (the IRP's Information).
    pub bytes: usize,
    /// Records in the reply.
    pub records: u32,
}

/// An output buffer must hold at least the reply's fixed part.
fn fits(out: &[u8], need: usize) -> Result<(), ProtoError> {
    if out.len() < need {
        return Err(ProtoError::TooShort {
            need,
            got: out.len(),
        });
    }
    Ok(())
}

/// How many records of `size` fit after `fixed` bytes. The size field is a
/// u32, so a reply never grows past u32::MAX bytes whatever the buffer.
fn room(out_len: usize, fixed: usize, size: usize) -> usize {
    let usable = out_len.min(u32::MAX as usize);
    usable.saturating_sub(fixed) / size.max(1)
}

/// Writes `record` at `at` in `out`, which the caller sized for it.
fn put_record<T: Record>(out: &mut [u8], at: usize, record: &T) -> Result<usize, ProtoError> {
    record.encode(out.get_mut(at..).unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Replies.

/// The reply to [`Kind::QueryVersion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u16,
    /// The driver's major version.
    pub driver_major: u16,
    /// The driver's minor version.
    pub driver_minor: u16,
    /// The driver's patch version.
    pub driver_patch: u16,
    /// Feature bits; none are defined in version 1.
    pub features: u32,
}

impl Version {
    /// A version reply of this protocol.
    pub const fn new(major: u16, minor: u16, patch: u16, features: u32) -> Version {
        Version {
            protocol: PROTOCOL_VERSION,
            driver_major: major,
            driver_minor: minor,
            driver_patch: patch,
            features,
        }
    }

    /// Encodes the reply into `out`; returns [`VERSION_REPLY_SIZE`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, VERSION_REPLY_SIZE)?;
        Header::new(
            Kind::QueryVersion,
            to_u32(VERSION_REPLY_SIZE),
            STATUS_SUCCESS,
        )
        .put(&mut p);
        p.u16(self.protocol);
        p.u16(self.driver_major);
        p.u16(self.driver_minor);
        p.u16(self.driver_patch);
        p.u32(self.features);
        p.u32(0);
        Ok(p.pos)
    }
}

fn version_body(body: &[u8]) -> Result<Version, ProtoError> {
    let mut g = exact(body, VERSION_REPLY_SIZE - HEADER_SIZE)?;
    let protocol = g.u16();
    if protocol != PROTOCOL_VERSION {
        return Err(ProtoError::VersionMismatch { got: protocol });
    }
    let v = Version {
        protocol,
        driver_major: g.u16(),
        driver_minor: g.u16(),
        driver_patch: g.u16(),
        features: g.u32(),
    };
    g.reserved::<4>("Version reserved")?;
    Ok(v)
}

/// The fixed part of the status reply, as the driver knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusHead {
    /// Verifier flags in effect.
    pub verify_level: u32,
    /// What civ does on a violation.
    pub action: Action,
    /// When civ started (100-ns units since 1601, as KeQuerySystemTime).
    pub started_time: u64,
}

/// The reply to [`Kind::GetStatus`], decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusReply<'a> {
    /// Settings in effect.
    pub head: StatusHead,
    /// The driver had more targets than the output buffer could hold.
    pub truncated: bool,
    /// The targets that fit.
    pub targets: Records<'a, TargetRecord>,
}

/// Writes the status reply: `head` and as many `targets` as `out` holds,
/// setting `truncated` if some did not fit.
pub fn write_status<I>(head: &StatusHead, targets: I, out: &mut [u8]) -> Result<Written, ProtoError>
where
    I: IntoIterator<Item = TargetRecord>,
{
    fits(out, STATUS_REPLY_MIN)?;
    let room = room(out.len(), STATUS_REPLY_MIN, TargetRecord::SIZE);
    let mut end = STATUS_REPLY_MIN;
    let mut count = 0usize;
    let mut truncated = false;
    for target in targets {
        if count == room {
            truncated = true;
            break;
        }
        end += put_record(out, end, &target)?;
        count += 1;
    }
    let mut p = Put::need(out, STATUS_REPLY_MIN)?;
    Header::new(Kind::GetStatus, to_u32(end), STATUS_SUCCESS).put(&mut p);
    p.u32(head.verify_level);
    p.u32(head.action as u32);
    p.u64(head.started_time);
    p.u32(to_u32(count));
    p.u32(u32::from(truncated));
    Ok(Written {
        bytes: end,
        records: to_u32(count),
    })
}

fn status_body(body: &[u8]) -> Result<StatusReply<'_>, ProtoError> {
    let mut g = Get::body(body, STATUS_REPLY_MIN - HEADER_SIZE)?;
    let verify_level = g.u32();
    let action = Action::from_value(g.u32()).ok_or(ProtoError::BadField("action"))?;
    let started_time = g.u64();
    let count = g.u32();
    let truncated = match g.u32() {
        0 => false,
        1 => true,
        _ => return Err(ProtoError::BadField("truncated")),
    };
    Ok(StatusReply {
        head: StatusHead {
            verify_level,
            action,
            started_time,
        },
        truncated,
        targets: records(body, STATUS_REPLY_MIN - HEADER_SIZE, count)?,
    })
}

/// The reply to [`Kind::GetSites`], decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SitesReply<'a> {
    /// Sites in the driver's table, all pages together.
    pub total: u32,
    /// Sites the driver could not record because its table was full.
    pub dropped: u64,
    /// This page's sites, from the request's `start` on.
    pub sites: Records<'a, SiteRecord>,
}

impl SitesReply<'_> {
    /// The request for the page after this one, or `None` when this page
    /// reached the end of the table or made no progress (`max` 0, or an
    /// output buffer too small for one site).
    pub fn next_page(&self, request: &GetSites) -> Option<GetSites> {
        let count = u32::try_from(self.sites.len()).ok()?;
        let start = request.start.checked_add(count)?;
        (count > 0 && start < self.total).then_some(GetSites {
            start,
            max: request.max,
        })
    }
}

/// Writes the sites reply for `request`: `sites` is the whole table in
/// index order; the reply carries those from `request.start` on, at most
/// `request.max` and as many as `out` holds, and `total` counts them all.
pub fn write_sites<I>(
    request: &GetSites,
    dropped: u64,
    sites: I,
    out: &mut [u8],
) -> Result<Written, ProtoError>
where
    I: IntoIterator<Item = SiteRecord>,
{
    fits(out, SITES_REPLY_MIN)?;
    let room = room(out.len(), SITES_REPLY_MIN, SiteRecord::SIZE).min(request.max as usize);
    let mut end = SITES_REPLY_MIN;
    let mut count = 0usize;
    let mut total = 0u32;
    for (index, site) in sites.into_iter().enumerate() {
        total = total.saturating_add(1);
        if index >= request.start as usize && count < room {
            end += put_record(out, end, &site)?;
            count += 1;
        }
    }
    let mut p = Put::need(out, SITES_REPLY_MIN)?;
    Header::new(Kind::GetSites, to_u32(end), STATUS_SUCCESS).put(&mut p);
    p.u32(total);
    p.u32(to_u32(count));
    p.u64(dropped);
    Ok(Written {
        bytes: end,
        records: to_u32(count),
    })
}

fn sites_body(body: &[u8]) -> Result<SitesReply<'_>, ProtoError> {
    let mut g = Get::body(body, SITES_REPLY_MIN - HEADER_SIZE)?;
    let total = g.u32();
    let count = g.u32();
    let dropped = g.u64();
    Ok(SitesReply {
        total,
        dropped,
        sites: records(body, SITES_REPLY_MIN - HEADER_SIZE, count)?,
    })
}

/// The reply to [`Kind::GetEvents`], decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventsReply<'a> {
    /// The `since_seq` of the next request.
    pub next_seq: u64,
    /// Sequence numbers between the request's `since_seq` and `next_seq`
    /// that this reply does not carry: events the ring overwrote before
    /// they were read.
    pub lost: u64,
    /// The events, in increasing sequence.
    pub events: Records<'a, EventRecord>,
}

/// Writes the events reply for `request`: `events` is the ring in
/// increasing sequence; the reply carries those at or after
/// `request.since_seq`, at most `request.max` and as many as `out` holds.
/// Out-of-order or repeated sequence numbers are skipped, so a reader that
/// follows `next_seq` sees every event at most once.
pub fn write_events<I>(
    request: &GetEvents,
    events: I,
    out: &mut [u8],
) -> Result<Written, ProtoError>
where
    I: IntoIterator<Item = EventRecord>,
{
    fits(out, EVENTS_REPLY_MIN)?;
    let room = room(out.len(), EVENTS_REPLY_MIN, EventRecord::SIZE).min(request.max as usize);
    let mut end = EVENTS_REPLY_MIN;
    let mut count = 0usize;
    let mut next = request.since_seq;
    let mut lost = 0u64;
    for event in events {
        if count == room {
            break;
        }
        if event.seq < next {
            continue;
        }
        end += put_record(out, end, &event)?;
        count += 1;
        lost = lost.saturating_add(event.seq - next);
        match event.seq.checked_add(1) {
            Some(n) => next = n,
            // Nothing can follow the last sequence number.
            None => {
                next = u64::MAX;
                break;
            }
        }
    }
    let mut p = Put::need(out, EVENTS_REPLY_MIN)?;
    Header::new(Kind::GetEvents, to_u32(end), STATUS_SUCCESS).put(&mut p);
    p.u64(next);
    p.u64(lost);
    p.u32(to_u32(count));
    p.u32(0);
    Ok(Written {
        bytes: end,
        records: to_u32(count),
    })
}

fn events_body(body: &[u8]) -> Result<EventsReply<'_>, ProtoError> {
    let mut g = Get::body(body, EVENTS_REPLY_MIN - HEADER_SIZE)?;
    let next_seq = g.u64();
    let lost = g.u64();
    let count = g.u32();
    g.reserved::<4>("Events reserved")?;
    Ok(EventsReply {
        next_seq,
        lost,
        events: records(body, EVENTS_REPLY_MIN - HEADER_SIZE, count)?,
    })
}

/// Does `kind`'s successful reply have no body?
const fn header_only(kind: Kind) -> bool {
    matches!(kind, Kind::SetSettings | Kind::ResetLog)
}

/// Writes the successful reply to [`Kind::SetSettings`] or
/// [`Kind::ResetLog`]: a header alone.
pub fn write_ack(kind: Kind, out: &mut [u8]) -> Result<usize, ProtoError> {
    if !header_only(kind) {
        return Err(ProtoError::BadField("this kind's reply has a body"));
    }
    Header::new(kind, to_u32(HEADER_SIZE), STATUS_SUCCESS).write(out)
}

/// Writes a failure reply, a header alone with `status`, for the driver to
/// answer a request it cannot serve (`kind` as its IOCTL says); returns the
/// bytes written, 0 if `out` cannot hold a header.
pub fn reply_error(kind: Kind, status: u32, out: &mut [u8]) -> usize {
    Header::new(kind, to_u32(HEADER_SIZE), status)
        .write(out)
        .unwrap_or(0)
}

/// Decodes the reply to [`Kind::QueryVersion`]. `buf` may be longer than
/// the reply (the whole output buffer); the header's size bounds it.
pub fn decode_reply_version(buf: &[u8]) -> Result<Version, ProtoError> {
    let (_, body) = open_reply(buf, Some(Kind::QueryVersion))?;
    version_body(body)
}

/// Decodes the reply to [`Kind::GetStatus`].
pub fn decode_reply_status(buf: &[u8]) -> Result<StatusReply<'_>, ProtoError> {
    let (_, body) = open_reply(buf, Some(Kind::GetStatus))?;
    status_body(body)
}

/// Decodes the reply to [`Kind::GetSites`].
pub fn decode_reply_sites(buf: &[u8]) -> Result<SitesReply<'_>, ProtoError> {
    let (_, body) = open_reply(buf, Some(Kind::GetSites))?;
    sites_body(body)
}

/// Decodes the reply to [`Kind::GetEvents`].
pub fn decode_reply_events(buf: &[u8]) -> Result<EventsReply<'_>, ProtoError> {
    let (_, body) = open_reply(buf, Some(Kind::GetEvents))?;
    events_body(body)
}

/// Decodes the reply to [`Kind::SetSettings`] or [`Kind::ResetLog`].
pub fn decode_reply_ack(kind: Kind, buf: &[u8]) -> Result<(), ProtoError> {
    if !header_only(kind) {
        return Err(ProtoError::BadField("this kind's reply has a body"));
    }
    let (_, body) = open_reply(buf, Some(kind))?;
    exact(body, 0).map(|_| ())
}

/// Any reply, decoded by the kind in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// To [`Kind::QueryVersion`].
    Version(Version),
    /// To [`Kind::GetStatus`].
    Status(StatusReply<'a>),
    /// To [`Kind::GetSites`].
    Sites(SitesReply<'a>),
    /// To [`Kind::GetEvents`].
    Events(EventsReply<'a>),
    /// To [`Kind::SetSettings`]: done.
    SetSettings,
    /// To [`Kind::ResetLog`]: done.
    ResetLog,
}

impl<'a> Reply<'a> {
    /// Decodes a reply of any kind; a failure status is
    /// [`ProtoError::Status`].
    pub fn decode(buf: &'a [u8]) -> Result<Reply<'a>, ProtoError> {
        let (kind, body) = open_reply(buf, None)?;
        match kind {
            Kind::QueryVersion => version_body(body).map(Reply::Version),
            Kind::GetStatus => status_body(body).map(Reply::Status),
            Kind::GetSites => sites_body(body).map(Reply::Sites),
            Kind::GetEvents => events_body(body).map(Reply::Events),
            Kind::SetSettings => exact(body, 0).map(|_| Reply::SetSettings),
            Kind::ResetLog => exact(body, 0).map(|_| Reply::ResetLog),
        }
    }

    /// The reply's kind.
    pub const fn kind(&self) -> Kind {
        match self {
            Reply::Version(_) => Kind::QueryVersion,
            Reply::Status(_) => Kind::GetStatus,
            Reply::Sites(_) => Kind::GetSites,
            Reply::Events(_) => Kind::GetEvents,
            Reply::SetSettings => Kind::SetSettings,
            Reply::ResetLog => Kind::ResetLog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec;
    use std::vec::Vec;

    fn enc(r: &Request<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_REQUEST_SIZE];
        let n = r.encode(&mut buf).unwrap();
        assert_eq!(Ok(n), r.encoded_len());
        buf.truncate(n);
        buf
    }

    /// A header with the given fields followed by `body`, size = the total.
    fn message(kind: u16, status: u32, body: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_SIZE];
        let h = Header {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            kind,
            size: to_u32(HEADER_SIZE + body.len()),
            status,
        };
        h.write(&mut buf).unwrap();
        buf.extend_from_slice(body);
        buf
    }

    fn names_body(count: u32, names: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&VERIFY.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for n in names {
            body.extend_from_slice(&(n.len() as u16).to_le_bytes());
            body.extend_from_slice(n);
        }
        body
    }

    const VERIFY: u32 = crate::code::VERIFIER_FLAG_CODE_INTEGRITY;

    fn all_requests<'a>(names: &'a [&'a str]) -> Vec<Request<'a>> {
        vec![
            Request::QueryVersion,
            Request::GetStatus,
            Request::GetSites(GetSites { start: 7, max: 9 }),
            Request::GetEvents(GetEvents {
                since_seq: 0x0102_0304_0506_0708,
                max: u32::MAX,
            }),
            Request::SetSettings(SetSettings {
                verify_level: VERIFY,
                action: Action::Log,
                targets: Targets::new(names),
            }),
            Request::SetSettings(SetSettings {
                verify_level: 0,
                action: Action::BugCheck,
                targets: Targets::new(&[]),
            }),
            Request::ResetLog,
        ]
    }

    fn target(i: u64) -> TargetRecord {
        let mut t = TargetRecord::new(&std::format!("target{i}.sys"));
        t.base = 0xFFFF_F800_0000_0000 + i * 0x10000;
        t.size = 0x8000 + i;
        for (j, c) in t.counters.iter_mut().enumerate() {
            *c = i * 10 + j as u64;
        }
        t.hooked_slots = i as u32;
        t.flags = (i as u32) & TargetRecord::ALL_FLAGS;
        t
    }

    fn site(i: u64) -> SiteRecord {
        SiteRecord {
            counter: Counter::ALL[(i % 7) as usize],
            target: (i % 3) as u8,
            api: if i.is_multiple_of(5) { NO_API } else { i as u8 },
            offset: 0x1000 + i,
            arg3: i * 3,
            arg4: i * 4,
            first_time: 100 + i,
            last_time: 200 + i,
            hits: i + 1,
        }
    }

    fn event(seq: u64) -> EventRecord {
        EventRecord {
            seq,
            time: seq.wrapping_add(1000),
            counter: Counter::ALL[(seq % 7) as usize],
            target: UNKNOWN_TARGET,
            api: (seq % 15) as u8,
            offset: seq.wrapping_add(0x2000),
            arg3: seq,
            arg4: !seq,
        }
    }

    const HEAD: StatusHead = StatusHead {
        verify_level: VERIFY,
        action: Action::Log,
        started_time: 0x01DA_0000_0000_0000,
    };

    #[test]
    fn constants_and_ioctl_codes() {
        assert_eq!(MAGIC.to_le_bytes(), *b"CIV1");
        assert_eq!(DEVICE_NAME, r"\Device\CodeIntegrityVerifier");
        assert_eq!(DOS_NAME, r"\DosDevices\CodeIntegrityVerifier");
        assert_eq!(USER_PATH, r"\\.\CodeIntegrityVerifier");
        let expected = [
            (Kind::QueryVersion, 0x0022_2400),
            (Kind::GetStatus, 0x0022_6404),
            (Kind::GetSites, 0x0022_6408),
            (Kind::GetEvents, 0x0022_640C),
            (Kind::SetSettings, 0x0022_A410),
            (Kind::ResetLog, 0x0022_A414),
        ];
        for (kind, code) in expected {
            assert_eq!(kind.ioctl(), code, "{kind}");
            assert_eq!(Kind::from_ioctl(code), Some(kind));
            assert_eq!(Kind::from_value(kind.value()), Some(kind));
            // Same function, other access or method: not ours.
            assert_eq!(Kind::from_ioctl(code ^ (3 << 14)), None);
            assert_eq!(Kind::from_ioctl(code | 1), None);
        }
        assert_eq!(Kind::from_value(0x906), None);
        assert_eq!(Kind::from_value(0), None);
        assert_eq!(Kind::from_ioctl(0), None);
        assert_eq!(Action::from_value(2), None);
        assert_eq!(Action::Log as u32, 1);
        // The wire's values are the log's.
        assert_eq!(TargetRecord::LATE, crate::log::TARGET_LATE);
        assert_eq!(
            TargetRecord::IMAGE_CHECKED,
            crate::log::TARGET_IMAGE_CHECKED
        );
        assert_eq!(TargetRecord::UNLOADED, crate::log::TARGET_UNLOADED);
        assert_eq!(UNKNOWN_TARGET, crate::log::TARGET_UNKNOWN);
        assert_eq!(NO_API, crate::log::API_NONE);
        assert_eq!(TARGET_NAME_LEN, crate::log::NAME_LEN);
        assert_eq!(Action::from_value(1), Some(Action::Log));
    }

    #[test]
    fn golden_request_bytes() {
        let bytes = enc(&Request::GetSites(GetSites {
            start: 0x11223344,
            max: 5,
        }));
        let expected: [u8; GET_SITES_SIZE] = [
            b'C', b'I', b'V', b'1', // magic
            1, 0, // version
            0x02, 0x09, // kind 0x902
            24, 0, 0, 0, // size
            0, 0, 0, 0, // status
            0x44, 0x33, 0x22, 0x11, // start
            5, 0, 0, 0, // max
        ];
        assert_eq!(bytes, expected);

        let names = ["a.sys", "*"];
        let bytes = enc(&Request::SetSettings(SetSettings {
            verify_level: VERIFY,
            action: Action::BugCheck,
            targets: Targets::new(&names),
        }));
        let mut expected = message(0x904, 0, &names_body(2, &[b"a.sys", b"*"]));
        expected[HEADER_SIZE + 4] = 0; // action 0
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), SET_SETTINGS_MIN + 2 + 5 + 2 + 1);
    }

    #[test]
    fn record_layouts() {
        let mut t = target(3);
        t.base = 0x1122_3344_5566_7788;
        t.hooked_slots = 0xAABB_CCDD;
        t.flags = TargetRecord::LATE | TargetRecord::UNLOADED;
        let mut b = [0u8; TargetRecord::SIZE];
        assert_eq!(t.encode(&mut b), Ok(TargetRecord::SIZE));
        assert_eq!(&b[..11], b"target3.sys");
        assert!(b[11..64].iter().all(|&x| x == 0));
        assert_eq!(b[64..72], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(b[72..80], t.size.to_le_bytes());
        for i in 0..7 {
            assert_eq!(b[80 + 8 * i..88 + 8 * i], t.counters[i].to_le_bytes());
        }
        assert_eq!(b[136..140], 0xAABB_CCDDu32.to_le_bytes());
        assert_eq!(b[140..144], 5u32.to_le_bytes());
        assert_eq!(TargetRecord::decode(&b), Ok(t));

        let s = site(12);
        let mut b = [0xEEu8; SiteRecord::SIZE];
        assert_eq!(s.encode(&mut b), Ok(SiteRecord::SIZE));
        assert_eq!(b[..8], [5, 0, 12, 0, 0, 0, 0, 0]);
        assert_eq!(b[8..16], s.offset.to_le_bytes());
        assert_eq!(b[48..56], s.hits.to_le_bytes());
        assert_eq!(SiteRecord::decode(&b), Ok(s));

        let e = event(9);
        let mut b = [0xEEu8; EventRecord::SIZE];
        assert_eq!(e.encode(&mut b), Ok(EventRecord::SIZE));
        assert_eq!(b[..8], 9u64.to_le_bytes());
        assert_eq!(b[16..24], [2, 0xFF, 9, 0, 0, 0, 0, 0]);
        assert_eq!(b[24..32], e.offset.to_le_bytes());
        assert_eq!(b[40..48], e.arg4.to_le_bytes());
        assert_eq!(EventRecord::decode(&b), Ok(e));

        // Records that do not fit the buffer.
        assert_eq!(
            t.encode(&mut [0; 143]),
            Err(ProtoError::TooShort {
                need: 144,
                got: 143
            })
        );
        assert_eq!(
            SiteRecord::decode(&[0; 55]),
            Err(ProtoError::TooShort { need: 56, got: 55 })
        );
    }

    #[test]
    fn requests_roundtrip() {
        let long = "x".repeat(MAX_NAME_LEN);
        let many: Vec<String> = (0..MAX_TARGETS).map(|i| std::format!("d{i}.sys")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let lists: [&[&str]; 4] = [
            &["mydriver.sys", "*", "Ünïcödé-驱动.sys"],
            &[long.as_str()],
            &many,
            &[],
        ];
        for names in lists {
            for r in all_requests(names) {
                let bytes = enc(&r);
                let back = Request::decode(&bytes).unwrap();
                assert_eq!(back, r);
                assert_eq!(back.kind(), r.kind());
                assert_eq!(enc(&back), bytes, "re-encoding {r:?}");
                assert_eq!(Request::decode_ioctl(r.kind().ioctl(), &bytes), Ok(r));
                if let (Request::SetSettings(s), Request::SetSettings(sent)) = (back, r) {
                    let got: Vec<&str> = s.targets.iter().collect();
                    let want: Vec<&str> = sent.targets.iter().collect();
                    assert_eq!(got, want);
                    assert_eq!(s.targets.len(), want.len());
                }
            }
        }
        // The typed structs encode the same bytes as the enum.
        let mut a = [0u8; 64];
        let g = GetEvents {
            since_seq: 3,
            max: 4,
        };
        let n = g.encode(&mut a).unwrap();
        assert_eq!(a[..n], enc(&Request::GetEvents(g))[..]);
        let g = GetSites { start: 3, max: 4 };
        let n = g.encode(&mut a).unwrap();
        assert_eq!(a[..n], enc(&Request::GetSites(g))[..]);
        let s = SetSettings {
            verify_level: 1,
            action: Action::Log,
            targets: Targets::new(&["a"]),
        };
        let n = s.encode(&mut a).unwrap();
        assert_eq!(a[..n], enc(&Request::SetSettings(s))[..]);
    }

    #[test]
    fn short_and_truncated_messages() {
        let names = ["a.sys", "bb.sys"];
        for r in all_requests(&names) {
            let bytes = enc(&r);
            for len in 0..HEADER_SIZE {
                assert_eq!(
                    Request::decode(&bytes[..len]),
                    Err(ProtoError::TooShort {
                        need: HEADER_SIZE,
                        got: len
                    })
                );
            }
            for len in HEADER_SIZE..bytes.len() {
                assert_eq!(
                    Request::decode(&bytes[..len]),
                    Err(ProtoError::SizeMismatch {
                        header: bytes.len() as u32,
                        actual: len
                    })
                );
            }
            // A request must be exactly its size, trailing bytes included.
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(
                Request::decode(&longer),
                Err(ProtoError::SizeMismatch {
                    header: bytes.len() as u32,
                    actual: bytes.len() + 1
                })
            );
        }

        let mut buf = [0u8; 1024];
        let n = write_status(&HEAD, (0..3).map(target), &mut buf)
            .unwrap()
            .bytes;
        let status = &buf[..n];
        for len in 0..n {
            let short = &status[..len];
            let expect = if len < HEADER_SIZE {
                ProtoError::TooShort {
                    need: HEADER_SIZE,
                    got: len,
                }
            } else {
                ProtoError::SizeMismatch {
                    header: n as u32,
                    actual: len,
                }
            };
            assert_eq!(decode_reply_status(short), Err(expect));
            assert_eq!(Reply::decode(short), Err(expect));
            assert_eq!(decode_reply_version(short), Err(expect));
            assert_eq!(decode_reply_sites(short), Err(expect));
            assert_eq!(decode_reply_events(short), Err(expect));
            assert_eq!(decode_reply_ack(Kind::ResetLog, short), Err(expect));
        }
    }

    #[test]
    fn bad_headers() {
        let good = enc(&Request::GetSites(GetSites { start: 0, max: 1 }));
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        assert_eq!(
            Request::decode(&patch(0, b"CIV2")),
            Err(ProtoError::BadMagic(u32::from_le_bytes(*b"CIV2")))
        );
        assert_eq!(
            Request::decode(&patch(4, &2u16.to_le_bytes())),
            Err(ProtoError::VersionMismatch { got: 2 })
        );
        assert_eq!(
            Request::decode(&patch(4, &0u16.to_le_bytes())),
            Err(ProtoError::VersionMismatch { got: 0 })
        );
        assert_eq!(
            Request::decode(&patch(6, &0x999u16.to_le_bytes())),
            Err(ProtoError::UnknownKind(0x999))
        );
        for size in [0u32, 15, 23, 25, u32::MAX] {
            assert_eq!(
                Request::decode(&patch(8, &size.to_le_bytes())),
                Err(ProtoError::SizeMismatch {
                    header: size,
                    actual: 24
                })
            );
        }
        assert!(matches!(
            Request::decode(&patch(12, &1u32.to_le_bytes())),
            Err(ProtoError::BadField(_))
        ));
        // The right kind with the wrong body length.
        assert_eq!(
            Request::decode(&patch(6, &Kind::GetStatus.value().to_le_bytes())),
            Err(ProtoError::SizeMismatch {
                header: 24,
                actual: 16
            })
        );
        assert_eq!(
            Request::decode(&patch(6, &Kind::GetEvents.value().to_le_bytes())),
            Err(ProtoError::TooShort { need: 32, got: 24 })
        );
        // Reserved bytes of GetEvents.
        let mut ev = enc(&Request::GetEvents(GetEvents {
            since_seq: 1,
            max: 1,
        }));
        ev[31] = 1;
        assert!(matches!(Request::decode(&ev), Err(ProtoError::BadField(_))));
        // Action out of range.
        let mut body = names_body(0, &[]);
        body[4] = 2;
        assert_eq!(
            Request::decode(&message(0x904, 0, &body)),
            Err(ProtoError::BadField("action"))
        );
        let mut body = names_body(0, &[]);
        body[12] = 1;
        assert!(matches!(
            Request::decode(&message(0x904, 0, &body)),
            Err(ProtoError::BadField(_))
        ));
    }

    #[test]
    fn decode_ioctl_checks_the_kind() {
        let bytes = enc(&Request::GetStatus);
        assert_eq!(
            Request::decode_ioctl(Kind::GetStatus.ioctl(), &bytes),
            Ok(Request::GetStatus)
        );
        assert_eq!(
            Request::decode_ioctl(Kind::ResetLog.ioctl(), &bytes),
            Err(ProtoError::WrongKind {
                expected: Kind::ResetLog,
                got: Kind::GetStatus
            })
        );
        assert_eq!(
            Request::decode_ioctl(ctl_code(0x22, 0x950, 0, 0), &bytes),
            Err(ProtoError::UnknownKind(0x950))
        );
    }

    #[test]
    fn too_many_names() {
        let names = vec!["a.sys"; MAX_TARGETS + 1];
        let r = Request::SetSettings(SetSettings {
            verify_level: VERIFY,
            action: Action::Log,
            targets: Targets::new(&names),
        });
        let mut out = vec![0u8; MAX_REQUEST_SIZE * 2];
        assert_eq!(r.encode(&mut out), Err(ProtoError::TooManyTargets(65)));
        assert_eq!(r.encoded_len(), Err(ProtoError::TooManyTargets(65)));
        assert!(out.iter().all(|&b| b == 0), "nothing written");

        let raw: Vec<&[u8]> = vec![b"a.sys"; 65];
        let msg = message(0x904, 0, &names_body(65, &raw));
        assert_eq!(Request::decode(&msg), Err(ProtoError::TooManyTargets(65)));
        let msg = message(0x904, 0, &names_body(u32::MAX, &[]));
        assert_eq!(
            Request::decode(&msg),
            Err(ProtoError::TooManyTargets(u32::MAX))
        );
    }

    #[test]
    fn bad_names() {
        let long = "y".repeat(MAX_NAME_LEN + 1);
        let bad = [
            "",
            long.as_str(),
            "a\0b.sys",
            "my driver.sys",
            "dir/a.sys",
            "dir\\a.sys",
            "a\tb",
            "a\x7f",
        ];
        for name in bad {
            let names = ["ok.sys", name];
            let r = Request::SetSettings(SetSettings {
                verify_level: VERIFY,
                action: Action::Log,
                targets: Targets::new(&names),
            });
            let mut out = [0u8; MAX_REQUEST_SIZE];
            assert_eq!(
                r.encode(&mut out),
                Err(ProtoError::BadName { index: 1 }),
                "{name:?}"
            );
            assert_eq!(check_target_name(name.as_bytes()), None);
            if !name.is_empty() && name.len() <= MAX_NAME_LEN {
                let msg = message(0x904, 0, &names_body(2, &[b"ok.sys", name.as_bytes()]));
                assert_eq!(
                    Request::decode(&msg),
                    Err(ProtoError::BadName { index: 1 }),
                    "{name:?}"
                );
            }
        }
        // On the wire: empty, too long (even if the bytes are there), not UTF-8.
        let long = [b'z'; 256];
        for name in [&b""[..], &long[..], &b"\xFF\xFE.sys"[..], &b"a\xC3"[..]] {
            let msg = message(0x904, 0, &names_body(2, &[b"ok.sys", name]));
            assert_eq!(Request::decode(&msg), Err(ProtoError::BadName { index: 1 }));
        }
        // Names running past the message, or bytes left after the last one.
        let msg = message(0x904, 0, &names_body(3, &[b"ok.sys", b"b"]));
        assert_eq!(
            Request::decode(&msg),
            Err(ProtoError::TooShort {
                need: msg.len() + 2,
                got: msg.len()
            })
        );
        let mut body = names_body(1, &[b"ok.sys"]);
        body.truncate(body.len() - 1);
        let msg = message(0x904, 0, &body);
        assert_eq!(
            Request::decode(&msg),
            Err(ProtoError::TooShort {
                need: msg.len() + 1,
                got: msg.len()
            })
        );
        let mut body = names_body(1, &[b"ok.sys"]);
        body.extend_from_slice(&[0, 0]);
        let msg = message(0x904, 0, &body);
        assert_eq!(
            Request::decode(&msg),
            Err(ProtoError::SizeMismatch {
                header: msg.len() as u32,
                actual: msg.len() - 2
            })
        );
        // The limits themselves are fine.
        assert!(check_target_name("x".repeat(MAX_NAME_LEN).as_bytes()).is_some());
        assert_eq!(check_target_name("*".as_bytes()), Some("*"));
        assert_eq!(check_target_name("é.sys".as_bytes()), Some("é.sys"));
    }

    #[test]
    fn output_buffers_too_small() {
        let names = ["a.sys", "bb.sys"];
        for r in all_requests(&names) {
            let need = r.encoded_len().unwrap();
            for got in 0..need {
                let mut out = vec![0u8; got];
                assert_eq!(r.encode(&mut out), Err(ProtoError::TooShort { need, got }));
                assert!(out.iter().all(|&b| b == 0), "nothing written");
            }
        }
        let v = Version::new(1, 2, 3, 0);
        for got in 0..VERSION_REPLY_SIZE {
            assert_eq!(
                v.encode(&mut vec![0; got]),
                Err(ProtoError::TooShort {
                    need: VERSION_REPLY_SIZE,
                    got
                })
            );
        }
        for got in 0..STATUS_REPLY_MIN {
            assert_eq!(
                write_status(&HEAD, [target(1)], &mut vec![0; got]),
                Err(ProtoError::TooShort {
                    need: STATUS_REPLY_MIN,
                    got
                })
            );
        }
        let gs = GetSites { start: 0, max: 9 };
        for got in 0..SITES_REPLY_MIN {
            assert_eq!(
                write_sites(&gs, 0, [site(1)], &mut vec![0; got]),
                Err(ProtoError::TooShort {
                    need: SITES_REPLY_MIN,
                    got
                })
            );
        }
        let ge = GetEvents {
            since_seq: 0,
            max: 9,
        };
        for got in 0..EVENTS_REPLY_MIN {
            assert_eq!(
                write_events(&ge, [event(1)], &mut vec![0; got]),
                Err(ProtoError::TooShort {
                    need: EVENTS_REPLY_MIN,
                    got
                })
            );
        }
        for got in 0..HEADER_SIZE {
            let mut out = vec![0u8; got];
            assert_eq!(
                reply_error(Kind::GetStatus, STATUS_BUFFER_TOO_SMALL, &mut out),
                0
            );
            assert!(out.iter().all(|&b| b == 0));
            assert_eq!(
                write_ack(Kind::ResetLog, &mut out),
                Err(ProtoError::TooShort {
                    need: HEADER_SIZE,
                    got
                })
            );
        }
        // Room for the fixed part only: a valid reply with no records.
        let mut out = [0u8; STATUS_REPLY_MIN + TargetRecord::SIZE - 1];
        let w = write_status(&HEAD, [target(1)], &mut out).unwrap();
        assert_eq!(
            w,
            Written {
                bytes: STATUS_REPLY_MIN,
                records: 0
            }
        );
        let s = decode_reply_status(&out).unwrap();
        assert!(s.truncated);
        assert!(s.targets.is_empty());
    }

    #[test]
    fn replies_roundtrip() {
        let mut buf = [0u8; 4096];

        let v = Version::new(0, 3, 12, 0x5);
        let n = v.encode(&mut buf).unwrap();
        assert_eq!(n, VERSION_REPLY_SIZE);
        assert_eq!(decode_reply_version(&buf[..n]), Ok(v));
        // The output buffer may be larger than the reply.
        assert_eq!(decode_reply_version(&buf), Ok(v));
        assert_eq!(Reply::decode(&buf[..n]), Ok(Reply::Version(v)));

        let targets: Vec<TargetRecord> = (0..5).map(target).collect();
        let w = write_status(&HEAD, targets.iter().copied(), &mut buf).unwrap();
        assert_eq!(
            w,
            Written {
                bytes: STATUS_REPLY_MIN + 5 * TargetRecord::SIZE,
                records: 5
            }
        );
        let s = decode_reply_status(&buf[..w.bytes]).unwrap();
        assert_eq!(s.head, HEAD);
        assert!(!s.truncated);
        assert_eq!(s.targets.len(), 5);
        assert_eq!(s.targets.iter().collect::<Vec<_>>(), targets);
        assert_eq!(s.targets.get(4), Some(targets[4]));
        assert_eq!(s.targets.get(5), None);
        assert_eq!(s.targets.iter().len(), 5);
        assert_eq!(s.targets.into_iter().nth(2).unwrap().name(), "target2.sys");
        assert_eq!(
            s.targets
                .get(1)
                .unwrap()
                .counter(Counter::UnsupportedRelocs),
            15
        );
        assert_eq!(Reply::decode(&buf), Ok(Reply::Status(s)));

        // Truncated: three fit.
        let w = write_status(
            &HEAD,
            targets.iter().copied(),
            &mut buf[..STATUS_REPLY_MIN + 3 * TargetRecord::SIZE + 100],
        )
        .unwrap();
        assert_eq!(w.records, 3);
        let s = decode_reply_status(&buf[..w.bytes]).unwrap();
        assert!(s.truncated);
        assert_eq!(s.targets.iter().collect::<Vec<_>>(), targets[..3]);
        // Exactly full is not truncated.
        let w = write_status(
            &HEAD,
            targets.iter().copied(),
            &mut buf[..STATUS_REPLY_MIN + 5 * TargetRecord::SIZE],
        )
        .unwrap();
        assert!(!decode_reply_status(&buf[..w.bytes]).unwrap().truncated);

        for kind in [Kind::SetSettings, Kind::ResetLog] {
            let n = write_ack(kind, &mut buf).unwrap();
            assert_eq!(n, HEADER_SIZE);
            assert_eq!(decode_reply_ack(kind, &buf[..n]), Ok(()));
            let expect = if kind == Kind::SetSettings {
                Reply::SetSettings
            } else {
                Reply::ResetLog
            };
            assert_eq!(Reply::decode(&buf[..n]), Ok(expect));
            assert_eq!(expect.kind(), kind);
        }
        assert!(matches!(
            write_ack(Kind::GetStatus, &mut buf),
            Err(ProtoError::BadField(_))
        ));
        assert!(matches!(
            decode_reply_ack(Kind::QueryVersion, &buf),
            Err(ProtoError::BadField(_))
        ));
    }

    #[test]
    fn error_replies_and_wrong_kinds() {
        let mut buf = [0u8; 64];
        for kind in Kind::ALL {
            for status in [
                STATUS_BUFFER_TOO_SMALL,
                STATUS_INVALID_PARAMETER,
                STATUS_NOT_SUPPORTED,
                STATUS_REVISION_MISMATCH,
                0xC000_0001,
            ] {
                let n = reply_error(kind, status, &mut buf);
                assert_eq!(n, HEADER_SIZE);
                let e = Some(ProtoError::Status(status));
                let r = &buf[..n];
                assert_eq!(Reply::decode(r).err(), e);
                // The status wins over a kind mismatch: the driver failed.
                assert_eq!(decode_reply_version(r).err(), e);
                assert_eq!(decode_reply_status(r).err(), e);
                assert_eq!(decode_reply_sites(r).err(), e);
                assert_eq!(decode_reply_events(r).err(), e);
                assert_eq!(decode_reply_ack(Kind::SetSettings, r).err(), e);
            }
        }
        let n = Version::new(1, 0, 0, 0).encode(&mut buf).unwrap();
        assert_eq!(
            decode_reply_status(&buf[..n]),
            Err(ProtoError::WrongKind {
                expected: Kind::GetStatus,
                got: Kind::QueryVersion
            })
        );
        // An error reply to an unknown kind still reads as its status.
        let msg = message(0x999, STATUS_NOT_SUPPORTED, &[]);
        assert_eq!(
            Reply::decode(&msg),
            Err(ProtoError::Status(STATUS_NOT_SUPPORTED))
        );
        let msg = message(0x999, 0, &[]);
        assert_eq!(Reply::decode(&msg), Err(ProtoError::UnknownKind(0x999)));
        // A reply's size may not exceed the buffer nor undercut a header.
        let mut msg = message(0x905, 0, &[]);
        msg[8] = 17;
        assert_eq!(
            Reply::decode(&msg),
            Err(ProtoError::SizeMismatch {
                header: 17,
                actual: 16
            })
        );
        msg[8] = 15;
        assert_eq!(
            Reply::decode(&msg),
            Err(ProtoError::SizeMismatch {
                header: 15,
                actual: 16
            })
        );
        // An ack with a body.
        assert_eq!(
            Reply::decode(&message(0x905, 0, &[0; 8])),
            Err(ProtoError::SizeMismatch {
                header: 24,
                actual: 16
            })
        );
    }

    #[test]
    fn reply_fields_are_validated() {
        let mut buf = [0u8; 1024];
        // Version: the protocol field and the reserved word.
        let n = Version::new(1, 0, 0, 0).encode(&mut buf).unwrap();
        let mut b = buf[..n].to_vec();
        b[16] = 2;
        assert_eq!(
            decode_reply_version(&b),
            Err(ProtoError::VersionMismatch { got: 2 })
        );
        let mut b = buf[..n].to_vec();
        b[31] = 1;
        assert!(matches!(
            decode_reply_version(&b),
            Err(ProtoError::BadField(_))
        ));

        // Status: action, truncated, count vs size, target names and flags.
        let w = write_status(&HEAD, (0..2).map(target), &mut buf).unwrap();
        let good = buf[..w.bytes].to_vec();
        let edit = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            b
        };
        assert_eq!(
            decode_reply_status(&edit(20, &[2])),
            Err(ProtoError::BadField("action"))
        );
        assert_eq!(
            decode_reply_status(&edit(36, &[2])),
            Err(ProtoError::BadField("truncated"))
        );
        assert_eq!(
            decode_reply_status(&edit(32, &[3])),
            Err(ProtoError::TooShort {
                need: w.bytes + TargetRecord::SIZE,
                got: w.bytes
            })
        );
        assert_eq!(
            decode_reply_status(&edit(32, &[1])),
            Err(ProtoError::SizeMismatch {
                header: w.bytes as u32,
                actual: w.bytes - TargetRecord::SIZE
            })
        );
        let name_at = STATUS_REPLY_MIN + TargetRecord::SIZE;
        assert_eq!(
            decode_reply_status(&edit(name_at, &[0xFF])),
            Err(ProtoError::BadField("target name"))
        );
        assert_eq!(
            decode_reply_status(&edit(name_at + 40, b"x")),
            Err(ProtoError::BadField("target name"))
        );
        assert_eq!(
            decode_reply_status(&edit(name_at + 140, &[8])),
            Err(ProtoError::BadField("target flags"))
        );
        let full = edit(STATUS_REPLY_MIN, &[b'x'; 64]);
        let s = decode_reply_status(&full).unwrap();
        assert_eq!(s.targets.get(0).unwrap().name(), "x".repeat(64));
        // Status reply too short for its fixed part.
        let short = message(0x901, 0, &[0; 23]);
        assert_eq!(
            decode_reply_status(&short),
            Err(ProtoError::TooShort {
                need: STATUS_REPLY_MIN,
                got: STATUS_REPLY_MIN - 1
            })
        );

        // Sites: counter and reserved bytes.
        let gs = GetSites {
            start: 0,
            max: u32::MAX,
        };
        let w = write_sites(&gs, 0, (0..2).map(site), &mut buf).unwrap();
        let good = buf[..w.bytes].to_vec();
        let mut b = good.clone();
        b[SITES_REPLY_MIN] = 7;
        assert_eq!(decode_reply_sites(&b), Err(ProtoError::BadField("counter")));
        for at in 3..8 {
            let mut b = good.clone();
            b[SITES_REPLY_MIN + SiteRecord::SIZE + at] = 1;
            assert!(matches!(
                decode_reply_sites(&b),
                Err(ProtoError::BadField(_))
            ));
        }

        // Events: counter and reserved bytes, in the record and the head.
        let ge = GetEvents {
            since_seq: 0,
            max: u32::MAX,
        };
        let w = write_events(&ge, (0..2).map(event), &mut buf).unwrap();
        let good = buf[..w.bytes].to_vec();
        let mut b = good.clone();
        b[EVENTS_REPLY_MIN + 16] = 0xFF;
        assert_eq!(
            decode_reply_events(&b),
            Err(ProtoError::BadField("counter"))
        );
        for at in (36..40).chain(EVENTS_REPLY_MIN + 19..EVENTS_REPLY_MIN + 24) {
            let mut b = good.clone();
            b[at] = 1;
            assert!(matches!(
                decode_reply_events(&b),
                Err(ProtoError::BadField(_))
            ));
        }
    }

    #[test]
    fn sites_page_across_small_buffers() {
        let all: Vec<SiteRecord> = (0..23).map(site).collect();
        for per_buffer in 1..=5 {
            for max in [1, 2, 3, 7, u32::MAX] {
                let mut out = vec![0u8; SITES_REPLY_MIN + per_buffer * SiteRecord::SIZE + 7];
                let mut req = GetSites { start: 0, max };
                let mut got = Vec::new();
                let mut pages = 0;
                loop {
                    let w = write_sites(&req, 4, all.iter().copied(), &mut out).unwrap();
                    let reply = decode_reply_sites(&out[..w.bytes]).unwrap();
                    assert_eq!(reply.total, 23);
                    assert_eq!(reply.dropped, 4);
                    assert_eq!(reply.sites.len() as u32, w.records);
                    assert!(reply.sites.len() <= per_buffer.min(max as usize));
                    got.extend(reply.sites.iter());
                    pages += 1;
                    match reply.next_page(&req) {
                        Some(next) => req = next,
                        None => break,
                    }
                }
                assert_eq!(got, all, "per_buffer {per_buffer} max {max}");
                assert_eq!(pages, 23usize.div_ceil(per_buffer.min(max as usize)));
            }
        }
        // Past the end, or max 0: no sites, no next page.
        let mut out = [0u8; 512];
        for req in [
            GetSites { start: 23, max: 5 },
            GetSites {
                start: u32::MAX,
                max: 5,
            },
            GetSites { start: 0, max: 0 },
        ] {
            let w = write_sites(&req, 0, all.iter().copied(), &mut out).unwrap();
            let reply = decode_reply_sites(&out[..w.bytes]).unwrap();
            assert!(reply.sites.is_empty());
            assert_eq!(reply.total, 23);
            assert_eq!(reply.next_page(&req), None);
        }
    }

    #[test]
    fn events_page_across_small_buffers() {
        // Sequence numbers with gaps: the ring overwrote 0..5, 8..10 and 13.
        let seqs: Vec<u64> = [5, 6, 7, 10, 11, 12, 14]
            .into_iter()
            .chain(15..40)
            .collect();
        let all: Vec<EventRecord> = seqs.iter().map(|&s| event(s)).collect();
        for per_buffer in 1..=4 {
            for max in [1, 2, 5, u32::MAX] {
                let mut out = vec![0u8; EVENTS_REPLY_MIN + per_buffer * EventRecord::SIZE + 5];
                let mut req = GetEvents { since_seq: 0, max };
                let mut got = Vec::new();
                let mut lost = 0;
                loop {
                    let w = write_events(&req, all.iter().copied(), &mut out).unwrap();
                    let reply = decode_reply_events(&out[..w.bytes]).unwrap();
                    assert_eq!(reply.events.len() as u32, w.records);
                    if reply.events.is_empty() {
                        assert_eq!(reply.next_seq, req.since_seq);
                        assert_eq!(reply.lost, 0);
                        break;
                    }
                    assert!(reply.next_seq > req.since_seq);
                    lost += reply.lost;
                    got.extend(reply.events.iter());
                    req.since_seq = reply.next_seq;
                }
                assert_eq!(got, all, "per_buffer {per_buffer} max {max}");
                assert_eq!(lost, 5 + 2 + 1);
                assert_eq!(req.since_seq, 40);
            }
        }
        // Starting in the middle of the ring, and out-of-order input.
        let mut out = [0u8; 1024];
        let req = GetEvents {
            since_seq: 12,
            max: 3,
        };
        let w = write_events(&req, all.iter().copied(), &mut out).unwrap();
        let reply = decode_reply_events(&out[..w.bytes]).unwrap();
        let seqs: Vec<u64> = reply.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [12, 14, 15]);
        assert_eq!((reply.next_seq, reply.lost), (16, 1));
        let messy = [event(3), event(2), event(3), event(9), event(4)];
        let req = GetEvents {
            since_seq: 0,
            max: u32::MAX,
        };
        let w = write_events(&req, messy, &mut out).unwrap();
        let reply = decode_reply_events(&out[..w.bytes]).unwrap();
        let seqs: Vec<u64> = reply.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 9]);
        assert_eq!((reply.next_seq, reply.lost), (10, 3 + 5));
        // The last sequence number ends the reply.
        let req = GetEvents {
            since_seq: u64::MAX - 1,
            max: u32::MAX,
        };
        let w = write_events(&req, [event(u64::MAX), event(u64::MAX)], &mut out).unwrap();
        let reply = decode_reply_events(&out[..w.bytes]).unwrap();
        assert_eq!(reply.events.len(), 1);
        assert_eq!((reply.next_seq, reply.lost), (u64::MAX, 1));
    }

    #[test]
    fn target_record_names() {
        let mut t = TargetRecord::new("a.sys");
        assert_eq!(t.name(), "a.sys");
        // 63 ASCII bytes then a 2-byte character: cut before it.
        let name = std::format!("{}é", "n".repeat(63));
        t.set_name(&name);
        assert_eq!(t.name(), "n".repeat(63));
        assert_eq!(t.name[63], 0);
        t.set_name(&"m".repeat(100));
        assert_eq!(t.name(), "m".repeat(64));
        t.set_name("cut\0here");
        assert_eq!(t.name(), "cut");
        t.set_name("");
        assert_eq!(t.name(), "");
        // Garbage put in the fields directly: read as its valid prefix,
        // encoded in canonical form.
        t.name = [0; 64];
        t.name[..4].copy_from_slice(b"ab\xFFc");
        t.name[10] = b'z';
        t.flags = 0xFFFF_FFFF;
        assert_eq!(t.name(), "ab");
        let mut b = [0u8; TargetRecord::SIZE];
        t.encode(&mut b).unwrap();
        let back = TargetRecord::decode(&b).unwrap();
        assert_eq!(back.name(), "ab");
        assert_eq!(back.name[2..], [0; 62]);
        assert_eq!(back.flags, TargetRecord::ALL_FLAGS);
    }

    #[test]
    fn errors_read_well() {
        let cases: [(ProtoError, &str, u32); 10] = [
            (
                ProtoError::TooShort { need: 16, got: 3 },
                "needs 16 bytes, there are 3",
                STATUS_BUFFER_TOO_SMALL,
            ),
            (
                ProtoError::BadMagic(0x1234_5678),
                "magic 0x12345678",
                STATUS_INVALID_PARAMETER,
            ),
            (
                ProtoError::VersionMismatch { got: 2 },
                "version 2, this side speaks version 1",
                STATUS_REVISION_MISMATCH,
            ),
            (
                ProtoError::UnknownKind(0x999),
                "unknown message kind 0x999",
                STATUS_NOT_SUPPORTED,
            ),
            (
                ProtoError::WrongKind {
                    expected: Kind::GetStatus,
                    got: Kind::ResetLog,
                },
                "expected GetStatus, got ResetLog",
                STATUS_INVALID_PARAMETER,
            ),
            (
                ProtoError::SizeMismatch {
                    header: 40,
                    actual: 32,
                },
                "header says 40 bytes, the message has 32",
                STATUS_INVALID_PARAMETER,
            ),
            (
                ProtoError::TooManyTargets(65),
                "65 target names, at most 64",
                STATUS_INVALID_PARAMETER,
            ),
            (
                ProtoError::BadName { index: 3 },
                "target name #3 is invalid",
                STATUS_INVALID_PARAMETER,
            ),
            (
                ProtoError::Status(STATUS_BUFFER_TOO_SMALL),
                "STATUS_BUFFER_TOO_SMALL (0xc0000023)",
                STATUS_BUFFER_TOO_SMALL,
            ),
            (
                ProtoError::BadField("action"),
                "invalid field: action",
                STATUS_INVALID_PARAMETER,
            ),
        ];
        for (e, words, status) in cases {
            let text = e.to_string();
            assert!(text.contains(words), "{text:?} lacks {words:?}");
            assert_eq!(e.status(), status, "{e:?}");
        }
        assert!(
            ProtoError::Status(0xC000_0001)
                .to_string()
                .contains("status 0xc0000001")
        );
        assert_eq!(
            status_name(STATUS_REVISION_MISMATCH),
            Some("STATUS_REVISION_MISMATCH")
        );
        assert_eq!(status_name(1), None);
    }

    #[test]
    fn debug_output_lists_records_and_names() {
        let names = ["a.sys", "b.sys"];
        let bytes = enc(&Request::SetSettings(SetSettings {
            verify_level: 0,
            action: Action::Log,
            targets: Targets::new(&names),
        }));
        let text = std::format!("{:?}", Request::decode(&bytes).unwrap());
        assert!(text.contains("[\"a.sys\", \"b.sys\"]"), "{text}");
        let mut buf = [0u8; 256];
        let w = write_sites(&GetSites { start: 0, max: 1 }, 0, [site(2)], &mut buf).unwrap();
        let text = std::format!("{:?}", decode_reply_sites(&buf[..w.bytes]).unwrap());
        assert!(text.contains("hits: 3"), "{text}");
    }
}
