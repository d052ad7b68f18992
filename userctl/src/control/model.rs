//! The settings model: what `enable` writes into civ's Parameters key, and
//! what `query` shows of it. Reading goes through the engine's own parser
//! ([`Settings::parse`]), the one civ.sys runs at boot, so that `query`
//! shows exactly what civ.sys will do, notes on ignored values included.

use super::flags::{FlagBit, flag_bits};
use super::host::{PARAMETERS_KEY, ParamValues, RawParams};
use civ_engine::settings::{Action, Settings};
use serde::Serialize;

/// The values `enable` writes: VerifyDriverLevel = `flags`, VerifyDrivers =
/// the names joined by spaces (REG_SZ, as verifier writes its own),
/// ViolationAction = 1 with `--log`, else 0 (bug check, DV's behaviour).
pub fn enable_values(flags: u32, drivers: &[String], log: bool) -> ParamValues {
    ParamValues {
        level: flags,
        drivers: drivers.join(" "),
        action: if log {
            Action::Log as u32
        } else {
            Action::BugCheck as u32
        },
    }
}

/// The word JSON and the human text use for an action.
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::BugCheck => "bugcheck",
        Action::Log => "log",
    }
}

/// What an action does, in words.
pub fn action_meaning(action: Action) -> &'static str {
    match action {
        Action::BugCheck => "bug check 0xC4 on the first violation (Driver Verifier's behaviour)",
        Action::Log => "record each violation and let the call go on; civctl log lists them",
    }
}

/// `civctl query`: the settings civ.sys will read at its next start.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct QueryView {
    /// The key, `HKLM\...\Parameters`.
    pub key: String,
    /// The service `civ` exists.
    pub installed: bool,
    /// civ.sys is running now (its settings in force may differ: `status`).
    pub running: bool,
    /// Some value of the three is set.
    pub configured: bool,
    /// VerifyDriverLevel as civ reads it.
    pub flags: u32,
    /// The same, `0x02000000`.
    pub flags_hex: String,
    /// Its bits, each named or ignored.
    pub flag_bits: Vec<FlagBit>,
    /// 0x02000000 is set: civ checks the drivers below.
    pub code_integrity: bool,
    /// VerifyDrivers, the names civ.sys keeps.
    pub drivers: Vec<String>,
    /// `bugcheck` or `log`.
    pub action: &'static str,
    /// The engine's notes on values it ignores or replaces.
    pub notes: Vec<&'static str>,
}

impl QueryView {
    /// Builds the view from the raw values, through the engine's parser.
    pub fn new(raw: &RawParams, installed: bool, running: bool) -> QueryView {
        fn view(r: &Option<(u32, Vec<u8>)>) -> Option<(u32, &[u8])> {
            r.as_ref().map(|(t, b)| (*t, b.as_slice()))
        }
        let s = Settings::parse(view(&raw.level), view(&raw.drivers), view(&raw.action));
        QueryView {
            key: format!("HKLM\\{PARAMETERS_KEY}"),
            installed,
            running,
            configured: raw.level.is_some() || raw.drivers.is_some() || raw.action.is_some(),
            flags: s.level,
            flags_hex: format!("{:#010x}", s.level),
            flag_bits: flag_bits(s.level),
            code_integrity: s.enabled(),
            drivers: s
                .targets()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect(),
            action: action_name(s.action),
            notes: s.notes.messages().collect(),
        }
    }

