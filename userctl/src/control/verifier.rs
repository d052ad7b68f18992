//! verifier.exe's own command line, rewritten into civctl's subcommands so
//! that what a developer types for Driver Verifier works for civ too:
//!
//! | verifier.exe | civctl |
//! |---|---|
//! | `/flags N /driver a.sys b.sys` | `enable --flags N --driver a.sys b.sys` |
//! | `/driver a.sys` (no `/flags`) | `enable --driver a.sys` (flags 0x02000000) |
//! | `/all` | `--driver *` |
//! | `/log.code_integrity` | `--log` |
//! | `/querysettings` | `query` |
//! | `/query` | `status` |
//! | `/reset` | `reset` |
//! | `/?`, `/help` | `--help` |
//!
//! Options are case-insensitive, as verifier's are. civctl's own options
//! (`--format json`) may follow. Verifier's other options (`/standard`,
//! `/volatile`, rule classes, ...) turn on checks civ does not implement:
//! they are an error that says so, not silently ignored.

use std::ffi::OsString;

/// Does this command line use verifier.exe's syntax (its first argument
/// is a `/option`)? No civctl subcommand starts with `/`.
pub fn is_verifier_syntax(args: &[OsString]) -> bool {
    args.get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| a.starts_with('/'))
}

/// What the verifier options ask for.
#[derive(Debug, Default)]
struct Parsed {
    flags: Option<String>,
    drivers: Vec<String>,
    log: bool,
    /// `query`, `status` or `reset`, from `/querysettings`, `/query`, `/reset`.
    read: Option<(&'static str, String)>,
    help: bool,
    /// civctl options passed through (`--format json`).
    rest: Vec<OsString>,
}

const SUPPORTED: &str =
    "/flags, /driver, /all, /log.code_integrity, /querysettings, /query, /reset";

/// Rewrites verifier syntax into civctl's; any other command line is
/// returned unchanged. The program name stays first.
pub fn rewrite(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    if !is_verifier_syntax(&args) {
        return Ok(args);
    }
    let mut it = args.into_iter();
    let program = it.next().unwrap_or_else(|| "civctl".into());
    let mut p = Parsed::default();
    let mut it = it.peekable();
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str().map(str::to_string) else {
            return Err(format!("{} is not valid Unicode", arg.to_string_lossy()));
        };
        if !text.starts_with('/') {
            if text.starts_with("--") {
                // civctl's own option, with its value if it takes one.
                p.rest.push(arg);
                if text == "--format"
                    && let Some(v) = it.next()
                {
                    p.rest.push(v);
                }
                continue;
            }
            return Err(format!(
                "unexpected '{text}': a value must follow /flags or /driver"
            ));
        }
        let option = text.to_ascii_lowercase();
        match option.as_str() {
            "/flags" => {
                let value = it
                    .next()
                    .ok_or("/flags needs a value, e.g. /flags 0x02000000")?;
                if p.flags.is_some() {
                    return Err("/flags is given twice".into());
                }
                p.flags = Some(value.to_string_lossy().into_owned());
            }
            "/driver" => {
                let before = p.drivers.len();
                while let Some(next) = it.peek() {
                    let s = next.to_string_lossy();
                    if s.starts_with('/') || s.starts_with("--") {
                        break;
                    }
                    p.drivers.push(s.into_owned());
                    it.next();
                }
                if p.drivers.len() == before {
                    return Err(
                        "/driver needs at least one driver name, e.g. /driver mydriver.sys".into(),
                    );
                }
            }
            "/all" => p.drivers.push("*".into()),
            "/log.code_integrity" => p.log = true,
            "/querysettings" => set_read(&mut p, "query", &text)?,
            "/query" => set_read(&mut p, "status", &text)?,
            "/reset" => set_read(&mut p, "reset", &text)?,
            "/?" | "/help" => p.help = true,
            "/standard" => {
                return Err("/standard turns on Driver Verifier's standard checks, which civ does not implement; civ implements the code integrity checks: /flags 0x02000000".into());
            }
            "/volatile" => {
                return Err("/volatile: the code integrity checks cannot be volatile; civctl enable applies to drivers that load from now on when civ.sys is running, else after a reboot".into());
            }
            _ => {
                return Err(format!(
                    "verifier's {text} is not supported by civctl; it understands {SUPPORTED}"
                ));
            }
        }
    }
    let mut out = vec![program];
    if p.help {
        out.push("--help".into());
        return Ok(out);
    }
    if let Some((command, option)) = p.read {
        if p.flags.is_some() || !p.drivers.is_empty() || p.log {
            return Err(format!(
                "{option} cannot be combined with /flags, /driver, /all or /log.code_integrity"
            ));
        }
        out.push(command.into());
        out.extend(p.rest);
        return Ok(out);
    }
    if p.drivers.is_empty() {
        return Err(if p.flags.is_some() || p.log {
            "name the drivers to verify: /driver mydriver.sys (or /all)".into()
        } else {
            format!("nothing to do: civctl understands {SUPPORTED}")
        });
    }
    out.push("enable".into());
    if let Some(flags) = p.flags {
        out.push("--flags".into());
        out.push(flags.into());
    }
    if p.log {
        out.push("--log".into());
    }
    out.extend(p.rest);
    out.push("--driver".into());
    out.extend(p.drivers.into_iter().map(OsString::from));
    Ok(out)
}

