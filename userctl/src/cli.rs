//! The command line: parses, dispatches, and maps results to exit codes.
//!
//! verifier.exe's syntax (`civctl /flags 0x02000000 /driver a.sys`) is
//! rewritten into the subcommands first ([`crate::control::verifier`]).
//! Exit statuses: `scan` and `decode` keep theirs; the Windows commands
//! follow verifier.exe (0 done, 1 error, usage errors included, 2 reboot
//! needed).

use crate::control::commands::{self, Io};
use crate::control::configure::{self, FlagsArg};
use crate::control::flags::parse_driver_name;
use crate::control::host::{Clear, Host, HostError, InstallSpec, StartType};
use crate::control::install;
use crate::control::live::{self, Follow, StatusFormat};
use crate::control::verifier;
use crate::format::TextOrJson;
use crate::{audit, decode, scan};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// civ: find what keeps a Windows driver from running under memory integrity (HVCI).
#[derive(Debug, Parser)]
#[command(name = "civctl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check driver images statically: what DV's code integrity option (0x2003-0x2005)
    /// would say, which imports civ hooks at run time, and, in x64 code, each
    /// call to a hooked import with the checked argument where it is a
    /// constant: the 0x2000-0x2002 violations DV would report at run time.
    ///
    /// Exit status: 0 all clean, 1 findings (predicted violations included;
    /// call sites whose argument is unknown are not findings), 2 a path or
    /// file could not be scanned.
    Scan {
        /// Files and folders (folders are searched recursively for .sys files).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// In folders, scan every PE image (any file starting with MZ), not only .sys.
        #[arg(long)]
        all_pe: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: scan::Format,
        /// A PDB to locate addresses in the source with (function, file:line);
        /// used for the images it matches (GUID and age). May be repeated.
        /// Without it, `<image>.pdb` beside each image is used when it matches.
        #[arg(long = "pdb", value_name = "FILE")]
        pdbs: Vec<PathBuf>,
        /// In the human report, list every predicted call site, the clean ones
        /// too (by default: violations and unknowns).
        #[arg(long)]
        all_sites: bool,
    },
    /// Why memory integrity (HVCI) will not turn on, and what to remove.
    ///
    /// Every kernel driver of the machine (services of driver type, Driver
    /// Store packages, and on a live system the modules loaded now): DV's
    /// image checks, predicted run-time violations, Microsoft's driver
    /// block rules (--blocklist) and LOLDrivers (--loldrivers) matches,
    /// HvciDisallowedImages, whether it starts at boot, and the command
    /// that removes it. Without --root: this machine (Windows, elevated).
    ///
    /// Exit status: 0 nothing found, 1 findings, 2 could not audit (a bad
    /// root, hive or list, or a driver file that could not be read).
    Audit {
        /// The root of a mounted Windows volume (the folder that holds
        /// Windows\), audited offline from its files and SYSTEM hive.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Microsoft's recommended driver block rules, as the SiPolicy XML
        /// Microsoft publishes.
        #[arg(long, value_name = "FILE")]
        blocklist: Option<PathBuf>,
        /// LOLDrivers' drivers.csv or drivers.json.
        #[arg(long, value_name = "FILE")]
        loldrivers: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: audit::Format,
    },
    /// Explain a bug check 0xC4 code integrity violation: `civctl decode C4 2000 <a2> <a3> <a4>`.
    ///
    /// Values are hex as WinDbg prints them; the leading C4 may be left out.
    Decode {
        /// [C4] ARG1 ARG2 ARG3 ARG4
        #[arg(required = true, num_args = 4..=5, allow_hyphen_values = true)]
        values: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: TextOrJson,
    },
    /// Windows: verify drivers with civ, like `verifier /flags 0x02000000 /driver A.sys`.
    ///
    /// Writes VerifyDriverLevel, VerifyDrivers and ViolationAction under
    /// HKLM\SYSTEM\CurrentControlSet\Services\civ\Parameters. When civ.sys is
    /// running, the settings also apply at once to drivers that load from now
    /// on (exit 0); otherwise they take effect when civ starts (exit 2: reboot,
    /// or sc start civ). verifier's form works too:
    /// `civctl /flags 0x02000000 /driver a.sys b.sys [/log.code_integrity]`.
    Enable {
        /// Driver file names to verify (`*` = every non-Microsoft driver;
        /// `*` and `?` are wildcards).
        #[arg(long = "driver", value_name = "NAME", required = true, num_args = 1.., value_parser = parse_driver_name)]
        drivers: Vec<String>,
        /// Verifier flags: decimal, 0x hex, 0o octal or 0b binary; a number
        /// without a prefix is decimal, as verifier.exe reads it. civ acts
        /// on 0x02000000 (code integrity checks) and ignores the others.
        #[arg(long, value_name = "N", default_value = "0x02000000", value_parser = configure::parse_flags_arg)]
        flags: FlagsArg,
        /// Log violations and let the driver go on (ViolationAction 1, DV's
        /// /log.code_integrity) instead of bug check 0xC4.
        #[arg(long)]
        log: bool,
    },
    /// Windows: stop verifying: removes civ's three settings (exit 2: reboot needed).
    ///
    /// When civ.sys is running, drivers that load from now on are no longer
    /// checked; the ones it hooked stay checked until a reboot.
    Disable,
    /// Windows: removes every value of civ's Parameters key, like `verifier /reset` (exit 2).
    Reset,
    /// Windows: the settings civ.sys will use after the next boot, like `verifier /querysettings`.
    Query {
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: TextOrJson,
    },
    /// Windows: civ.sys live: settings in force, each verified driver with
    /// DV's seven counters, like `verifier /query`. Exit 1 if civ.sys is not running.
    ///
    /// `--format verifier` prints verifier.exe's own text (`Module:`,
    /// `Code Integrity Statistics:`, DV's counter labels) for the scripts
    /// that parse `verifier /query`.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: StatusFormat,
    },
    /// Windows: the violations civ.sys recorded: code, driver and offset of
    /// the call, API, hits, arguments and what they mean.
    Log {
        /// Output format (with --follow: one JSON object per line).
        #[arg(long, value_enum, default_value = "human")]
        format: TextOrJson,
        /// Watch: print each violation as it happens (those still in civ's
        /// ring first), polling every second, until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// With --follow: stop after N violations.
        #[arg(long, value_name = "N", requires = "follow")]
        count: Option<u64>,
        /// With --follow: stop after SECONDS.
        #[arg(long = "for", value_name = "SECONDS", requires = "follow")]
        for_secs: Option<u64>,
    },
    /// Windows: installs the WDM civ.sys as the kernel service civ (where the INF is not used).
    ///
    /// Copies it to %SystemRoot%\System32\drivers\civ.sys and creates the
    /// service; then `civctl enable`, and `sc start civ` or reboot.
    Install {
        /// The civ.sys to install.
        #[arg(long, value_name = "PATH")]
        sys: PathBuf,
        /// Start type: boot (checks drivers from the first boot-start one),
        /// system, or demand (sc start civ).
        #[arg(long, value_enum, default_value = "boot")]
        start: StartType,
        /// Load order group.
        #[arg(long, default_value = "Boot Bus Extender")]
        group: String,
    },
    /// Windows: stops and deletes the service civ (exit 2 if it could not be stopped).
    Uninstall,
}

