//! Property tests of the IOCTL protocol: every well-formed message
//! roundtrips, no byte string makes a decoder panic, and no prefix of a valid
//! message decodes as something else.

use civ_engine::code::Counter;
use civ_engine::protocol::*;
use proptest::prelude::*;

/// A request with owned names, from which a borrowing [`Request`] is built.
#[derive(Clone, Debug)]
enum Req {
    QueryVersion,
    GetStatus,
    GetSites(GetSites),
    GetEvents(GetEvents),
    SetSettings(u32, Action, Vec<String>),
    ResetLog,
}

/// Builds the borrowing request; `refs` holds the `&str`s it points into.
fn request<'a>(req: &'a Req, refs: &'a mut Vec<&'a str>) -> Request<'a> {
    match req {
        Req::QueryVersion => Request::QueryVersion,
        Req::GetStatus => Request::GetStatus,
        Req::GetSites(r) => Request::GetSites(*r),
        Req::GetEvents(r) => Request::GetEvents(*r),
        Req::SetSettings(level, action, names) => {
            refs.extend(names.iter().map(String::as_str));
            Request::SetSettings(SetSettings {
                verify_level: *level,
                action: *action,
                targets: Targets::new(refs),
            })
        }
        Req::ResetLog => Request::ResetLog,
    }
}

fn encode(req: &Req) -> Vec<u8> {
    let mut refs = Vec::new();
    let r = request(req, &mut refs);
    let mut out = vec![0u8; MAX_REQUEST_SIZE];
    let n = r.encode(&mut out).expect("well-formed request encodes");
    out.truncate(n);
    out
}

fn counter() -> impl Strategy<Value = Counter> {
    prop::sample::select(Counter::ALL.to_vec())
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::BugCheck), Just(Action::Log)]
}

/// Valid target names: driver-like ASCII, or any Unicode but the forbidden
/// characters, up to the byte limit.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.*-]{1,40}",
        "[^\\x00-\\x20/\\\\\\x7f]{1,63}",
        Just("n".repeat(MAX_NAME_LEN)),
    ]
    .prop_filter("at most 255 bytes", |n| n.len() <= MAX_NAME_LEN)
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        Just(Req::QueryVersion),
        Just(Req::GetStatus),
        Just(Req::ResetLog),
        (any::<u32>(), any::<u32>())
            .prop_map(|(start, max)| Req::GetSites(GetSites { start, max })),
        (any::<u64>(), any::<u32>())
            .prop_map(|(since_seq, max)| Req::GetEvents(GetEvents { since_seq, max })),
        (
            any::<u32>(),
            action(),
            prop::collection::vec(name(), 0..=MAX_TARGETS)
        )
            .prop_map(|(level, action, names)| Req::SetSettings(level, action, names)),
    ]
}

fn target() -> impl Strategy<Value = TargetRecord> {
    (
        "[a-zA-Z0-9_.é驱-]{0,70}",
        any::<u64>(),
        any::<u64>(),
        any::<[u64; 7]>(),
        any::<u32>(),
        0..=TargetRecord::ALL_FLAGS,
        (any::<u32>(), any::<u16>(), any::<u8>()),
    )
        .prop_map(
            |(name, base, size, counters, hooked_slots, flags, (conflicts, load, level))| {
                let mut t = TargetRecord::new(&name);
                t.base = base;
                t.size = size;
                t.counters = counters;
                t.hooked_slots = hooked_slots;
                t.flags = flags;
                t.conflicts = conflicts;
                t.load = load;
                t.signature_level = level;
                t
            },
        )
}

fn site() -> impl Strategy<Value = SiteRecord> {
    (
        counter(),
        any::<u8>(),
        any::<u8>(),
        any::<[u64; 6]>(),
        any::<u16>(),
        prop::collection::vec(1u64.., 0..=STACK_FRAMES),
    )
        .prop_map(|(counter, target, api, v, load, frames)| {
            let mut stack = [0; STACK_FRAMES];
            stack[..frames.len()].copy_from_slice(&frames);
            SiteRecord {
                counter,
                target,
                api,
                offset: v[0],
                arg3: v[1],
                arg4: v[2],
                first_time: v[3],
                last_time: v[4],
                hits: v[5],
                load,
                stack,
            }
        })
}

/// Events in increasing sequence from `first`, with gaps between them.
fn events(max: usize) -> impl Strategy<Value = Vec<EventRecord>> {
    (
        0u64..1000,
        prop::collection::vec(
            (
                0u64..4,
                any::<u64>(),
                counter(),
                any::<u8>(),
                any::<u8>(),
                any::<[u64; 3]>(),
                any::<u16>(),
            ),
            0..max,
        ),
    )
        .prop_map(|(first, items)| {
            let mut seq = first;
            items
                .into_iter()
                .map(|(gap, time, counter, target, api, v, load)| {
                    seq += gap;
                    let e = EventRecord {
                        seq,
                        time,
                        counter,
                        target,
                        api,
                        offset: v[0],
                        arg3: v[1],
                        arg4: v[2],
                        load,
                    };
                    seq += 1;
                    e
                })
                .collect()
        })
}

