//! A fake machine for the Windows commands' unit tests: a [`Host`] over an
//! in-memory registry, and a civ.sys whose replies come from the protocol's
//! own writers.

use super::commands::Io;
use super::host::{
    Clear, Device, Host, HostError, InstallSpec, Installed, ParamValues, RawParams, Uninstalled,
};
use civ_engine::catalog::CATALOG;
use civ_engine::code::Counter;
use civ_engine::protocol::{
    self, EventRecord, Kind, Request, SiteRecord, StatusHead, TargetRecord, Version,
};
use civ_engine::settings::{Action, REG_DWORD, REG_SZ};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
pub(super) struct Driver {
    pub(super) head: Option<StatusHead>,
    pub(super) targets: Vec<TargetRecord>,
    pub(super) sites: Vec<SiteRecord>,
    pub(super) events: Vec<EventRecord>,
    /// Each SetSettings received: (level, action, names).
    pub(super) set: Vec<(u32, Action, Vec<String>)>,
    /// Requests seen, by kind.
    pub(super) seen: Vec<Kind>,
    /// Events that appear after this many GetEvents.
    pub(super) later: Vec<(usize, EventRecord)>,
}

pub(super) struct FakeDevice(pub(super) Rc<RefCell<Driver>>);

impl Device for FakeDevice {
    fn ioctl(&mut self, code: u32, input: &[u8], out: &mut [u8]) -> Result<usize, HostError> {
        let mut d = self.0.borrow_mut();
        let request = Request::decode_ioctl(code, input).expect("civctl sends valid requests");
        d.seen.push(request.kind());
        let head = d.head.unwrap_or(StatusHead {
            verify_level: 0x0200_0000,
            action: Action::Log,
            started_time: 0,
            flags: 0,
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
pub(super) struct FakeHost {
    pub(super) installed: bool,
    pub(super) values: BTreeMap<String, (u32, Vec<u8>)>,
    pub(super) driver: Option<Rc<RefCell<Driver>>>,
    pub(super) denied: bool,
    pub(super) clock: Duration,
    pub(super) sleeps: u32,
    /// What stopping the service answers (a pinned civ.sys refuses).
    pub(super) stop_refused: Option<String>,
}

pub(super) fn utf16z(s: &str) -> Vec<u8> {
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
        if let Some(why) = self.stop_refused.clone() {
            return Ok(Uninstalled {
                stopped: false,
                stop_failed: Some(why),
                file_left: None,
            });
        }
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

pub(super) fn run(
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

pub(super) fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

pub(super) fn running_driver() -> Rc<RefCell<Driver>> {
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
        load: 1,
        stack: [0; protocol::STACK_FRAMES],
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
        load: 1,
    };
    Rc::new(RefCell::new(Driver {
        targets: vec![t],
        sites: (0..3)
            .map(|i| {
                let mut s = site;
                s.offset = 0x1040 + i;
                s
            })
            .collect(),
        events: vec![event(0), event(1)],
        later: vec![(2, event(2))],
        ..Driver::default()
    }))
}
