//! What `status` and `log` show, built from civ.sys's decoded replies
//! ([`StatusReply`], [`SitesReply`], [`EventsReply`]), for a person or as
//! JSON. Nothing here talks to the driver: the commands fetch, this module
//! only reads records, so it is tested with replies the protocol's own
//! writers encode.

use super::model::{action_meaning, action_name};
use civ_engine::catalog::CATALOG;
use civ_engine::code::{Code, Counter, VERIFIER_FLAG_CODE_INTEGRITY};
use civ_engine::protocol::{
    EventRecord, NO_API, SiteRecord, StatusHead, StatusReply, TargetRecord,
    UNKNOWN_SIGNATURE_LEVEL, UNKNOWN_TARGET, Version,
};
use civ_engine::scope::signing_level_name;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// A FILETIME (100-ns units since 1601, as KeQuerySystemTime) as
/// `2026-11-25 08:31:57.123 UTC`; `-` for 0.
pub fn utc(filetime: u64) -> String {
    if filetime == 0 {
        return "-".into();
    }
    // 1601-01-01 is 134774 days before 1970-01-01.
    let ms = filetime / 10_000;
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400) - 134_774;
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    )
}

/// The seven counters, serialized as a map from DV's label to the count,
/// in DV's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; 7]);

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(7))?;
        for c in Counter::ALL {
            map.serialize_entry(c.label(), &self.0[c as usize])?;
        }
        map.end()
    }
}

/// One target of `status`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TargetView {
    /// Its index in civ's log (what `log` entries refer to).
    pub index: usize,
    /// The image's file name.
    pub name: String,
    /// Where it is loaded.
    pub base: u64,
    /// SizeOfImage.
    pub size: u64,
    /// IAT slots civ rewrote.
    pub hooked_slots: u32,
    /// IAT slots of hooked APIs left alone: they held another routine
    /// than the kernel's (Driver Verifier's thunk, another hooker).
    pub conflicts: u32,
    /// Which load of this driver since boot (1, 2, ...).
    pub load: u16,
    /// Its SE_SIGNING_LEVEL, if the kernel said.
    pub signature_level: Option<u8>,
    /// A target name matched it exactly (else only a pattern such as `*`).
    pub named: bool,
    /// Loaded before civ: calls made before it was hooked were not seen.
    pub late: bool,
    /// The image checks 0x2003-0x2005 ran.
    pub image_checked: bool,
    /// Unloaded since.
    pub unloaded: bool,
    /// Import call optimization: the kernel may bind its calls of hooked
    /// APIs directly, and civ does not see those.
    pub import_optimized: bool,
    /// DV's seven counters.
    pub counters: Counters,
}

impl TargetView {
    /// Does the image, as loaded now, contain `address`?
    fn contains(&self, address: u64) -> bool {
        address
            .checked_sub(self.base)
            .is_some_and(|o| o < self.size)
    }
}

/// `civctl status`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct StatusView {
    /// Always true: a status needs civ.sys.
    pub running: bool,
    /// civ.sys's version, `0.1.0`.
    pub driver_version: String,
    /// The protocol version both sides speak.
    pub protocol: u16,
    /// VerifyDriverLevel in force.
    pub flags: u32,
    /// The same, `0x02000000`.
    pub flags_hex: String,
    /// 0x02000000 is in force: drivers that load are checked.
    pub code_integrity: bool,
    /// `bugcheck` or `log`.
    pub action: &'static str,
    /// When civ.sys started (FILETIME).
    pub started_time: u64,
    /// The same, in UTC.
    pub started: String,
    /// civ.sys sits in drivers' calls: it stays in memory until reboot.
    pub pinned: bool,
    /// civ.sys had more targets than the reply could hold.
    pub truncated: bool,
    /// The verified drivers, in civ's order.
    pub targets: Vec<TargetView>,
}