/// The Windows commands' names: their usage errors exit 1, as verifier's.
const CONTROL_COMMANDS: [&str; 8] = [
    "enable",
    "disable",
    "reset",
    "query",
    "status",
    "log",
    "install",
    "uninstall",
];

/// Is this a Windows command's command line (after the verifier rewrite)?
fn is_control(args: &[OsString]) -> bool {
    args.get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| CONTROL_COMMANDS.contains(&a))
}

/// Why a command line was not run.
#[derive(Debug)]
pub enum ParseFailure {
    /// verifier.exe syntax civctl does not take.
    Verifier(String),
    /// clap's error (or help, or version), and whether it is a Windows
    /// command's.
    Clap(clap::Error, bool),
}

impl ParseFailure {
    /// The exit status: 0 for help and version; usage errors 1 for the
    /// Windows commands (as verifier), 2 for scan and decode.
    pub fn code(&self) -> u8 {
        match self {
            ParseFailure::Verifier(_) => 1,
            ParseFailure::Clap(e, _) if !e.use_stderr() => 0,
            ParseFailure::Clap(_, true) => 1,
            ParseFailure::Clap(_, false) => 2,
        }
    }

    /// The message, without terminal styling.
    pub fn message(&self) -> String {
        match self {
            ParseFailure::Verifier(m) => format!("civctl: {m}\n"),
            ParseFailure::Clap(e, _) => e.render().to_string(),
        }
    }

    /// Prints the message where it belongs (help to stdout, errors to
    /// stderr, styled when that is a terminal).
    pub fn print(&self) {
        match self {
            ParseFailure::Verifier(m) => eprintln!("civctl: {m}"),
            ParseFailure::Clap(e, _) => {
                let _ = e.print();
            }
        }
    }
}

/// Parses a command line (program name first), verifier's syntax included.
pub fn parse(args: Vec<OsString>) -> Result<Cli, ParseFailure> {
    let args = verifier::rewrite(args).map_err(ParseFailure::Verifier)?;
    let control = is_control(&args);
    Cli::try_parse_from(args).map_err(|e| ParseFailure::Clap(e, control))
}

/// Runs civctl with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(failure) => {
            failure.print();
            return ExitCode::from(failure.code());
        }
    };
    ExitCode::from(run(cli))
}