fn set_read(p: &mut Parsed, command: &'static str, option: &str) -> Result<(), String> {
    if let Some((_, first)) = &p.read {
        return Err(format!("{first} and {option} cannot be combined"));
    }
    p.read = Some((command, option.to_string()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(args: &[&str]) -> Result<Vec<String>, String> {
        let mut v: Vec<OsString> = vec!["civctl".into()];
        v.extend(args.iter().map(OsString::from));
        rewrite(v).map(|v| {
            v.into_iter()
                .skip(1)
                .map(|a| a.into_string().unwrap())
                .collect()
        })
    }

    #[test]
    fn civctl_syntax_is_left_alone() {
        for args in [
            &["scan", "/tmp/a.sys"][..],
            &["enable", "--driver", "a.sys"],
            &[],
            &["decode", "C4", "2000", "1", "0", "0"],
        ] {
            assert_eq!(rw(args).unwrap(), args);
        }
    }

    #[test]
    fn flags_and_drivers_become_enable() {
        assert_eq!(
            rw(&["/flags", "0x02000000", "/driver", "a.sys", "b.sys"]).unwrap(),
            [
                "enable",
                "--flags",
                "0x02000000",
                "--driver",
                "a.sys",
                "b.sys"
            ]
        );
        assert_eq!(
            rw(&[
                "/DRIVER",
                "a.sys",
                "/Flags",
                "33554432",
                "/log.code_integrity"
            ])
            .unwrap(),
            [
                "enable", "--flags", "33554432", "--log", "--driver", "a.sys"
            ]
        );
        assert_eq!(
            rw(&["/driver", "a.sys"]).unwrap(),
            ["enable", "--driver", "a.sys"]
        );
        assert_eq!(
            rw(&["/flags", "0x2000000", "/all"]).unwrap(),
            ["enable", "--flags", "0x2000000", "--driver", "*"]
        );
        assert_eq!(
            rw(&["/driver", "a.sys", "/driver", "b.sys"]).unwrap(),
            ["enable", "--driver", "a.sys", "b.sys"]
        );
    }

    #[test]
    fn queries_and_reset() {
        assert_eq!(rw(&["/querysettings"]).unwrap(), ["query"]);
        assert_eq!(rw(&["/QUERY"]).unwrap(), ["status"]);
        assert_eq!(rw(&["/reset"]).unwrap(), ["reset"]);
        assert_eq!(
            rw(&["/querysettings", "--format", "json"]).unwrap(),
            ["query", "--format", "json"]
        );
        assert_eq!(rw(&["/?"]).unwrap(), ["--help"]);
    }

    #[test]
    fn unsupported_and_malformed_say_why() {
        let e = rw(&["/standard", "/driver", "a.sys"]).unwrap_err();
        assert!(e.contains("does not implement"), "{e}");
        let e = rw(&["/rules", "query"]).unwrap_err();
        assert!(
            e.contains("/rules is not supported") && e.contains("/flags"),
            "{e}"
        );
        assert!(rw(&["/flags"]).unwrap_err().contains("needs a value"));
        assert!(
            rw(&["/flags", "0x02000000"])
                .unwrap_err()
                .contains("/driver mydriver.sys")
        );
        assert!(rw(&["/driver"]).unwrap_err().contains("at least one"));
        assert!(
            rw(&["/driver", "/flags", "1"])
                .unwrap_err()
                .contains("at least one")
        );
        assert!(
            rw(&["/flags", "1", "/flags", "2", "/all"])
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            rw(&["/reset", "/query"])
                .unwrap_err()
                .contains("cannot be combined")
        );
        assert!(
            rw(&["/reset", "/driver", "a.sys"])
                .unwrap_err()
                .contains("cannot be combined")
        );
        assert!(
            rw(&["/volatile"])
                .unwrap_err()
                .contains("cannot be volatile")
        );
        assert!(
            rw(&["/log.code_integrity"])
                .unwrap_err()
                .contains("/driver")
        );
    }
}