impl StatusView {
    /// Builds the view from the version and status replies.
    pub fn new(version: &Version, status: &StatusReply<'_>) -> StatusView {
        let level = status.head.verify_level;
        StatusView {
            running: true,
            driver_version: format!(
                "{}.{}.{}",
                version.driver_major, version.driver_minor, version.driver_patch
            ),
            protocol: version.protocol,
            flags: level,
            flags_hex: format!("{level:#010x}"),
            code_integrity: level & VERIFIER_FLAG_CODE_INTEGRITY != 0,
            action: action_name(status.head.action),
            started_time: status.head.started_time,
            started: utc(status.head.started_time),
            pinned: status.head.flags & StatusHead::PINNED != 0,
            truncated: status.truncated,
            targets: status
                .targets
                .iter()
                .enumerate()
                .map(|(index, t)| target_view(index, &t))
                .collect(),
        }
    }

    /// The names of the targets by index, for `log`.
    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// The view for a person, laid out like `verifier /query`.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "civ.sys {} (protocol {}), running since {}\n",
            self.driver_version, self.protocol, self.started
        );
        let action = if self.action == "log" {
            civ_engine::settings::Action::Log
        } else {
            civ_engine::settings::Action::BugCheck
        };
        s.push_str(&format!(
            "flags {}{}, action {}: {}\n",
            self.flags_hex,
            if self.code_integrity {
                " (code integrity checks)"
            } else {
                " (no code integrity flag: drivers that load now are not checked)"
            },
            self.action,
            action_meaning(action)
        ));
        if self.pinned {
            s.push_str(
                "civ.sys sits in drivers' calls: it stays in memory until reboot (sc stop leaves every hook)\n",
            );
        }
        let loaded = self.targets.iter().filter(|t| !t.unloaded).count();
        s.push_str(&format!(
            "{} verified driver(s), {loaded} loaded\n",
            self.targets.len()
        ));
        for t in &self.targets {
            let mut marks = String::new();
            if t.load > 1 {
                marks.push_str(&format!("  load {}", t.load));
            }
            if !t.named {
                marks.push_str("  (by pattern)");
            }
            if t.late {
                marks.push_str("  LATE (loaded before civ: earlier calls not seen)");
            }
            if t.unloaded {
                marks.push_str("  unloaded");
            }
            if !t.image_checked {
                marks.push_str("  image not checked");
            }
            s.push_str(&format!(
                "\n{}  base {:#x}  size {:#x}  {} hooked slot(s){marks}\n",
                t.name, t.base, t.size, t.hooked_slots
            ));
            if let Some(level) = t.signature_level {
                s.push_str(&format!(
                    "    signature level {level} ({})\n",
                    signing_level_name(level)
                ));
            }
            if t.conflicts > 0 {
                s.push_str(&format!(
                    "    {} slot(s) held another routine than the kernel's (Driver Verifier on it? another hooker?): not hooked\n",
                    t.conflicts
                ));
            }
            if t.import_optimized {
                s.push_str(
                    "    IMPORT CALL OPTIMIZATION: the kernel may bind its calls of hooked APIs directly; civ does not see those. \
                     Verify a build without /guard:retpoline or import call optimization.\n",
                );
            }
            for c in Counter::ALL {
                s.push_str(&format!(
                    "    {:<28}{}\n",
                    c.label(),
                    t.counters.0[c as usize]
                ));
            }
        }
        if self.truncated {
            s.push_str("\n(more targets than one reply holds: the list is cut)\n");
        }
        s
    }
}

fn target_view(index: usize, t: &TargetRecord) -> TargetView {
    TargetView {
        index,
        name: t.name().to_string(),
        base: t.base,
        size: t.size,
        hooked_slots: t.hooked_slots,
        conflicts: t.conflicts,
        load: t.load,
        signature_level: (t.signature_level != UNKNOWN_SIGNATURE_LEVEL)
            .then_some(t.signature_level),
        named: t.flags & TargetRecord::NAMED != 0,
        late: t.flags & TargetRecord::LATE != 0,
        image_checked: t.flags & TargetRecord::IMAGE_CHECKED != 0,
        unloaded: t.flags & TargetRecord::UNLOADED != 0,
        import_optimized: t.flags & TargetRecord::IMPORT_OPTIMIZED != 0,
        counters: Counters(t.counters),
    }
}

