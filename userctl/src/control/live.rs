//! The live commands: `status` (civ.sys's settings in force and each
//! verified driver's counters, like `verifier /query`) and `log` (every
//! violation site, or the events as they happen).

use super::client::{all_sites, events, running, status};
use super::commands::{Io, OK, io_error, json};
use super::host::{Device, Host, HostError};
use super::report::{EventView, LogView};
use super::verifier_query::to_verifier_query;
use crate::format::TextOrJson;
use civ_engine::protocol;
use std::time::Duration;

/// Output format of `status`: [`TextOrJson`]'s two, and verifier.exe's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Text for a person.
    Human,
    /// JSON.
    Json,
    /// `verifier /query`'s text (`Module:`, `Code Integrity Statistics:`),
    /// for the scripts that parse it.
    Verifier,
}

/// `civctl status`: civ.sys live, each verified driver with its counters,
/// like `verifier /query`.
pub fn status_command(
    host: &mut dyn Host,
    format: StatusFormat,
    io: &mut Io<'_>,
) -> Result<u8, HostError> {
    let mut device = running(host)?;
    let (view, _) = status(device.as_mut())?;
    match format {
        StatusFormat::Human => write!(io.out, "{}", view.to_text()),
        StatusFormat::Json => writeln!(io.out, "{}", json(&view)?),
        StatusFormat::Verifier => write!(io.out, "{}", to_verifier_query(&view)),
    }
    .map_err(io_error)?;
    Ok(OK)
}

/// How long `log --follow` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Follow {
    /// Stop after this many events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Between polls.
    pub interval: Duration,
}

/// `civctl log`: every violation site; with `follow`, the events instead,
/// those still in civ's ring first, then new ones as they happen.
pub fn log(
    host: &mut dyn Host,
    format: TextOrJson,
    follow: Option<Follow>,
    io: &mut Io<'_>,
) -> Result<u8, HostError> {
    let mut device = running(host)?;
    let (view, _) = status(device.as_mut())?;
    let names = view.names();
    if let Some(f) = follow {
        return follow_events(host, device.as_mut(), names, format, f, io);
    }
    let (total, dropped, sites) = all_sites(device.as_mut())?;
    let log = LogView::new(total, dropped, sites, &view.targets);
    match format {
        TextOrJson::Human => write!(io.out, "{}", log.to_text()),
        TextOrJson::Json => writeln!(io.out, "{}", json(&log)?),
    }
    .map_err(io_error)?;
    Ok(OK)
}