/// The machine the Windows commands act on.
fn host() -> Box<dyn Host> {
    #[cfg(windows)]
    {
        Box::new(crate::win::WinHost::new())
    }
    #[cfg(not(windows))]
    {
        Box::new(crate::control::host::Unsupported)
    }
}

/// Runs a Windows command with stdout, stderr and the host; prints its
/// error, if any, as `civctl <name>: <message>` (exit 1).
fn control(name: &str, f: impl FnOnce(&mut dyn Host, &mut Io<'_>) -> Result<u8, HostError>) -> u8 {
    let mut host = host();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let result = f(
        host.as_mut(),
        &mut Io {
            out: &mut out,
            err: &mut err,
        },
    );
    let _ = out.flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "civctl {name}: {e}");
            commands::ERROR
        }
    }
}

fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Scan {
            paths,
            all_pe,
            format,
            pdbs,
            all_sites,
        } => {
            // A PDB named on the command line that cannot be read is a
            // usage error, reported before anything is scanned.
            let mut loaded = Vec::new();
            for p in &pdbs {
                match crate::symbols::Symbols::load(p) {
                    Ok(s) => loaded.push(s),
                    Err(e) => {
                        eprintln!("civctl scan: --pdb {e}");
                        return 2;
                    }
                }
            }
            let options = scan::Options {
                all_pe,
                pdbs: loaded,
                all_sites,
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            scan::run_with(&paths, format, &options, &mut out)
        }
        Command::Audit {
            root,
            blocklist,
            loldrivers,
            format,
        } => {
            let options = audit::Options {
                root,
                blocklist,
                loldrivers,
            };
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            audit::run(&options, format, &mut stdout.lock(), &mut stderr.lock())
        }
        Command::Decode { values, format } => match decode::decode_values(&values) {
            Ok(d) => {
                match format {
                    TextOrJson::Human => print!("{}", decode::to_text(&d)),
                    TextOrJson::Json => match serde_json::to_string_pretty(&d) {
                        Ok(s) => println!("{s}"),
                        Err(e) => {
                            eprintln!("civctl: {e}");
                            return 2;
                        }
                    },
                }
                0
            }
            Err(e) => {
                eprintln!("civctl decode: {e}");
                2
            }
        },
        Command::Enable {
            drivers,
            flags,
            log,
        } => control("enable", |h, io| {
            configure::enable(h, &flags, &drivers, log, io)
        }),
        Command::Disable => control("disable", |h, io| configure::clear(h, Clear::Settings, io)),
        Command::Reset => control("reset", |h, io| configure::clear(h, Clear::All, io)),
        Command::Query { format } => control("query", |h, io| configure::query(h, format, io)),
        Command::Status { format } => {
            control("status", |h, io| live::status_command(h, format, io))
        }
        Command::Log {
            format,
            follow,
            count,
            for_secs,
        } => {
            let follow = follow.then_some(Follow {
                count,
                duration: for_secs.map(Duration::from_secs),
                interval: Duration::from_secs(1),
            });
            control("log", |h, io| live::log(h, format, follow, io))
        }
        Command::Install { sys, start, group } => control("install", |h, io| {
            install::install(h, &InstallSpec { sys, start, group }, io)
        }),
        Command::Uninstall => control("uninstall", install::uninstall),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, (String, u8)> {
        let mut v: Vec<OsString> = vec!["civctl".into()];
        v.extend(args.iter().map(OsString::from));
        parse(v)
            .map(|c| c.command)
            .map_err(|f| (f.message(), f.code()))
    }

    fn enable_of(args: &[&str]) -> (Vec<String>, u32, bool) {
        match parse_args(args) {
            Ok(Command::Enable {
                drivers,
                flags,
                log,
            }) => (drivers, flags.value, log),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn enable_in_both_syntaxes() {
        let both = [
            &[
                "enable",
                "--driver",
                "a.sys",
                "b.sys",
                "--flags",
                "0x02000000",
            ][..],
            &["/flags", "0x02000000", "/driver", "a.sys", "b.sys"],
            &["/Driver", "a.sys", "b.sys", "/FLAGS", "33554432"],
            &[
                "enable",
                "--flags",
                "0b10000000000000000000000000",
                "--driver",
                "a.sys",
                "--driver",
                "b.sys",
            ],
        ];
        for args in both {
            assert_eq!(
                enable_of(args),
                (vec!["a.sys".into(), "b.sys".into()], 0x0200_0000, false),
                "{args:?}"
            );
        }
        // Default flags; --log and verifier's /log.code_integrity.
        assert_eq!(
            enable_of(&["enable", "--driver", "x.sys", "--log"]),
            (vec!["x.sys".into()], 0x0200_0000, true)
        );
        assert_eq!(
            enable_of(&["/driver", "x.sys", "/log.code_integrity"]),
            (vec!["x.sys".into()], 0x0200_0000, true)
        );
        assert_eq!(enable_of(&["/all"]).0, ["*"]);
        assert_eq!(
            enable_of(&["enable", "--flags", "0o200000000", "--driver", "*"]).1,
            0x0200_0000
        );
        // A bare number is decimal.
        assert_eq!(
            enable_of(&["enable", "--flags", "2000000", "--driver", "a.sys"]).1,
            2_000_000
        );
    }

    #[test]
    fn read_commands_in_both_syntaxes() {
        assert!(matches!(
            parse_args(&["query"]),
            Ok(Command::Query {
                format: TextOrJson::Human
            })
        ));
        assert!(matches!(
            parse_args(&["/querysettings", "--format", "json"]),
            Ok(Command::Query {
                format: TextOrJson::Json
            })
        ));
        assert!(matches!(
            parse_args(&["/query"]),
            Ok(Command::Status { .. })
        ));
        assert!(matches!(
            parse_args(&["status", "--format", "json"]),
            Ok(Command::Status {
                format: StatusFormat::Json
            })
        ));
        assert!(matches!(
            parse_args(&["/query", "--format", "verifier"]),
            Ok(Command::Status {
                format: StatusFormat::Verifier
            })
        ));
        assert!(matches!(parse_args(&["/reset"]), Ok(Command::Reset)));
        assert!(matches!(parse_args(&["reset"]), Ok(Command::Reset)));
        assert!(matches!(parse_args(&["disable"]), Ok(Command::Disable)));
        assert!(matches!(
            parse_args(&["log", "--follow", "--count", "2", "--for", "10"]),
            Ok(Command::Log {
                follow: true,
                count: Some(2),
                for_secs: Some(10),
                ..
            })
        ));
        assert!(matches!(
            parse_args(&["log"]),
            Ok(Command::Log {
                follow: false,
                count: None,
                ..
            })
        ));
        match parse_args(&["install", "--sys", "C:\\civ\\civ.sys", "--start", "demand"]) {
            Ok(Command::Install { sys, start, group }) => {
                assert_eq!(sys, PathBuf::from("C:\\civ\\civ.sys"));
                assert_eq!(start, StartType::Demand);
                assert_eq!(group, "Boot Bus Extender");
            }
            other => panic!("{other:?}"),
        }
        match parse_args(&["install", "--sys", "civ.sys"]) {
            Ok(Command::Install { start, .. }) => assert_eq!(start, StartType::Boot),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_args(&["uninstall"]), Ok(Command::Uninstall)));
    }

    #[test]
    fn bad_input_exits_1_with_a_message() {
        let cases: [(&[&str], &str); 9] = [
            (
                &["enable", "--driver", "a.sys", "--flags", "0xZZ"],
                "not a hex number",
            ),
            (&["/flags", "0xZZ", "/driver", "a.sys"], "not a hex number"),
            (&["enable", "--driver", "C:\\x\\a.sys"], "is a path"),
            (&["enable", "--driver", ""], "empty"),
            (&["enable"], "--driver"),
            (
                &["enable", "--driver", "a.sys", "--flags", "0x100000000"],
                "32 bits",
            ),
            (&["/standard", "/driver", "a.sys"], "does not implement"),
            (&["log", "--count", "3"], "--follow"),
            (&["status", "--format", "xml"], "xml"),
        ];
        for (args, message) in cases {
            let (text, code) = parse_args(args).unwrap_err();
            assert_eq!(code, 1, "{args:?}: {text}");
            assert!(text.contains(message), "{args:?}: {text}");
        }
        let long = format!("{}.sys", "x".repeat(70));
        let (text, code) = parse_args(&["enable", "--driver", &long]).unwrap_err();
        assert_eq!(code, 1);
        assert!(text.contains("at most 64 bytes"), "{text}");
    }

    #[test]
    fn scan_and_decode_keep_their_exit_statuses() {
        assert_eq!(parse_args(&["scan"]).unwrap_err().1, 2);
        assert_eq!(parse_args(&["frobnicate"]).unwrap_err().1, 2);
        assert_eq!(parse_args(&["decode", "1"]).unwrap_err().1, 2);
        assert_eq!(parse_args(&["--help"]).unwrap_err().1, 0);
        assert_eq!(parse_args(&["/?"]).unwrap_err().1, 0);
        assert!(matches!(
            parse_args(&["scan", "/tmp/a.sys"]),
            Ok(Command::Scan { .. })
        ));
    }

    #[test]
    fn help_says_how_flags_are_read() {
        let (text, code) = parse_args(&["enable", "--help"]).unwrap_err();
        assert_eq!(code, 0);
        assert!(text.contains("without a prefix is decimal"), "{text}");
        assert!(text.contains("/flags 0x02000000 /driver"), "{text}");
    }
}