/// A site's or event's code as JSON shows it: `0x2000`, or `relocs`.
fn code_text(counter: Counter) -> String {
    counter.tag().to_string()
}

/// The API of a catalog index; `image` for an image finding.
pub fn api_name(api: u8) -> String {
    if api == NO_API {
        return "image".into();
    }
    CATALOG
        .get(usize::from(api))
        .map_or_else(|| format!("api #{api}"), |h| h.name.to_string())
}

fn driver_name(names: &[String], target: u8) -> String {
    if target == UNKNOWN_TARGET {
        return "(unknown driver)".into();
    }
    names
        .get(usize::from(target))
        .cloned()
        .unwrap_or_else(|| format!("target #{target}"))
}

/// The section name an image finding's Arg4 carries in civ's log (its 8
/// bytes, little-endian; a bug check's Arg4 points at them instead).
pub fn section_name(arg4: u64) -> String {
    let bytes = arg4.to_le_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(8);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What a violation's arguments mean: for 0x2000-0x2002 the reading
/// `civctl decode` gives of Arg3 and Arg4; for an image finding, what it is
/// and in which section (with `scan`'s note on INIT).
pub fn meaning(counter: Counter, offset: u64, arg3: u64, arg4: u64) -> String {
    match counter.code() {
        Some(
            code @ (Code::ExecutePoolType | Code::ExecutePageProtection | Code::ExecutePageMapping),
        ) => match crate::decode::decode([u64::from(code.value()), offset, arg3, arg4]) {
            Ok(d) => d
                .arguments
                .iter()
                .skip(2)
                .map(|a| a.meaning.as_str())
                .filter(|m| !m.starts_with("reserved"))
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => e.to_string(),
        },
        Some(code) => {
            let section = section_name(arg4);
            let mut m = format!("{} (rva {offset:#x}", code.title());
            if !section.is_empty() {
                m.push_str(&format!(", section {section}"));
            }
            m.push(')');
            if code == Code::ExecuteWriteSection && section == "INIT" {
                m.push_str(": ");
                m.push_str(civ_engine::image::INIT_NOTE);
            }
            m
        }
        None => format!(
            "base relocation straddling a page at rva {offset:#x} (not applied under HVCI on Windows 10 1507-1607)"
        ),
    }
}

/// One unique violation site of `log`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SiteView {
    /// `0x2000`..`0x2005`, or `relocs`.
    pub code: String,
    /// DV's counter label.
    pub counter: &'static str,
    /// Index of the driver in `status`.
    pub target: u8,
    /// The driver's file name.
    pub driver: String,
    /// The hooked API, or `image` for an image finding.
    pub api: String,
    /// The caller's offset in the driver (RVA), or the finding's RVA.
    pub offset: u64,
    /// How many times.
    pub hits: u64,
    /// DV's Arg3 (pool type, protection, priority; section header address).
    pub arg3: u64,
    /// DV's Arg4 (pool tag, or 0).
    pub arg4: u64,
    /// What the arguments mean.
    pub meaning: String,
    /// First hit (FILETIME).
    pub first_time: u64,
    /// Last hit (FILETIME).
    pub last_time: u64,
    /// Which load of the driver the site belongs to (1, 2, ...).
    pub load: u16,
    /// The call stack at the first hit, from the call site outwards.
    pub stack: Vec<Frame>,
}

/// One return address of a recorded call stack.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Frame {
    /// The address.
    pub address: u64,
    /// The verified driver it lies in (as loaded now), if any.
    pub driver: Option<String>,
    /// Its offset in that driver.
    pub offset: Option<u64>,
}

