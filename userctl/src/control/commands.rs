//! civctl's Windows commands, over a [`Host`]: what each writes, asks
//! civ.sys, prints and exits with. Exit statuses follow verifier.exe:
//! [`OK`], [`ERROR`] (returned as a [`HostError`], which the caller prints),
//! [`REBOOT`] (the settings are written and take effect at the next boot).

use super::flags::{self, DEFAULT_FLAGS};
use super::host::{
    Clear, Device, Host, HostError, InstallSpec, PARAMETERS_KEY, ParamValues, SERVICE_NAME,
};
use super::model::{QueryView, action_meaning, action_name, enable_values};
use super::report::{EventView, LogView, StatusView};
use crate::cli::TextOrJson;
use civ_engine::protocol::{
    self, EventRecord, GetEvents, GetSites, ProtoError, Request, SetSettings, SiteRecord,
    StatusHead, Targets, Version,
};
use civ_engine::settings::Action;
use std::io::Write;
use std::time::Duration;

/// Done.
pub const OK: u8 = 0;
/// Failed (a [`HostError`]).
pub const ERROR: u8 = 1;
/// Written; a reboot (or starting civ) is needed for it to take effect.
pub const REBOOT: u8 = 2;

/// Bytes of every reply buffer: a status of 64 targets, or a page of
/// sites or events, with room to spare.
const REPLY_BUFFER: usize = 64 * 1024;

/// Where a command prints: results to `out`, warnings and notes to `err`.
pub struct Io<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
}

fn io_error(e: std::io::Error) -> HostError {
    HostError::Other(format!("cannot write the output: {e}"))
}

/// The flags value of `enable`, with the text it was given as (for the
/// "did you mean hex" hint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagsArg {
    /// The value.
    pub value: u32,
    /// As typed.
    pub text: String,
}

impl Default for FlagsArg {
    fn default() -> Self {
        FlagsArg {
            value: DEFAULT_FLAGS,
            text: format!("{DEFAULT_FLAGS:#010x}"),
        }
    }
}

/// clap's value parser for `--flags`.
pub fn parse_flags_arg(text: &str) -> Result<FlagsArg, String> {
    flags::parse_flags(text).map(|value| FlagsArg {
        value,
        text: text.to_string(),
    })
}

// ---------------------------------------------------------------------------
// Talking to civ.sys: encode a request, send it, decode the reply.

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
fn running(host: &mut dyn Host) -> Result<Box<dyn Device>, HostError> {
    match host.open_device()? {
        Some(d) => Ok(d),
        None => Err(HostError::NotRunning {
            installed: host.installed()?,
        }),
    }
}

// ---------------------------------------------------------------------------
// The commands.

/// `civctl enable`: writes the settings; applies them at once when civ.sys
/// runs (exit 0), else says a reboot is needed (exit 2).
pub fn enable(
    host: &mut dyn Host,
    flags: &FlagsArg,
    drivers: &[String],
    log: bool,
    io: &mut Io<'_>,
) -> Result<u8, HostError> {
    let names = flags::check_driver_list(drivers).map_err(HostError::Other)?;
    if let Some(w) = flags::flags_warning(&flags.text, flags.value) {
        writeln!(io.err, "civctl enable: warning: {w}").map_err(io_error)?;
    }
    let values = enable_values(flags.value, &names, log);
    host.write_params(&values)?;
    print_written(&values, io)?;
    let action = Action::from_value(values.action).unwrap_or(Action::BugCheck);
    match host.open_device()? {
        Some(mut device) => {
            set_settings(device.as_mut(), values.level, action, &names)?;
            writeln!(
                io.out,
                "civ.sys is running: the settings apply now to drivers that load from now on; \
                 drivers already loaded are checked after a reboot"
            )
            .map_err(io_error)?;
            Ok(OK)
        }
        None => {
            if !host.installed()? {
                writeln!(
                    io.err,
                    "civctl enable: note: civ is not installed (civctl install, or the INF); the settings wait for it"
                )
                .map_err(io_error)?;
            }
            writeln!(
                io.out,
                "civ.sys is not running: reboot (or start civ) for the settings to take effect"
            )
            .map_err(io_error)?;
            Ok(REBOOT)
        }
    }
}

