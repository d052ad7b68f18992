//! Requests civctl sends: [`Request`] and its bodies ([`GetSites`],
//! [`GetEvents`], [`SetSettings`] with its target names), encoded by civctl
//! and decoded strictly by civ.sys.

use super::*;

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

pub(super) fn decode_settings(body: &[u8]) -> Result<SetSettings<'_>, ProtoError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testutil::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn golden_request_bytes() {
        let bytes = enc(&Request::GetSites(GetSites {
            start: 0x11223344,
            max: 5,
        }));
        let expected: [u8; GET_SITES_SIZE] = [
            b'C', b'I', b'V', b'1', // magic
            2, 0, // version
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
}
