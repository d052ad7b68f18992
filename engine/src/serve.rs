//! civ.sys's answers to civctl: an IOCTL's input decoded, the request
//! served from the log and the settings in force, the reply encoded into
//! the output buffer. The driver's IRP (or WDF request) handler passes
//! buffers and the code here and completes with what comes back.

use crate::log::{self, EventView, SiteView, TargetView};
use crate::protocol::{
    self, EventRecord, Kind, ProtoError, Request, SiteRecord, StatusHead, TargetRecord,
    UNKNOWN_SIGNATURE_LEVEL, Version,
};
use crate::runtime::{self, LOG};

/// STATUS_INVALID_DEVICE_REQUEST: an IOCTL code that is not civ's.
pub const STATUS_INVALID_DEVICE_REQUEST: u32 = 0xC000_0010;

/// The driver's version, from the crate's.
pub const DRIVER_VERSION: Version = Version::new(
    parse(env!("CARGO_PKG_VERSION_MAJOR")),
    parse(env!("CARGO_PKG_VERSION_MINOR")),
    parse(env!("CARGO_PKG_VERSION_PATCH")),
    0,
);

const fn parse(s: &str) -> u16 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v: u16 = 0;
    while i < b.len() {
        v = v.saturating_mul(10).saturating_add((b[i] - b'0') as u16);
        i += 1;
    }
    v
}

/// The answer to one IOCTL: the NTSTATUS to complete it with and how many
/// bytes of the output buffer are the reply (IoStatus.Information).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// NTSTATUS.
    pub status: u32,
    /// Bytes written to the output buffer.
    pub bytes: usize,
}

fn target_record(t: &TargetView) -> TargetRecord {
    let mut r = TargetRecord::new("");
    r.set_name(core::str::from_utf8(t.name_bytes()).unwrap_or("?"));
    r.base = t.base;
    r.size = t.size;
    r.counters = t.counters;
    r.hooked_slots = t.hooked_slots;
    r.conflicts = t.conflicts;
    r.flags = target_flags(t.flags);
    r.load = t.load;
    r.signature_level = t.signature_level.unwrap_or(UNKNOWN_SIGNATURE_LEVEL);
    r
}

/// The log's TARGET_* flags as the wire's [`TargetRecord`] flags.
fn target_flags(flags: u32) -> u32 {
    [
        (log::TARGET_LATE, TargetRecord::LATE),
        (log::TARGET_IMAGE_CHECKED, TargetRecord::IMAGE_CHECKED),
        (log::TARGET_UNLOADED, TargetRecord::UNLOADED),
        (log::TARGET_IMPORT_OPTIMIZED, TargetRecord::IMPORT_OPTIMIZED),
        (log::TARGET_NAMED, TargetRecord::NAMED),
    ]
    .into_iter()
    .filter(|&(from, _)| flags & from != 0)
    .fold(0, |acc, (_, to)| acc | to)
}

fn site_record(s: &SiteView) -> SiteRecord {
    SiteRecord {
        counter: s.event.counter,
        target: s.event.target,
        api: s.event.api,
        offset: s.event.offset,
        arg3: s.event.arg3,
        arg4: s.event.arg4,
        first_time: s.first_time,
        last_time: s.last_time,
        hits: s.hits,
        load: s.event.load,
        stack: s.stack,
    }
}

fn event_record(e: &EventView) -> EventRecord {
    EventRecord {
        seq: e.seq,
        time: e.time,
        counter: e.event.counter,
        target: e.event.target,
        api: e.event.api,
        offset: e.event.offset,
        arg3: e.event.arg3,
        arg4: e.event.arg4,
        load: e.event.load,
    }
}

/// Serves one IOCTL.
pub fn handle(ioctl: u32, input: &[u8], output: &mut [u8]) -> Answer {
    let Some(kind) = Kind::from_ioctl(ioctl) else {
        return Answer {
            status: STATUS_INVALID_DEVICE_REQUEST,
            bytes: 0,
        };
    };
    let fail = |e: ProtoError, output: &mut [u8]| {
        let status = e.status();
        Answer {
            status,
            bytes: protocol::reply_error(kind, status, output),
        }
    };
    let request = match Request::decode_ioctl(ioctl, input) {
        Ok(r) => r,
        Err(e) => return fail(e, output),
    };
    let written = match request {
        Request::QueryVersion => DRIVER_VERSION.encode(output),
        Request::GetStatus => {
            let head = runtime::with_settings(|s| StatusHead {
                verify_level: s.level,
                action: s.action,
                started_time: runtime::started(),
                flags: if runtime::pinned() {
                    StatusHead::PINNED
                } else {
                    0
                },
            });
            protocol::write_status(&head, LOG.targets().map(|t| target_record(&t)), output)
                .map(|w| w.bytes)
        }
        Request::GetSites(req) => protocol::write_sites(
            &req,
            LOG.dropped_sites(),
            LOG.sites().map(|s| site_record(&s)),
            output,
        )
        .map(|w| w.bytes),
        Request::GetEvents(req) => protocol::write_events(
            &req,
            LOG.events_from(req.since_seq).map(|e| event_record(&e)),
            output,
        )
        .map(|w| w.bytes),
        Request::SetSettings(req) => {
            runtime::update_settings(|s| {
                s.assign_parts(
                    req.verify_level,
                    req.action,
                    req.targets.iter().map(str::as_bytes),
                )
            });
            protocol::write_ack(Kind::SetSettings, output)
        }
        Request::ResetLog => Err(ProtoError::Status(protocol::STATUS_NOT_SUPPORTED)),
    };
    match written {
        Ok(bytes) => Answer {
            status: protocol::STATUS_SUCCESS,
            bytes,
        },
        Err(e) => fail(e, output),
    }
}