fn print_written(v: &ParamValues, io: &mut Io<'_>) -> Result<(), HostError> {
    let action = Action::from_value(v.action).unwrap_or(Action::BugCheck);
    writeln!(
        io.out,
        "HKLM\\{PARAMETERS_KEY}\n  VerifyDriverLevel  REG_DWORD  {:#010x}\n  VerifyDrivers      REG_SZ     {}\n  ViolationAction    REG_DWORD  {} ({}: {})",
        v.level,
        v.drivers,
        v.action,
        action_name(action),
        action_meaning(action)
    )
    .map_err(io_error)
}

/// `civctl disable` ([`Clear::Settings`]) and `civctl reset`
/// ([`Clear::All`]): removes the values; when civ.sys runs, tells it to
/// check no driver that loads from now on. Exit 2: the drivers civ already
/// hooked stay hooked until a reboot.
pub fn clear(host: &mut dyn Host, which: Clear, io: &mut Io<'_>) -> Result<u8, HostError> {
    let removed = host.clear_params(which)?;
    let live = match host.open_device()? {
        Some(mut device) => {
            // Keep the action in force: the drivers already hooked go on
            // with it (switching a log-mode machine to bug check would stop
            // it at their next violation).
            let (_, head) = status(device.as_mut())?;
            set_settings(device.as_mut(), 0, head.action, &[])?;
            true
        }
        None => false,
    };
    if removed == 0 && !live {
        writeln!(io.out, "no civ settings to remove (HKLM\\{PARAMETERS_KEY})").map_err(io_error)?;
        return Ok(OK);
    }
    writeln!(
        io.out,
        "removed {removed} value(s) of HKLM\\{PARAMETERS_KEY}: civ checks no driver after the next boot"
    )
    .map_err(io_error)?;
    if live {
        writeln!(
            io.out,
            "civ.sys is running: drivers that load from now on are not checked; the drivers it hooked stay checked until a reboot"
        )
        .map_err(io_error)?;
    }
    writeln!(io.out, "reboot for the change to take full effect").map_err(io_error)?;
    Ok(REBOOT)
}