fn follow_events(
    host: &mut dyn Host,
    device: &mut dyn Device,
    mut names: Vec<String>,
    format: TextOrJson,
    f: Follow,
    io: &mut Io<'_>,
) -> Result<u8, HostError> {
    let start = host.elapsed();
    if format == TextOrJson::Human {
        writeln!(
            io.err,
            "civctl log: following civ.sys's violations (Ctrl-C to stop)"
        )
        .map_err(io_error)?;
    }
    let mut since = 0u64;
    let mut shown = 0u64;
    loop {
        if f.count.is_some_and(|c| shown >= c) {
            return Ok(OK);
        }
        let (next, lost, page) = events(device, since)?;
        if lost > 0 {
            writeln!(
                io.err,
                "civctl log: {lost} event(s) no longer in civ.sys's ring (the site table still counts them: civctl log)"
            )
            .map_err(io_error)?;
        }
        if page
            .iter()
            .any(|e| usize::from(e.target) >= names.len() && e.target != protocol::UNKNOWN_TARGET)
        {
            names = status(device)?.0.names();
        }
        let more = !page.is_empty();
        for e in &page {
            let v = EventView::new(e, &names);
            match format {
                TextOrJson::Human => write!(io.out, "{}", v.to_line()),
                TextOrJson::Json => writeln!(
                    io.out,
                    "{}",
                    serde_json::to_string(&v).map_err(|e| HostError::Other(e.to_string()))?
                ),
            }
            .map_err(io_error)?;
            shown += 1;
            if f.count.is_some_and(|c| shown >= c) {
                io.out.flush().map_err(io_error)?;
                return Ok(OK);
            }
        }
        io.out.flush().map_err(io_error)?;
        since = next;
        // A page with events may have more behind it: ask again at once.
        if more {
            continue;
        }
        if f.duration
            .is_some_and(|d| host.elapsed().saturating_sub(start) >= d)
        {
            return Ok(OK);
        }
        host.sleep(f.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeHost, run, running_driver};
    use super::*;
    use civ_engine::protocol::{Kind, SiteRecord};

    #[test]
    fn status_needs_civ_running() {
        let mut host = FakeHost::default();
        let (r, ..) = run(|io| status_command(&mut host, StatusFormat::Human, io));
        assert_eq!(r, Err(HostError::NotRunning { installed: false }));
        host.installed = true;
        let (r, ..) = run(|io| status_command(&mut host, StatusFormat::Human, io));
        let e = r.unwrap_err();
        assert_eq!(e, HostError::NotRunning { installed: true });
        assert!(
            e.to_string()
                .starts_with("civ.sys is not running: civctl install, then sc start civ / reboot")
        );
        host.driver = Some(running_driver());
        let (r, out, _) = run(|io| status_command(&mut host, StatusFormat::Json, io));
        assert_eq!(r, Ok(OK));
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["targets"][0]["name"], "late.sys");
        assert_eq!(j["targets"][0]["counters"]["Execute Pool Type"], 1);
        let (_, out, _) = run(|io| status_command(&mut host, StatusFormat::Human, io));
        assert!(out.contains("Execute Pool Type"), "{out}");
        let (_, out, _) = run(|io| status_command(&mut host, StatusFormat::Verifier, io));
        assert!(out.contains("Module: late.sys (load: 1"), "{out}");
        assert!(out.contains("Execute Pool Type Count: 1"), "{out}");
    }

    #[test]
    fn log_pages_through_every_site() {
        let driver = running_driver();
        driver.borrow_mut().sites = (0..2500)
            .map(|i| SiteRecord {
                offset: i,
                ..driver.borrow().sites[0]
            })
            .collect();
        let mut host = FakeHost {
            installed: true,
            driver: Some(driver.clone()),
            ..FakeHost::default()
        };
        let (r, out, _) = run(|io| log(&mut host, TextOrJson::Json, None, io));
        assert_eq!(r, Ok(OK));
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["total"], 2500);
        let sites = j["sites"].as_array().unwrap();
        assert_eq!(sites.len(), 2500);
        assert_eq!(sites[2499]["offset"], 2499);
        assert_eq!(sites[0]["api"], "ExAllocatePoolWithTag");
        assert_eq!(sites[0]["driver"], "late.sys");
        let pages = driver
            .borrow()
            .seen
            .iter()
            .filter(|k| **k == Kind::GetSites)
            .count();
        assert!(pages >= 3, "{pages} page(s)");
        let (_, out, _) = run(|io| log(&mut host, TextOrJson::Human, None, io));
        assert!(out.contains("2500 violation site(s)"), "{out}");
    }

    #[test]
    fn follow_prints_the_ring_then_new_events_and_stops() {
        let driver = running_driver();
        let mut host = FakeHost {
            installed: true,
            driver: Some(driver.clone()),
            ..FakeHost::default()
        };
        let follow = Follow {
            count: Some(3),
            duration: None,
            interval: Duration::from_secs(1),
        };
        let (r, out, err) = run(|io| log(&mut host, TextOrJson::Human, Some(follow), io));
        assert_eq!(r, Ok(OK));
        assert!(err.contains("Ctrl-C"), "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with("#0 ") && lines[2].starts_with("#2 "),
            "{out}"
        );
        assert!(
            lines[2].contains("late.sys+0x1040 (load 1)  ExAllocatePoolWithTag"),
            "{out}"
        );
        assert!(host.sleeps >= 1, "it waited for the new event");
        // --for: stops on time, JSON lines.
        let mut host = FakeHost {
            installed: true,
            driver: Some(running_driver()),
            ..FakeHost::default()
        };
        let follow = Follow {
            count: None,
            duration: Some(Duration::from_secs(5)),
            interval: Duration::from_secs(1),
        };
        let (r, out, _) = run(|io| log(&mut host, TextOrJson::Json, Some(follow), io));
        assert_eq!(r, Ok(OK));
        let seqs: Vec<u64> = out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(host.clock, Duration::from_secs(5));
    }
}