impl Frame {
    fn resolve(address: u64, targets: &[TargetView]) -> Frame {
        match targets.iter().find(|t| !t.unloaded && t.contains(address)) {
            Some(t) => Frame {
                address,
                driver: Some(t.name.clone()),
                offset: Some(address - t.base),
            },
            None => Frame {
                address,
                driver: None,
                offset: None,
            },
        }
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.driver, self.offset) {
            (Some(d), Some(o)) => write!(f, "{d}+{o:#x}"),
            _ => write!(f, "{:#x}", self.address),
        }
    }
}

/// `civctl log`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LogView {
    /// Sites in civ's table.
    pub total: u32,
    /// Sites civ could not record (its table was full).
    pub dropped: u64,
    /// The sites.
    pub sites: Vec<SiteView>,
}

impl LogView {
    /// Builds the view from every page of sites and `status`'s targets,
    /// ordered by driver, then load, then first hit.
    pub fn new(
        total: u32,
        dropped: u64,
        sites: impl IntoIterator<Item = SiteRecord>,
        targets: &[TargetView],
    ) -> LogView {
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let mut sites: Vec<SiteView> = sites
            .into_iter()
            .map(|s| SiteView {
                code: code_text(s.counter),
                counter: s.counter.label(),
                target: s.target,
                driver: driver_name(&names, s.target),
                api: api_name(s.api),
                offset: s.offset,
                hits: s.hits,
                arg3: s.arg3,
                arg4: s.arg4,
                meaning: meaning(s.counter, s.offset, s.arg3, s.arg4),
                first_time: s.first_time,
                last_time: s.last_time,
                load: s.load,
                stack: s
                    .stack()
                    .iter()
                    .map(|&a| Frame::resolve(a, targets))
                    .collect(),
            })
            .collect();
        sites.sort_by(|a, b| {
            (&a.driver, a.load, a.first_time, a.offset).cmp(&(
                &b.driver,
                b.load,
                b.first_time,
                b.offset,
            ))
        });
        LogView {
            total,
            dropped,
            sites,
        }
    }

    /// The view for a person.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.sites.is_empty() {
            s.push_str("no violations recorded\n");
        } else {
            s.push_str(&format!("{} violation site(s)\n", self.sites.len()));
        }
        for v in &self.sites {
            s.push_str(&format!(
                "\n{} {}  {}+{:#x} (load {})  {}  hits {}  arg3 {:#x}  arg4 {:#x}\n    {}\n    first {}, last {}\n",
                v.code,
                v.counter,
                v.driver,
                v.offset,
                v.load,
                v.api,
                v.hits,
                v.arg3,
                v.arg4,
                v.meaning,
                utc(v.first_time),
                utc(v.last_time)
            ));
            if !v.stack.is_empty() {
                let frames: Vec<String> = v.stack.iter().map(Frame::to_string).collect();
                s.push_str(&format!("    stack: {}\n", frames.join(" <- ")));
            }
        }
        if self.dropped > 0 {
            s.push_str(&format!(
                "\n{} site(s) not recorded: civ's table was full\n",
                self.dropped
            ));
        }
        if let Some(call) = self.sites.iter().find(|v| v.api != "image") {
            let module = call
                .driver
                .rsplit_once('.')
                .map_or(call.driver.as_str(), |(stem, _)| stem);
            s.push_str(&format!(
                "\nA call's offset is its return address in the driver: in WinDbg `ln {module}+{:#x}`; \
                 civctl scan --pdb finds the same call statically, with its source line.\n",
                call.offset
            ));
        }
        s
    }
}

/// One event of `log --follow`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct EventView {
    /// Sequence number.
    pub seq: u64,
    /// When (FILETIME).
    pub time: u64,
    /// `0x2000`..`0x2005`, or `relocs`.
    pub code: String,
    /// DV's counter label.
    pub counter: &'static str,
    /// Index of the driver in `status`.
    pub target: u8,
    /// The driver's file name.
    pub driver: String,
    /// The hooked API, or `image`.
    pub api: String,
    /// Offset in the driver.
    pub offset: u64,
    /// DV's Arg3.
    pub arg3: u64,
    /// DV's Arg4.
    pub arg4: u64,
    /// What the arguments mean.
    pub meaning: String,
    /// Which load of the driver (1, 2, ...).
    pub load: u16,
}