/// `civctl query`: the settings for the next boot, like `verifier /querysettings`.
pub fn query(host: &mut dyn Host, format: TextOrJson, io: &mut Io<'_>) -> Result<u8, HostError> {
    let raw = host.read_params()?;
    let installed = host.installed()?;
    let running = match host.open_device() {
        Ok(d) => d.is_some(),
        // The device is there, only not for this user.
        Err(HostError::AccessDenied) => true,
        Err(e) => return Err(e),
    };
    let view = QueryView::new(&raw, installed, running);
    match format {
        TextOrJson::Human => write!(io.out, "{}", view.to_text()),
        TextOrJson::Json => writeln!(io.out, "{}", json(&view)?),
    }
    .map_err(io_error)?;
    Ok(OK)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, HostError> {
    serde_json::to_string_pretty(v).map_err(|e| HostError::Other(format!("JSON: {e}")))
}

/// `civctl status`: civ.sys live, each verified driver with its counters,
/// like `verifier /query`.
pub fn status_command(
    host: &mut dyn Host,
    format: TextOrJson,
    io: &mut Io<'_>,
) -> Result<u8, HostError> {
    let mut device = running(host)?;
    let (view, _) = status(device.as_mut())?;
    match format {
        TextOrJson::Human => write!(io.out, "{}", view.to_text()),
        TextOrJson::Json => writeln!(io.out, "{}", json(&view)?),
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
    let log = LogView::new(total, dropped, sites, &names);
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

/// `civctl install`: the WDM civ.sys as a kernel service.
pub fn install(host: &mut dyn Host, spec: &InstallSpec, io: &mut Io<'_>) -> Result<u8, HostError> {
    let done = host.install(spec)?;
    writeln!(
        io.out,
        "installed service {SERVICE_NAME}: kernel driver, start {}, group \"{}\", ImagePath {} ({})\n\
         next: civctl enable --driver NAME.sys, then sc start {SERVICE_NAME} (or reboot)",
        spec.start.name(),
        spec.group,
        done.image_path,
        done.file
    )
    .map_err(io_error)?;
    Ok(OK)
}

/// `civctl uninstall`: stops and deletes the service.
pub fn uninstall(host: &mut dyn Host, io: &mut Io<'_>) -> Result<u8, HostError> {
    let done = host.uninstall()?;
    if done.stopped {
        writeln!(io.out, "stopped civ.sys").map_err(io_error)?;
    }
    writeln!(io.out, "deleted service {SERVICE_NAME}").map_err(io_error)?;
    if let Some(file) = &done.file_left {
        writeln!(io.err, "civctl uninstall: note: {file}").map_err(io_error)?;
    }
    if let Some(why) = &done.stop_failed {
        writeln!(
            io.out,
            "civ.sys could not be stopped ({why}): it is removed at the next reboot"
        )
        .map_err(io_error)?;
        return Ok(REBOOT);
    }
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::super::host::{Installed, RawParams, StartType, Uninstalled};
    use super::*;
    use civ_engine::catalog::CATALOG;
    use civ_engine::code::Counter;
    use civ_engine::protocol::{Kind, TargetRecord};
    use civ_engine::settings::{REG_DWORD, REG_SZ};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    /// civ.sys as the fake sees it: the protocol's own writers answer.
    #[derive(Default)]
    struct Driver {
        head: Option<StatusHead>,
        targets: Vec<TargetRecord>,
        sites: Vec<SiteRecord>,
        events: Vec<EventRecord>,
        /// Each SetSettings received: (level, action, names).
        set: Vec<(u32, Action, Vec<String>)>,
        /// Requests seen, by kind.
        seen: Vec<Kind>,
        /// Events that appear after this many GetEvents.
        later: Vec<(usize, EventRecord)>,
    }

    struct FakeDevice(Rc<RefCell<Driver>>);

    impl Device for FakeDevice {
        fn ioctl(&mut self, code: u32, input: &[u8], out: &mut [u8]) -> Result<usize, HostError> {
            let mut d = self.0.borrow_mut();
            let request = Request::decode_ioctl(code, input).expect("civctl sends valid requests");
            d.seen.push(request.kind());
            let head = d.head.unwrap_or(StatusHead {
                verify_level: 0x0200_0000,
                action: Action::Log,
                started_time: 0,
            });
            let n = match request {
                Request::QueryVersion => Version::new(0, 1, 0, 0).encode(out),
                Request::GetStatus => {
                    protocol::write_status(&head, d.targets.iter().copied(), out).map(|w| w.bytes)
                }
                Request::GetSites(r) => {
                    protocol::write_sites(&r, 0, d.sites.iter().copied(), out).map(|w| w.bytes)
                }
                Request::GetEvents(r) => {
                    let polls = d.seen.iter().filter(|k| **k == Kind::GetEvents).count();
                    let arrived: Vec<EventRecord> = d
                        .later
                        .iter()
                        .filter(|(after, _)| polls > *after)
                        .map(|(_, e)| *e)
                        .collect();
                    let all: Vec<EventRecord> = d.events.iter().copied().chain(arrived).collect();
                    protocol::write_events(&r, all, out).map(|w| w.bytes)
                }
                Request::SetSettings(s) => {
                    let names = s.targets.iter().map(str::to_string).collect();
                    d.set.push((s.verify_level, s.action, names));
                    protocol::write_ack(Kind::SetSettings, out)
                }
                Request::ResetLog => protocol::write_ack(Kind::ResetLog, out),
            };
            Ok(n.expect("fits"))
        }
    }

    #[derive(Default)]
    struct FakeHost {
        installed: bool,
        values: BTreeMap<String, (u32, Vec<u8>)>,
        driver: Option<Rc<RefCell<Driver>>>,
        denied: bool,
        clock: Duration,
        sleeps: u32,
    }

    fn utf16z(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    impl Host for FakeHost {
        fn installed(&mut self) -> Result<bool, HostError> {
            Ok(self.installed)
        }
        fn read_params(&mut self) -> Result<RawParams, HostError> {
            let get = |n: &str| self.values.get(n).cloned();
            Ok(RawParams {
                level: get("VerifyDriverLevel"),
                drivers: get("VerifyDrivers"),
                action: get("ViolationAction"),
            })
        }
        fn write_params(&mut self, v: &ParamValues) -> Result<(), HostError> {
            if self.denied {
                return Err(HostError::AccessDenied);
            }
            let dw = |x: u32| (REG_DWORD, x.to_le_bytes().to_vec());
            self.values.insert("VerifyDriverLevel".into(), dw(v.level));
            self.values
                .insert("VerifyDrivers".into(), (REG_SZ, utf16z(&v.drivers)));
            self.values.insert("ViolationAction".into(), dw(v.action));
            Ok(())
        }
        fn clear_params(&mut self, which: Clear) -> Result<usize, HostError> {
            let before = self.values.len();
            match which {
                Clear::All => self.values.clear(),
                Clear::Settings => {
                    for n in ["VerifyDriverLevel", "VerifyDrivers", "ViolationAction"] {
                        self.values.remove(n);
                    }
                }
            }
            Ok(before - self.values.len())
        }
        fn open_device(&mut self) -> Result<Option<Box<dyn Device>>, HostError> {
            Ok(self
                .driver
                .as_ref()
                .map(|d| Box::new(FakeDevice(d.clone())) as Box<dyn Device>))
        }
        fn install(&mut self, spec: &InstallSpec) -> Result<Installed, HostError> {
            if self.installed {
                return Err(HostError::AlreadyInstalled);
            }
            self.installed = true;
            Ok(Installed {
                file: format!(
                    "C:\\Windows\\System32\\drivers\\civ.sys <- {}",
                    spec.sys.display()
                ),
                image_path: "\\SystemRoot\\System32\\drivers\\civ.sys".into(),
            })
        }
        fn uninstall(&mut self) -> Result<Uninstalled, HostError> {
            if !self.installed {
                return Err(HostError::NotInstalled);
            }
            self.installed = false;
            Ok(Uninstalled {
                stopped: self.driver.take().is_some(),
                stop_failed: None,
                file_left: None,
            })
        }
        fn sleep(&mut self, d: Duration) {
            self.clock += d;
            self.sleeps += 1;
        }
        fn elapsed(&mut self) -> Duration {
            self.clock
        }
    }

    fn run(
        f: impl FnOnce(&mut Io<'_>) -> Result<u8, HostError>,
    ) -> (Result<u8, HostError>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = f(&mut Io {
            out: &mut out,
            err: &mut err,
        });
        (
            r,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn running_driver() -> Rc<RefCell<Driver>> {
        let mut t = TargetRecord::new("late.sys");
        t.counters[Counter::ExecutePoolType as usize] = 1;
        t.flags = TargetRecord::IMAGE_CHECKED;
        t.hooked_slots = 1;
        let api = CATALOG
            .iter()
            .position(|h| h.name == "ExAllocatePoolWithTag")
            .unwrap() as u8;
        let site = SiteRecord {
            counter: Counter::ExecutePoolType,
            target: 0,
            api,
            offset: 0x1040,
            arg3: 0,
            arg4: 0x4943_7866,
            first_time: 0,
            last_time: 0,
            hits: 1,
        };
        let event = |seq| EventRecord {
            seq,
            time: 0,
            counter: Counter::ExecutePoolType,
            target: 0,
            api,
            offset: 0x1040,
            arg3: 0,
            arg4: 0,
        };
        Rc::new(RefCell::new(Driver {
            targets: vec![t],
            sites: (0..3)
                .map(|i| SiteRecord {
                    offset: 0x1040 + i,
                    ..site
                })
                .collect(),
            events: vec![event(0), event(1)],
            later: vec![(2, event(2))],
            ..Driver::default()
        }))
    }

    #[test]
    fn enable_without_civ_running_writes_and_asks_for_a_reboot() {
        let mut host = FakeHost::default();
        let (r, out, err) = run(|io| {
            enable(
                &mut host,
                &FlagsArg::default(),
                &names(&["fx.sys", "FX.SYS", "b.sys"]),
                true,
                io,
            )
        });
        assert_eq!(r, Ok(REBOOT));
        assert!(
            out.contains("reboot (or start civ) for the settings to take effect"),
            "{out}"
        );
        assert!(
            out.contains("VerifyDrivers      REG_SZ     fx.sys b.sys"),
            "{out}"
        );
        assert!(err.contains("civ is not installed"), "{err}");
        let q = QueryView::new(&host.read_params().unwrap(), false, false);
        assert_eq!(q.drivers, ["fx.sys", "b.sys"]);
        assert_eq!((q.flags, q.action), (0x0200_0000, "log"));
    }

    #[test]
    fn enable_with_civ_running_applies_now() {
        let driver = running_driver();
        let mut host = FakeHost {
            installed: true,
            driver: Some(driver.clone()),
            ..FakeHost::default()
        };
        let flags = parse_flags_arg("0x02000008").unwrap();
        let (r, out, err) = run(|io| enable(&mut host, &flags, &names(&["late.sys"]), false, io));
        assert_eq!(r, Ok(OK), "{err}");
        assert!(out.contains("the settings apply now"), "{out}");
        assert!(err.is_empty(), "{err}");
        assert_eq!(
            driver.borrow().set,
            [(0x0200_0008, Action::BugCheck, names(&["late.sys"]))]
        );
    }

    #[test]
    fn enable_warns_of_flags_that_turn_civ_off_and_stops_when_denied() {
        let mut host = FakeHost::default();
        let flags = parse_flags_arg("2000000").unwrap();
        let (r, _, err) = run(|io| enable(&mut host, &flags, &names(&["a.sys"]), false, io));
        assert_eq!(r, Ok(REBOOT));
        assert!(err.contains("did you mean 0x2000000?"), "{err}");
        let mut host = FakeHost {
            denied: true,
            ..FakeHost::default()
        };
        let (r, out, _) = run(|io| {
            enable(
                &mut host,
                &FlagsArg::default(),
                &names(&["a.sys"]),
                false,
                io,
            )
        });
        assert_eq!(r, Err(HostError::AccessDenied));
        assert!(out.is_empty());
        let many: Vec<String> = (0..65).map(|i| format!("d{i}.sys")).collect();
        let (r, ..) = run(|io| {
            enable(
                &mut FakeHost::default(),
                &FlagsArg::default(),
                &many,
                false,
                io,
            )
        });
        assert!(matches!(r, Err(HostError::Other(m)) if m.contains("at most 64")));
    }

    #[test]
    fn disable_and_reset_remove_values_and_stop_new_checks() {
        let driver = running_driver();
        let mut host = FakeHost {
            installed: true,
            driver: Some(driver.clone()),
            ..FakeHost::default()
        };
        host.values
            .insert("Other".into(), (REG_DWORD, 1u32.to_le_bytes().to_vec()));
        run(|io| {
            enable(
                &mut host,
                &FlagsArg::default(),
                &names(&["a.sys"]),
                true,
                io,
            )
        })
        .0
        .unwrap();
        let (r, out, _) = run(|io| clear(&mut host, Clear::Settings, io));
        assert_eq!(r, Ok(REBOOT));
        assert!(out.contains("removed 3 value(s)"), "{out}");
        assert!(
            out.contains("drivers that load from now on are not checked"),
            "{out}"
        );
        assert_eq!(host.values.len(), 1, "disable keeps other values");
        // Level 0, the action in force kept, no names.
        assert_eq!(
            driver.borrow().set.last().unwrap(),
            &(0, Action::Log, vec![])
        );
        let (r, out, _) = run(|io| clear(&mut host, Clear::All, io));
        assert_eq!(r, Ok(REBOOT));
        assert!(out.contains("removed 1 value(s)"), "{out}");
        assert!(host.values.is_empty());
        host.driver = None;
        let (r, out, _) = run(|io| clear(&mut host, Clear::All, io));
        assert_eq!(r, Ok(OK));
        assert!(out.contains("no civ settings to remove"), "{out}");
    }

    #[test]
    fn query_shows_the_settings_in_both_formats() {
        let mut host = FakeHost::default();
        let (r, out, _) = run(|io| query(&mut host, TextOrJson::Human, io));
        assert_eq!(r, Ok(OK));
        assert!(out.contains("no settings"), "{out}");
        run(|io| {
            enable(
                &mut host,
                &FlagsArg::default(),
                &names(&["fx.sys"]),
                true,
                io,
            )
        })
        .0
        .unwrap();
        host.installed = true;
        let (r, out, _) = run(|io| query(&mut host, TextOrJson::Json, io));
        assert_eq!(r, Ok(OK));
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["drivers"][0], "fx.sys");
        assert_eq!(j["flags"], 0x0200_0000);
        assert_eq!(j["action"], "log");
        assert_eq!(
            (j["installed"].as_bool(), j["running"].as_bool()),
            (Some(true), Some(false))
        );
    }

    #[test]
    fn status_needs_civ_running() {
        let mut host = FakeHost::default();
        let (r, ..) = run(|io| status_command(&mut host, TextOrJson::Human, io));
        assert_eq!(r, Err(HostError::NotRunning { installed: false }));
        host.installed = true;
        let (r, ..) = run(|io| status_command(&mut host, TextOrJson::Human, io));
        let e = r.unwrap_err();
        assert_eq!(e, HostError::NotRunning { installed: true });
        assert!(
            e.to_string()
                .starts_with("civ.sys is not running: civctl install, then sc start civ / reboot")
        );
        host.driver = Some(running_driver());
        let (r, out, _) = run(|io| status_command(&mut host, TextOrJson::Json, io));
        assert_eq!(r, Ok(OK));
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["targets"][0]["name"], "late.sys");
        assert_eq!(j["targets"][0]["counters"]["Execute Pool Type"], 1);
        let (_, out, _) = run(|io| status_command(&mut host, TextOrJson::Human, io));
        assert!(out.contains("Execute Pool Type"), "{out}");
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
            lines[2].contains("late.sys+0x1040  ExAllocatePoolWithTag"),
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

    #[test]
    fn install_and_uninstall() {
        let mut host = FakeHost::default();
        let spec = InstallSpec {
            sys: "C:\\civ\\civ.sys".into(),
            start: StartType::Demand,
            group: "Boot Bus Extender".into(),
        };
        let (r, out, _) = run(|io| install(&mut host, &spec, io));
        assert_eq!(r, Ok(OK));
        assert!(
            out.contains("start demand, group \"Boot Bus Extender\""),
            "{out}"
        );
        let (r, ..) = run(|io| install(&mut host, &spec, io));
        assert_eq!(r, Err(HostError::AlreadyInstalled));
        host.driver = Some(running_driver());
        let (r, out, _) = run(|io| uninstall(&mut host, io));
        assert_eq!(r, Ok(OK));
        assert!(
            out.contains("stopped civ.sys") && out.contains("deleted service civ"),
            "{out}"
        );
        let (r, ..) = run(|io| uninstall(&mut host, io));
        assert_eq!(r, Err(HostError::NotInstalled));
    }

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
