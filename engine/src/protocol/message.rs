//! Message framing: the [`Kind`] of a message and its IOCTL code, the
//! 16-byte [`Header`] every message starts with, the [`ProtoError`]s, and
//! the byte cursors that read and write fields without indexing out of
//! bounds.

use super::*;

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

// Byte cursors. They never index out of bounds: a write past the end is
// dropped and a read past the end gives zeros. Callers check lengths first
// (`Put::need`, `Get::need`), so neither happens; the fallbacks only keep the
// code free of panicking paths.

pub(super) struct Put<'a> {
    pub(super) buf: &'a mut [u8],
    pub(super) pos: usize,
}

impl<'a> Put<'a> {
    /// A cursor over the first `need` bytes of `out`.
    pub(super) fn need(out: &'a mut [u8], need: usize) -> Result<Put<'a>, ProtoError> {
        let got = out.len();
        let buf = out
            .get_mut(..need)
            .ok_or(ProtoError::TooShort { need, got })?;
        Ok(Put { buf, pos: 0 })
    }

    pub(super) fn bytes(&mut self, src: &[u8]) {
        let end = self.pos.saturating_add(src.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(src);
        }
        self.pos = end;
    }

    pub(super) fn zeros(&mut self, n: usize) {
        for _ in 0..n {
            self.u8(0);
        }
    }

    pub(super) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    pub(super) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    pub(super) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

pub(super) struct Get<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Get<'a> {
    /// A cursor over the first `need` bytes of `buf`.
    pub(super) fn need(buf: &'a [u8], need: usize) -> Result<Get<'a>, ProtoError> {
        let got = buf.len();
        let buf = buf.get(..need).ok_or(ProtoError::TooShort { need, got })?;
        Ok(Get { buf, pos: 0 })
    }

    /// A cursor over a message body (after the header) that must hold at
    /// least `need` bytes; sizes in the error count the header too.
    pub(super) fn body(body: &'a [u8], need: usize) -> Result<Get<'a>, ProtoError> {
        Get::need(body, need).map_err(|_| ProtoError::TooShort {
            need: HEADER_SIZE + need,
            got: HEADER_SIZE + body.len(),
        })
    }

    pub(super) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let end = self.pos.saturating_add(N);
        if let Some(src) = self.buf.get(self.pos..end) {
            out.copy_from_slice(src);
        }
        self.pos = end;
        out
    }

    pub(super) fn u8(&mut self) -> u8 {
        u8::from_le_bytes(self.array())
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub(super) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Reserved bytes must be zero so that they can gain a meaning later.
    pub(super) fn reserved<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<(), ProtoError> {
        if self.array::<N>() == [0; N] {
            Ok(())
        } else {
            Err(ProtoError::BadField(what))
        }
    }
}

pub(super) fn counter_from_u8(value: u8) -> Result<Counter, ProtoError> {
    // `Counter::ALL` is in index order (checked in `code`'s tests).
    Counter::ALL
        .get(usize::from(value))
        .copied()
        .ok_or(ProtoError::BadField("counter"))
}

/// A size that came from a `usize` but must go into a u32 field; every
/// caller keeps it below u32::MAX, saturating is only a no-panic fallback.
pub(super) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

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

    pub(super) fn put(&self, p: &mut Put<'_>) {
        p.u32(self.magic);
        p.u16(self.version);
        p.u16(self.kind);
        p.u32(self.size);
        p.u32(self.status);
    }
}

/// Checks what requests and replies share: presence, magic, version.
pub(super) fn open(buf: &[u8]) -> Result<(Header, usize), ProtoError> {
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
pub(super) fn open_request(buf: &[u8]) -> Result<(Kind, &[u8]), ProtoError> {
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
pub(super) fn open_reply(buf: &[u8], expected: Option<Kind>) -> Result<(Kind, &[u8]), ProtoError> {
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
pub(super) fn exact(body: &[u8], len: usize) -> Result<Get<'_>, ProtoError> {
    let g = Get::body(body, len)?;
    if body.len() > len {
        return Err(ProtoError::SizeMismatch {
            header: to_u32(HEADER_SIZE + body.len()),
            actual: HEADER_SIZE + len,
        });
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testutil::*;
    use std::string::ToString;

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
            Request::decode(&patch(4, &3u16.to_le_bytes())),
            Err(ProtoError::VersionMismatch { got: 3 })
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
                ProtoError::VersionMismatch { got: 3 },
                "version 3, this side speaks version 2",
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
}
