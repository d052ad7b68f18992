//! Writing record arrays into an output buffer of any size: as many whole
//! records as fit, and what the caller asks for next (sites by index,
//! events by sequence number), so that civctl pages through a log larger
//! than one reply.

use super::*;

/// What a record writer wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the reply, header included (the IRP's Information).
    pub bytes: usize,
    /// Records in the reply.
    pub records: u32,
}

/// An output buffer must hold at least the reply's fixed part.
pub(super) fn fits(out: &[u8], need: usize) -> Result<(), ProtoError> {
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
pub(super) fn room(out_len: usize, fixed: usize, size: usize) -> usize {
    let usable = out_len.min(u32::MAX as usize);
    usable.saturating_sub(fixed) / size.max(1)
}

/// Writes `record` at `at` in `out`, which the caller sized for it.
pub(super) fn put_record<T: Record>(
    out: &mut [u8],
    at: usize,
    record: &T,
) -> Result<usize, ProtoError> {
    record.encode(out.get_mut(at..).unwrap_or_default())
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
    p.u32(head.flags & StatusHead::ALL_FLAGS);
    p.zeros(4);
    Ok(Written {
        bytes: end,
        records: to_u32(count),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testutil::*;

    use std::vec;
    use std::vec::Vec;

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
}
