//! Replies civ.sys sends: their heads and bodies ([`Version`],
//! [`StatusReply`], [`SitesReply`], [`EventsReply`]), the header-only
//! acknowledgement and error replies, and their decoders for civctl.

use super::*;

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

pub(super) fn version_body(body: &[u8]) -> Result<Version, ProtoError> {
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
    /// [`StatusHead::PINNED`].
    pub flags: u32,
}

impl StatusHead {
    /// civ has put pointers to itself into targets: it cannot unload, and
    /// stays in memory until reboot.
    pub const PINNED: u32 = 1 << 0;
    /// Every defined flag; others must be zero.
    pub const ALL_FLAGS: u32 = Self::PINNED;
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

pub(super) fn status_body(body: &[u8]) -> Result<StatusReply<'_>, ProtoError> {
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
    let flags = g.u32();
    if flags & !StatusHead::ALL_FLAGS != 0 {
        return Err(ProtoError::BadField("status flags"));
    }
    g.reserved::<4>("status reserved")?;
    Ok(StatusReply {
        head: StatusHead {
            verify_level,
            action,
            started_time,
            flags,
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

pub(super) fn sites_body(body: &[u8]) -> Result<SitesReply<'_>, ProtoError> {
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

pub(super) fn events_body(body: &[u8]) -> Result<EventsReply<'_>, ProtoError> {
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
pub(super) const fn header_only(kind: Kind) -> bool {
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
    use crate::protocol::testutil::*;

    use std::vec::Vec;

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
        b[16] = 3;
        assert_eq!(
            decode_reply_version(&b),
            Err(ProtoError::VersionMismatch { got: 3 })
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
            decode_reply_status(&edit(name_at + 140, &[0x40])),
            Err(ProtoError::BadField("target flags"))
        );
        let full = edit(STATUS_REPLY_MIN, &[b'x'; 64]);
        let s = decode_reply_status(&full).unwrap();
        assert_eq!(s.targets.get(0).unwrap().name(), "x".repeat(64));
        // Status flags: only PINNED is defined; the reserved word is zero.
        assert_eq!(
            decode_reply_status(&edit(HEADER_SIZE + 24, &[2])),
            Err(ProtoError::BadField("status flags"))
        );
        assert_eq!(
            decode_reply_status(&edit(HEADER_SIZE + 28, &[1])),
            Err(ProtoError::BadField("status reserved"))
        );
        // Status reply too short for its fixed part.
        let short = message(0x901, 0, &[0; STATUS_REPLY_MIN - HEADER_SIZE - 1]);
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
        // Bytes 4 and 5 are the load number; 3, 6 and 7 are reserved.
        for at in [3, 6, 7] {
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
        // In the record, bytes 20 and 21 are the load number.
        for at in (36..40).chain([19, 22, 23].map(|r| EVENTS_REPLY_MIN + r)) {
            let mut b = good.clone();
            b[at] = 1;
            assert!(matches!(
                decode_reply_events(&b),
                Err(ProtoError::BadField(_))
            ));
        }
    }
}