    /// The view for a person.
    pub fn to_text(&self) -> String {
        let mut s = format!("civ settings for the next boot ({})\n", self.key);
        s.push_str(&format!(
            "  service civ:  {}\n",
            match (self.installed, self.running) {
                (_, true) => "installed, running (settings in force: civctl status)",
                (true, false) => "installed, not running",
                (false, false) => "not installed (civctl install, or the INF)",
            }
        ));
        if !self.configured {
            s.push_str("  no settings: civ checks nothing (civctl enable --driver NAME.sys)\n");
            return s;
        }
        s.push_str(&format!("  flags:        {}\n", self.flags_hex));
        for b in &self.flag_bits {
            s.push_str(&format!("                {} {}\n", b.bit, b.meaning));
        }
        s.push_str(&format!(
            "  drivers:      {}\n",
            if self.drivers.is_empty() {
                "(none)".to_string()
            } else {
                self.drivers.join(" ")
            }
        ));
        let action = if self.action == "log" {
            Action::Log
        } else {
            Action::BugCheck
        };
        s.push_str(&format!(
            "  action:       {} ({}): {}\n",
            self.action,
            action as u32,
            action_meaning(action)
        ));
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civ_engine::settings::{REG_DWORD, REG_MULTI_SZ, REG_SZ};

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    fn dword(v: u32) -> Option<(u32, Vec<u8>)> {
        Some((REG_DWORD, v.to_le_bytes().to_vec()))
    }

    #[test]
    fn enable_writes_the_three_values() {
        let names = ["a.sys".to_string(), "b.sys".to_string()];
        assert_eq!(
            enable_values(0x0200_0000, &names, true),
            ParamValues {
                level: 0x0200_0000,
                drivers: "a.sys b.sys".into(),
                action: 1
            }
        );
        assert_eq!(enable_values(0x0200_0001, &names[..1], false).action, 0);
        assert_eq!(
            enable_values(0x0200_0001, &names[..1], false).drivers,
            "a.sys"
        );
    }

    #[test]
    fn what_enable_writes_reads_back_through_the_engine() {
        let names = ["a.sys".to_string(), "B*.SYS".to_string()];
        let v = enable_values(0x0200_0000, &names, true);
        let raw = RawParams {
            level: dword(v.level),
            drivers: Some((REG_SZ, utf16(&v.drivers))),
            action: dword(v.action),
        };
        let q = QueryView::new(&raw, true, false);
        assert_eq!(q.drivers, ["a.sys", "B*.SYS"]);
        assert!(q.code_integrity && q.configured);
        assert_eq!((q.flags_hex.as_str(), q.action), ("0x02000000", "log"));
        assert!(q.notes.is_empty(), "{:?}", q.notes);
        let t = q.to_text();
        assert!(t.contains("drivers:      a.sys B*.SYS"), "{t}");
        assert!(t.contains("0x02000000 code integrity checks"), "{t}");
        assert!(t.contains("action:       log (1)"), "{t}");
        assert!(t.contains("installed, not running"), "{t}");
    }

    #[test]
    fn nothing_set_says_so() {
        let q = QueryView::new(&RawParams::default(), false, false);
        assert!(!q.configured && !q.code_integrity && q.drivers.is_empty());
        assert_eq!(q.action, "bugcheck");
        let t = q.to_text();
        assert!(
            t.contains("not installed (civctl install, or the INF)"),
            "{t}"
        );
        assert!(t.contains("no settings: civ checks nothing"), "{t}");
        let j = serde_json::to_value(&q).unwrap();
        assert_eq!(j["configured"], false);
        assert_eq!(j["flags"], 0);
        assert_eq!(
            j["key"],
            "HKLM\\SYSTEM\\CurrentControlSet\\Services\\civ\\Parameters"
        );
    }

    #[test]
    fn bad_values_show_the_engines_notes_and_ignored_flags() {
        let raw = RawParams {
            level: dword(0x0200_0009),
            drivers: Some((REG_MULTI_SZ, {
                let mut b = utf16("a.sys");
                b.extend(utf16("b.sys"));
                b.extend([0, 0]);
                b
            })),
            action: dword(7),
        };
        let q = QueryView::new(&raw, true, true);
        assert_eq!(q.drivers, ["a.sys", "b.sys"]);
        assert_eq!(q.action, "bugcheck");
        assert_eq!(q.flag_bits.len(), 3);
        assert!(
            q.notes
                .iter()
                .any(|n| n.contains("flags other than 0x02000000"))
        );
        assert!(
            q.notes
                .iter()
                .any(|n| n.starts_with("ViolationAction is not 0"))
        );
        let t = q.to_text();
        assert!(
            t.contains("0x00000001 ignored (civ acts on 0x02000000 only)"),
            "{t}"
        );
        assert!(t.contains("note: ViolationAction is not 0"), "{t}");
        assert!(t.contains("installed, running"), "{t}");
        let wrong_type = RawParams {
            level: Some((REG_SZ, utf16("0x02000000"))),
            ..RawParams::default()
        };
        let q = QueryView::new(&wrong_type, true, false);
        assert!(!q.code_integrity);
        assert!(q.notes.iter().any(|n| n.contains("not a REG_DWORD")));
    }
}