fn status_head() -> impl Strategy<Value = StatusHead> {
    (
        any::<u32>(),
        action(),
        any::<u64>(),
        0..=StatusHead::ALL_FLAGS,
    )
        .prop_map(|(verify_level, action, started_time, flags)| StatusHead {
            verify_level,
            action,
            started_time,
            flags,
        })
}

/// Every decoder on `bytes`; none may panic. Requests that decode must
/// re-encode to the very same bytes.
fn decode_everything(bytes: &[u8]) {
    if let Ok(r) = Request::decode(bytes) {
        let mut out = vec![0u8; bytes.len()];
        assert_eq!(r.encode(&mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }
    for kind in Kind::ALL {
        let _ = Request::decode_ioctl(kind.ioctl(), bytes);
        let _ = decode_reply_ack(kind, bytes);
    }
    if let Ok(reply) = Reply::decode(bytes) {
        // Walk the records too: a validated reply must yield all of them.
        match reply {
            Reply::Status(s) => assert_eq!(s.targets.iter().count(), s.targets.len()),
            Reply::Sites(s) => assert_eq!(s.sites.iter().count(), s.sites.len()),
            Reply::Events(e) => assert_eq!(e.events.iter().count(), e.events.len()),
            Reply::Version(_) | Reply::SetSettings | Reply::ResetLog => {}
        }
    }
    let _ = decode_reply_version(bytes);
    let _ = decode_reply_status(bytes);
    let _ = decode_reply_sites(bytes);
    let _ = decode_reply_events(bytes);
    let _ = Header::read(bytes);
}

/// A header that passes the common checks, so the body decoders get fuzzed.
fn framed(kind: u16, status: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_SIZE];
    Header {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        kind,
        size: (HEADER_SIZE + body.len()) as u32,
        status,
    }
    .write(&mut out)
    .unwrap();
    out.extend_from_slice(body);
    out
}

/// A valid reply of any kind, as the driver would write it.
fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any::<[u16; 3]>(), any::<u32>()).prop_map(|(v, features)| {
            let mut out = vec![0u8; VERSION_REPLY_SIZE];
            Version::new(v[0], v[1], v[2], features)
                .encode(&mut out)
                .unwrap();
            out
        }),
        (
            status_head(),
            prop::collection::vec(target(), 0..6),
            0usize..4
        )
            .prop_map(|(head, targets, spare)| {
                let mut out = vec![0u8; STATUS_REPLY_MIN + spare * TargetRecord::SIZE];
                let w = write_status(&head, targets, &mut out).unwrap();
                out.truncate(w.bytes);
                out
            }),
        (prop::collection::vec(site(), 0..6), any::<u64>()).prop_map(|(sites, dropped)| {
            let mut out = vec![0u8; 1024];
            let req = GetSites {
                start: 0,
                max: u32::MAX,
            };
            let w = write_sites(&req, dropped, sites, &mut out).unwrap();
            out.truncate(w.bytes);
            out
        }),
        events(6).prop_map(|events| {
            let mut out = vec![0u8; 1024];
            let req = GetEvents {
                since_seq: 0,
                max: u32::MAX,
            };
            let w = write_events(&req, events, &mut out).unwrap();
            out.truncate(w.bytes);
            out
        }),
        prop_oneof![Just(Kind::SetSettings), Just(Kind::ResetLog)].prop_map(|kind| {
            let mut out = vec![0u8; HEADER_SIZE];
            write_ack(kind, &mut out).unwrap();
            out
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_roundtrip(req in req()) {
        let bytes = encode(&req);
        let mut refs = Vec::new();
        let sent = request(&req, &mut refs);
        prop_assert_eq!(sent.encoded_len(), Ok(bytes.len()));
        let got = Request::decode(&bytes).unwrap();
        prop_assert_eq!(got, sent);
        prop_assert_eq!(Request::decode_ioctl(sent.kind().ioctl(), &bytes), Ok(sent));
        let mut again = vec![0u8; bytes.len()];
        prop_assert_eq!(got.encode(&mut again), Ok(bytes.len()));
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn truncated_requests_never_decode(req in req(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&req);
        for len in 0..bytes.len() {
            prop_assert!(Request::decode(&bytes[..len]).is_err(), "prefix of {} bytes", len);
        }
        // Nor does a short output buffer take a partial request. (One random
        // length and the edges: every length would be quadratic.)
        for len in [0, bytes.len() - 1, cut.index(bytes.len())] {
            let mut refs = Vec::new();
            let mut out = vec![0u8; len];
            prop_assert_eq!(
                request(&req, &mut refs).encode(&mut out),
                Err(ProtoError::TooShort { need: bytes.len(), got: len })
            );
            prop_assert!(out.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn status_replies_roundtrip(
        head in status_head(),
        targets in prop::collection::vec(target(), 0..12),
        out_len in 0usize..(STATUS_REPLY_MIN + 12 * TargetRecord::SIZE + 64),
    ) {
        let mut out = vec![0u8; out_len];
        match write_status(&head, targets.iter().copied(), &mut out) {
            Err(e) => {
                prop_assert!(out_len < STATUS_REPLY_MIN);
                prop_assert_eq!(e, ProtoError::TooShort { need: STATUS_REPLY_MIN, got: out_len });
            }
            Ok(w) => {
                let fit = (out_len - STATUS_REPLY_MIN) / TargetRecord::SIZE;
                let n = targets.len().min(fit);
                prop_assert_eq!(w.records as usize, n);
                prop_assert_eq!(w.bytes, STATUS_REPLY_MIN + n * TargetRecord::SIZE);
                // Both the exact reply and the whole output buffer decode.
                for buf in [&out[..w.bytes], &out[..]] {
                    let s = decode_reply_status(buf).unwrap();
                    prop_assert_eq!(s.head, head);
                    prop_assert_eq!(s.truncated, n < targets.len());
                    prop_assert_eq!(s.targets.iter().collect::<Vec<_>>(), &targets[..n]);
                }
                for len in 0..w.bytes {
                    prop_assert!(decode_reply_status(&out[..len]).is_err());
                }
            }
        }
    }

    #[test]
    fn sites_page_exactly_once(
        sites in prop::collection::vec(site(), 0..40),
        per_buffer in 1usize..6,
        max in prop_oneof![1u32..8, Just(u32::MAX)],
        dropped in any::<u64>(),
    ) {
        let mut out = vec![0u8; SITES_REPLY_MIN + per_buffer * SiteRecord::SIZE];
        let mut req = GetSites { start: 0, max };
        let mut got = Vec::new();
        loop {
            let w = write_sites(&req, dropped, sites.iter().copied(), &mut out).unwrap();
            let reply = decode_reply_sites(&out[..w.bytes]).unwrap();
            prop_assert_eq!(reply.total as usize, sites.len());
            prop_assert_eq!(reply.dropped, dropped);
            prop_assert_eq!(reply.sites.len(), w.records as usize);
            got.extend(reply.sites.iter());
            for len in 0..w.bytes {
                prop_assert!(decode_reply_sites(&out[..len]).is_err());
            }
            match reply.next_page(&req) {
                Some(next) => req = next,
                None => break,
            }
        }
        prop_assert_eq!(got, sites);
    }

    #[test]
    fn events_page_exactly_once(
        events in events(40),
        since in 0u64..1200,
        per_buffer in 1usize..6,
        max in prop_oneof![1u32..8, Just(u32::MAX)],
    ) {
        let mut out = vec![0u8; EVENTS_REPLY_MIN + per_buffer * EventRecord::SIZE];
        let mut req = GetEvents { since_seq: since, max };
        let mut got = Vec::new();
        let mut lost = 0u64;
        loop {
            let w = write_events(&req, events.iter().copied(), &mut out).unwrap();
            let reply = decode_reply_events(&out[..w.bytes]).unwrap();
            prop_assert_eq!(reply.events.len(), w.records as usize);
            for len in 0..w.bytes {
                prop_assert!(decode_reply_events(&out[..len]).is_err());
            }
            if reply.events.is_empty() {
                prop_assert_eq!(reply.next_seq, req.since_seq);
                break;
            }
            lost += reply.lost;
            got.extend(reply.events.iter());
            req.since_seq = reply.next_seq;
        }
        let want: Vec<EventRecord> = events.iter().copied().filter(|e| e.seq >= since).collect();
        // Every sequence number from `since` on is either delivered or lost.
        if let Some(last) = want.last() {
            prop_assert_eq!(lost + want.len() as u64, last.seq + 1 - since);
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn truncated_replies_never_decode(bytes in reply_bytes()) {
        prop_assert!(Reply::decode(&bytes).is_ok());
        for len in 0..bytes.len() {
            prop_assert!(Reply::decode(&bytes[..len]).is_err(), "prefix of {} bytes", len);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        kind in prop_oneof![prop::sample::select(Kind::ALL.map(Kind::value).to_vec()), any::<u16>()],
        status in prop_oneof![Just(0u32), any::<u32>()],
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        decode_everything(&framed(kind, status, &body));
    }

    #[test]
    fn mutated_messages_never_panic(
        req in req(),
        reply in reply_bytes(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for mut bytes in [encode(&req), reply] {
            for (at, value) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *value;
            }
            decode_everything(&bytes);
            decode_everything(&bytes[..cut.index(bytes.len() + 1)]);
        }
    }
}
