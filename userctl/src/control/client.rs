//! Talking to civ.sys: each request encoded, sent over the control device,
//! and its reply decoded (paged where the reply is a table).

use super::host::{Device, Host, HostError};
use super::report::StatusView;
use civ_engine::protocol::{
    self, EventRecord, GetEvents, GetSites, ProtoError, Request, SetSettings, SiteRecord,
    StatusHead, Targets, Version,
};
use civ_engine::settings::Action;

/// Bytes of every reply buffer: a status of 64 targets, or a page of
/// sites or events, with room to spare.
const REPLY_BUFFER: usize = 64 * 1024;

fn proto(request: &'static str) -> impl Fn(ProtoError) -> HostError {
    move |error| match error {
        ProtoError::VersionMismatch { got } => HostError::VersionMismatch { driver: got },
        error => HostError::Protocol { request, error },
    }
}

fn call<'b>(
    device: &mut dyn Device,
    request: &Request<'_>,
    out: &'b mut [u8],
) -> Result<&'b [u8], HostError> {
    let name = request.kind().name();
    let mut input = vec![0u8; request.encoded_len().map_err(proto(name))?];
    request.encode(&mut input).map_err(proto(name))?;
    let n = device.ioctl(request.kind().ioctl(), &input, out)?;
    Ok(out.get(..n).unwrap_or(out))
}

/// QueryVersion.
pub fn version(device: &mut dyn Device) -> Result<Version, HostError> {
    let mut buf = vec![0u8; REPLY_BUFFER];
    let reply = call(device, &Request::QueryVersion, &mut buf)?;
    protocol::decode_reply_version(reply).map_err(proto("QueryVersion"))
}

/// QueryVersion and GetStatus, as `status` shows them.
pub fn status(device: &mut dyn Device) -> Result<(StatusView, StatusHead), HostError> {
    let version = version(device)?;
    let mut buf = vec![0u8; REPLY_BUFFER];
    let reply = call(device, &Request::GetStatus, &mut buf)?;
    let status = protocol::decode_reply_status(reply).map_err(proto("GetStatus"))?;
    Ok((StatusView::new(&version, &status), status.head))
}

/// Every site, page by page: (total, dropped, sites).
pub fn all_sites(device: &mut dyn Device) -> Result<(u32, u64, Vec<SiteRecord>), HostError> {
    let max = ((REPLY_BUFFER - protocol::SITES_REPLY_MIN) / <SiteRecord as protocol::Record>::SIZE)
        as u32;
    let mut request = GetSites { start: 0, max };
    let mut sites = Vec::new();
    let mut buf = vec![0u8; REPLY_BUFFER];
    loop {
        let reply = call(device, &Request::GetSites(request), &mut buf)?;
        let page = protocol::decode_reply_sites(reply).map_err(proto("GetSites"))?;
        sites.extend(page.sites.iter());
        match page.next_page(&request) {
            Some(next) => request = next,
            None => return Ok((page.total, page.dropped, sites)),
        }
    }
}

/// One page of events from `since`: (next_seq, lost, events).
pub fn events(
    device: &mut dyn Device,
    since: u64,
) -> Result<(u64, u64, Vec<EventRecord>), HostError> {
    let max = ((REPLY_BUFFER - protocol::EVENTS_REPLY_MIN)
        / <EventRecord as protocol::Record>::SIZE) as u32;
    let mut buf = vec![0u8; REPLY_BUFFER];
    let request = Request::GetEvents(GetEvents {
        since_seq: since,
        max,
    });
    let reply = call(device, &request, &mut buf)?;
    let page = protocol::decode_reply_events(reply).map_err(proto("GetEvents"))?;
    Ok((page.next_seq, page.lost, page.events.iter().collect()))
}

/// SetSettings: what civ.sys applies to drivers that load from now on.
pub fn set_settings(
    device: &mut dyn Device,
    level: u32,
    action: Action,
    names: &[String],
) -> Result<(), HostError> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let request = Request::SetSettings(SetSettings {
        verify_level: level,
        action,
        targets: Targets::new(&names),
    });
    let mut buf = vec![0u8; REPLY_BUFFER];
    let reply = call(device, &request, &mut buf)?;
    protocol::decode_reply_ack(protocol::Kind::SetSettings, reply).map_err(proto("SetSettings"))
}

/// The device, or why there is none: not running (installed or not).
pub(super) fn running(host: &mut dyn Host) -> Result<Box<dyn Device>, HostError> {
    match host.open_device()? {
        Some(d) => Ok(d),
        None => Err(HostError::NotRunning {
            installed: host.installed()?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_of_another_protocol_version_is_named() {
        struct Old;
        impl Device for Old {
            fn ioctl(&mut self, _: u32, _: &[u8], out: &mut [u8]) -> Result<usize, HostError> {
                let n = Version::new(0, 1, 0, 0).encode(out).unwrap();
                out[4] = 9; // the header's version
                out[16] = 9; // the body's protocol
                Ok(n)
            }
        }
        let e = version(&mut Old).unwrap_err();
        assert_eq!(e, HostError::VersionMismatch { driver: 9 });
        assert!(e.to_string().contains("protocol version 9"), "{e}");
    }
}
