//! The settings commands: `enable`, `disable`, `reset` and `query`. They
//! write (or read) civ's Parameters for the next boot and, when civ.sys is
//! running, apply the change at once to drivers that load from now on.

use super::client::{set_settings, status};
use super::commands::{Io, OK, REBOOT, io_error, json};
use super::flags::{self, DEFAULT_FLAGS};
use super::host::{Clear, Host, HostError, PARAMETERS_KEY, ParamValues};
use super::model::{QueryView, action_meaning, action_name, enable_values};
use crate::format::TextOrJson;
use civ_engine::settings::Action;

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
    let (live, pinned) = match host.open_device()? {
        Some(mut device) => {
            // Keep the action in force: the drivers already hooked go on
            // with it (switching a log-mode machine to bug check would stop
            // it at their next violation).
            let (view, head) = status(device.as_mut())?;
            set_settings(device.as_mut(), 0, head.action, &[])?;
            (true, view.pinned)
        }
        None => (false, false),
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
    if pinned {
        writeln!(
            io.out,
            "civ.sys sits in the calls of the drivers it hooked: it stays in memory until a reboot removes it (as Driver Verifier)"
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

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeHost, names, run, running_driver};
    use super::*;
    use civ_engine::settings::REG_DWORD;

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
        assert!(!out.contains("a reboot removes it"), "not pinned: {out}");
        assert_eq!(host.values.len(), 1, "disable keeps other values");
        // Level 0, the action in force kept, no names.
        assert_eq!(
            driver.borrow().set.last().unwrap(),
            &(0, Action::Log, vec![])
        );
        // civ.sys has hooked a driver: it says that only a reboot removes it.
        driver.borrow_mut().head = Some(civ_engine::protocol::StatusHead {
            verify_level: 0,
            action: Action::Log,
            started_time: 0,
            flags: civ_engine::protocol::StatusHead::PINNED,
        });
        let (r, out, _) = run(|io| clear(&mut host, Clear::All, io));
        assert_eq!(r, Ok(REBOOT));
        assert!(out.contains("removed 1 value(s)"), "{out}");
        assert!(
            out.contains("it stays in memory until a reboot removes it"),
            "{out}"
        );
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
}
