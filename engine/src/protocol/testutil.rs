//! Helpers shared by the protocol's unit tests.

use super::*;
use std::vec;
use std::vec::Vec;

pub(crate) fn enc(r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_REQUEST_SIZE];
    let n = r.encode(&mut buf).unwrap();
    assert_eq!(Ok(n), r.encoded_len());
    buf.truncate(n);
    buf
}

/// A header with the given fields followed by `body`, size = the total.
pub(crate) fn message(kind: u16, status: u32, body: &[u8]) -> Vec<u8> {
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

pub(crate) fn names_body(count: u32, names: &[&[u8]]) -> Vec<u8> {
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

pub(crate) const VERIFY: u32 = crate::code::VERIFIER_FLAG_CODE_INTEGRITY;

pub(crate) fn all_requests<'a>(names: &'a [&'a str]) -> Vec<Request<'a>> {
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

pub(crate) fn target(i: u64) -> TargetRecord {
    let mut t = TargetRecord::new(&std::format!("target{i}.sys"));
    t.base = 0xFFFF_F800_0000_0000 + i * 0x10000;
    t.size = 0x8000 + i;
    for (j, c) in t.counters.iter_mut().enumerate() {
        *c = i * 10 + j as u64;
    }
    t.hooked_slots = i as u32;
    t.flags = (i as u32) & TargetRecord::ALL_FLAGS;
    t.conflicts = (i as u32) * 7;
    t.load = (i as u16) + 1;
    t.signature_level = if i.is_multiple_of(2) {
        UNKNOWN_SIGNATURE_LEVEL
    } else {
        (i % 15) as u8
    };
    t
}

pub(crate) fn site(i: u64) -> SiteRecord {
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
        load: (i % 4) as u16,
        // 0 to STACK_FRAMES frames, none of them 0.
        stack: core::array::from_fn(|f| {
            if (f as u64) < i % (STACK_FRAMES as u64 + 1) {
                0xFFFF_F801_0000_0000 + i * 0x100 + f as u64
            } else {
                0
            }
        }),
    }
}

pub(crate) fn event(seq: u64) -> EventRecord {
    EventRecord {
        seq,
        time: seq.wrapping_add(1000),
        counter: Counter::ALL[(seq % 7) as usize],
        target: UNKNOWN_TARGET,
        api: (seq % 15) as u8,
        offset: seq.wrapping_add(0x2000),
        arg3: seq,
        arg4: !seq,
        load: (seq % 3) as u16,
    }
}

pub(crate) const HEAD: StatusHead = StatusHead {
    verify_level: VERIFY,
    action: Action::Log,
    started_time: 0x01DA_0000_0000_0000,
    flags: StatusHead::PINNED,
};