impl EventView {
    /// Builds the view of one event.
    pub fn new(e: &EventRecord, names: &[String]) -> EventView {
        EventView {
            seq: e.seq,
            time: e.time,
            code: code_text(e.counter),
            counter: e.counter.label(),
            target: e.target,
            driver: driver_name(names, e.target),
            api: api_name(e.api),
            offset: e.offset,
            arg3: e.arg3,
            arg4: e.arg4,
            meaning: meaning(e.counter, e.offset, e.arg3, e.arg4),
            load: e.load,
        }
    }

    /// One line for a person.
    pub fn to_line(&self) -> String {
        format!(
            "#{} {}  {} {}  {}+{:#x} (load {})  {}  arg3 {:#x}  arg4 {:#x}  {}\n",
            self.seq,
            utc(self.time),
            self.code,
            self.counter,
            self.driver,
            self.offset,
            self.load,
            self.api,
            self.arg3,
            self.arg4,
            self.meaning
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civ_engine::protocol::{
        self, GetEvents, GetSites, StatusHead, decode_reply_events, decode_reply_sites,
        decode_reply_status,
    };
    use civ_engine::settings::Action;

    /// 2026-11-25 08:31:57.123 UTC as a FILETIME.
    const T: u64 = (1_795_595_517_123 + 11_644_473_600_000) * 10_000;

    fn late_sys() -> TargetRecord {
        let mut t = TargetRecord::new("late.sys");
        t.base = 0xFFFF_F801_2000_0000;
        t.size = 0x6000;
        t.counters[Counter::ExecutePoolType as usize] = 1;
        t.hooked_slots = 1;
        t.flags = TargetRecord::IMAGE_CHECKED | TargetRecord::NAMED;
        t
    }

    fn site(target: u8, api: &str) -> SiteRecord {
        SiteRecord {
            counter: Counter::ExecutePoolType,
            target,
            api: CATALOG.iter().position(|h| h.name == api).unwrap() as u8,
            offset: 0x1a2b,
            arg3: 0,
            arg4: u64::from(u32::from_le_bytes(*b"fxCI")),
            first_time: T,
            last_time: T,
            hits: 3,
            load: 1,
            stack: [0; protocol::STACK_FRAMES],
        }
    }

    /// A target as `status` shows it.
    fn target(name: &str, base: u64, size: u64) -> TargetView {
        TargetView {
            index: 0,
            name: name.into(),
            base,
            size,
            hooked_slots: 1,
            conflicts: 0,
            load: 1,
            signature_level: None,
            named: true,
            late: false,
            image_checked: true,
            unloaded: false,
            import_optimized: false,
            counters: Counters([0; 7]),
        }
    }

    #[test]
    fn filetimes_read_as_utc() {
        assert_eq!(utc(0), "-");
        assert_eq!(utc(T), "2026-11-25 08:31:57.123 UTC");
        assert_eq!(utc(116_444_736_000_000_000), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(1), "1601-01-01 00:00:00.000 UTC");
        // 2024-02-29 12:00:00 UTC: a leap day.
        assert_eq!(
            utc((1_709_208_000 + 11_644_473_600) * 10_000_000),
            "2024-02-29 12:00:00.000 UTC"
        );
    }

    #[test]
    fn status_from_the_drivers_reply() {
        let head = StatusHead {
            verify_level: 0x0200_0000,
            action: Action::Log,
            started_time: T,
            flags: 0,
        };
        let mut early = TargetRecord::new("early.sys");
        early.flags = TargetRecord::LATE
            | TargetRecord::IMAGE_CHECKED
            | TargetRecord::UNLOADED
            | TargetRecord::NAMED;
        early.counters[Counter::ExecuteWriteSection as usize] = 2;
        let mut buf = vec![0u8; 4096];
        protocol::write_status(&head, [late_sys(), early], &mut buf).unwrap();
        let reply = decode_reply_status(&buf).unwrap();
        let view = StatusView::new(&Version::new(0, 1, 0, 0), &reply);
        assert_eq!(view.names(), ["late.sys", "early.sys"]);
        let j = serde_json::to_value(&view).unwrap();
        assert_eq!(j["running"], true);
        assert_eq!(j["driver_version"], "0.1.0");
        assert_eq!(j["flags_hex"], "0x02000000");
        assert_eq!(j["action"], "log");
        assert_eq!(j["started"], "2026-11-25 08:31:57.123 UTC");
        let late = &j["targets"][0];
        assert_eq!(late["name"], "late.sys");
        assert_eq!(late["counters"]["Execute Pool Type"], 1);
        assert_eq!(late["counters"]["IAT in Executable Section"], 0);
        assert_eq!(late["late"], false);
        assert_eq!(late["base"], 0xFFFF_F801_2000_0000u64);
        assert_eq!(j["targets"][1]["late"], true);
        assert_eq!(j["targets"][1]["unloaded"], true);
        // DV's order, all seven.
        let keys: Vec<&String> = late["counters"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 7);
        let text = view.to_text();
        assert!(
            text.contains(&format!(
                "civ.sys 0.1.0 (protocol {}), running since 2026-11-25",
                protocol::PROTOCOL_VERSION
            )),
            "{text}"
        );
        assert!(text.contains("2 verified driver(s), 1 loaded"), "{text}");
        for c in Counter::ALL {
            assert!(text.contains(c.label()), "{text}");
        }
        assert!(
            text.contains("    Execute Pool Type           1\n"),
            "{text}"
        );
        assert!(
            text.contains("early.sys  base 0x0  size 0x0  0 hooked slot(s)  LATE"),
            "{text}"
        );
        assert!(text.contains("Execute-Write Section       2"), "{text}");
        let order: Vec<usize> = Counter::ALL
            .iter()
            .map(|c| text.find(c.label()).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "DV's order");
    }

    #[test]
    fn log_from_every_page_of_sites() {
        let all: Vec<SiteRecord> = (0..5)
            .map(|i| {
                let mut s = site(0, "ExAllocatePoolWithTag");
                s.offset += i;
                s
            })
            .collect();
        let mut got = Vec::new();
        let mut req = GetSites { start: 0, max: 2 };
        let total = loop {
            let mut buf = vec![0u8; 4096];
            protocol::write_sites(&req, 0, all.iter().copied(), &mut buf).unwrap();
            let reply = decode_reply_sites(&buf).unwrap();
            got.extend(reply.sites.iter());
            match reply.next_page(&req) {
                Some(next) => req = next,
                None => break reply.total,
            }
        };
        let view = LogView::new(total, 0, got, &[target("late.sys", 0, 0)]);
        assert_eq!(view.sites.len(), 5);
        let j = serde_json::to_value(&view).unwrap();
        let s = &j["sites"][0];
        assert_eq!(s["code"], "0x2000");
        assert_eq!(s["counter"], "Execute Pool Type");
        assert_eq!(s["driver"], "late.sys");
        assert_eq!(s["api"], "ExAllocatePoolWithTag");
        assert_eq!(s["arg3"], 0);
        assert_eq!(s["offset"], 0x1a2b);
        assert_eq!(s["hits"], 3);
        assert_eq!(
            s["meaning"],
            "POOL_TYPE NonPagedPool (executable); pool tag 'fxCI'"
        );
        let text = view.to_text();
        assert!(
            text.contains("0x2000 Execute Pool Type  late.sys+0x1a2b (load 1)  ExAllocatePoolWithTag  hits 3  arg3 0x0  arg4 0x49437866"),
            "{text}"
        );
        assert!(text.contains("first 2026-11-25 08:31:57.123 UTC"), "{text}");
        assert!(text.contains("`ln late+0x1a2b`"), "{text}");
    }

    #[test]
    fn image_findings_unknown_targets_and_other_codes() {
        let mut wx = site(1, "ExAllocatePoolWithTag");
        wx.counter = Counter::ExecuteWriteSection;
        wx.api = NO_API;
        wx.offset = 0x3000;
        let mut relocs = wx;
        relocs.counter = Counter::UnsupportedRelocs;
        let mut mdl = site(UNKNOWN_TARGET, "MmMapLockedPagesSpecifyCache");
        mdl.counter = Counter::ExecutePageMapping;
        mdl.arg3 = 0x10;
        mdl.arg4 = 0;
        let mut prot = site(7, "MmProtectMdlSystemAddress");
        prot.counter = Counter::ExecutePageProtection;
        prot.arg3 = 0x40;
        prot.arg4 = 0;
        // The log keeps an image finding's section name in arg4.
        wx.arg4 = u64::from_le_bytes(*b"INIT\0\0\0\0");
        relocs.arg4 = 0;
        let targets = [target("a.sys", 0, 0), target("wx.sys", 0, 0)];
        let view = LogView::new(4, 2, [wx, relocs, mdl, prot], &targets);
        // Ordered by driver name: "(unknown driver)", "target #7", "wx.sys".
        let s = &view.sites;
        assert_eq!(s[0].driver, "(unknown driver)");
        assert!(
            s[0].meaning.contains("NormalPagePriority"),
            "{}",
            s[0].meaning
        );
        assert!(!s[0].meaning.contains("reserved"), "{}", s[0].meaning);
        assert_eq!(s[1].driver, "target #7");
        assert!(
            s[1].meaning.contains("PAGE_EXECUTE_READWRITE"),
            "{}",
            s[1].meaning
        );
        let (wx, relocs) = if s[2].code == "0x2003" {
            (&s[2], &s[3])
        } else {
            (&s[3], &s[2])
        };
        assert_eq!((wx.api.as_str(), wx.driver.as_str()), ("image", "wx.sys"));
        assert!(
            wx.meaning
                .contains("writable and executable (rva 0x3000, section INIT): it is the discardable INIT section"),
            "{}",
            wx.meaning
        );
        assert_eq!(relocs.code, "relocs");
        assert!(relocs.meaning.contains("straddling a page"));
        assert!(view.to_text().contains("2 site(s) not recorded"));
        assert_eq!(api_name(200), "api #200");
        assert_eq!(
            LogView::new(0, 0, [], &[]).to_text(),
            "no violations recorded\n"
        );
    }

    #[test]
    fn events_read_from_the_reply() {
        let event = EventRecord {
            seq: 4,
            time: T,
            counter: Counter::ExecutePoolType,
            target: 0,
            api: CATALOG
                .iter()
                .position(|h| h.name == "ExAllocatePool")
                .unwrap() as u8,
            offset: 0x10,
            arg3: 0,
            arg4: 0,
            load: 2,
        };
        let mut buf = vec![0u8; 1024];
        protocol::write_events(
            &GetEvents {
                since_seq: 0,
                max: 10,
            },
            [event],
            &mut buf,
        )
        .unwrap();
        let reply = decode_reply_events(&buf).unwrap();
        assert_eq!((reply.next_seq, reply.lost), (5, 4));
        let e = EventView::new(&reply.events.get(0).unwrap(), &["late.sys".to_string()]);
        let line = e.to_line();
        assert!(
            line.starts_with("#4 2026-11-25 08:31:57.123 UTC  0x2000 Execute Pool Type  late.sys+0x10 (load 2)  ExAllocatePool  arg3 0x0  arg4 0x0  POOL_TYPE NonPagedPool (executable); no pool tag"),
            "{line}"
        );
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["seq"], 4);
        assert_eq!(j["api"], "ExAllocatePool");
    }

    #[test]
    fn status_says_pinned_loads_conflicts_signers_and_import_optimization() {
        let head = StatusHead {
            verify_level: 0x0200_0000,
            action: Action::Log,
            started_time: T,
            flags: StatusHead::PINNED,
        };
        let mut reloaded = late_sys();
        reloaded.flags &= !TargetRecord::NAMED;
        reloaded.load = 3;
        reloaded.conflicts = 2;
        reloaded.signature_level = 8;
        reloaded.flags |= TargetRecord::IMPORT_OPTIMIZED;
        let mut plain = TargetRecord::new("named.sys");
        plain.flags = TargetRecord::IMAGE_CHECKED | TargetRecord::NAMED;
        plain.load = 1;
        let mut buf = vec![0u8; 4096];
        protocol::write_status(&head, [reloaded, plain], &mut buf).unwrap();
        let view = StatusView::new(
            &Version::new(0, 1, 0, 0),
            &decode_reply_status(&buf).unwrap(),
        );
        assert!(view.pinned);
        let t = &view.targets[0];
        assert_eq!(
            (
                t.load,
                t.conflicts,
                t.signature_level,
                t.named,
                t.import_optimized
            ),
            (3, 2, Some(8), false, true)
        );
        assert_eq!(view.targets[1].signature_level, None);
        let text = view.to_text();
        for needle in [
            "stays in memory until reboot",
            "late.sys  base 0xfffff80120000000  size 0x6000  1 hooked slot(s)  load 3  (by pattern)",
            "signature level 8 (Microsoft)",
            "2 slot(s) held another routine",
            "IMPORT CALL OPTIMIZATION",
        ] {
            assert!(text.contains(needle), "no {needle:?} in:\n{text}");
        }
        assert!(
            text.contains("named.sys  base 0x0  size 0x0  0 hooked slot(s)\n"),
            "a plain target has no marks:\n{text}"
        );
        let j = serde_json::to_value(&view).unwrap();
        assert_eq!(j["pinned"], true);
        assert_eq!(j["targets"][0]["load"], 3);
        assert_eq!(j["targets"][0]["import_optimized"], true);
    }

    #[test]
    fn log_shows_each_load_apart_in_order_with_its_call_stack() {
        let base = 0xFFFF_F801_2000_0000u64;
        let mut second = site(0, "ExAllocatePoolWithTag");
        second.load = 2;
        second.first_time = T + 5;
        second.stack = [
            base + 0x1a2b,
            base + 0x1100,
            0xFFFF_F800_0000_1234,
            0,
            0,
            0,
            0,
            0,
        ];
        let mut first = site(0, "ExAllocatePoolWithTag");
        first.first_time = T + 9;
        let mut other = site(1, "ExAllocatePool");
        other.first_time = T;
        let targets = [target("late.sys", base, 0x6000), target("b.sys", 0, 0)];
        let view = LogView::new(3, 0, [second, other, first], &targets);
        let order: Vec<(String, u16)> = view
            .sites
            .iter()
            .map(|s| (s.driver.clone(), s.load))
            .collect();
        assert_eq!(
            order,
            [
                ("b.sys".into(), 1),
                ("late.sys".into(), 1),
                ("late.sys".into(), 2)
            ],
            "by driver, then load"
        );
        let frames = &view.sites[2].stack;
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].to_string(), "late.sys+0x1a2b");
        assert_eq!(frames[1].to_string(), "late.sys+0x1100");
        assert_eq!(frames[2].to_string(), "0xfffff80000001234");
        let text = view.to_text();
        assert!(text.contains("late.sys+0x1a2b (load 2)"), "{text}");
        assert!(
            text.contains("    stack: late.sys+0x1a2b <- late.sys+0x1100 <- 0xfffff80000001234\n"),
            "{text}"
        );
        let j = serde_json::to_value(&view).unwrap();
        assert_eq!(j["sites"][2]["stack"][1]["offset"], 0x1100);
        assert_eq!(j["sites"][2]["stack"][2]["driver"], serde_json::Value::Null);
    }
}
