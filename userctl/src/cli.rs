//! The command line: parses, dispatches, and maps results to exit codes.

use crate::{decode, scan};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// civ: find what keeps a Windows driver from running under memory integrity (HVCI).
#[derive(Debug, Parser)]
#[command(name = "civctl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Output format of `decode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    /// Text for a person.
    Human,
    /// JSON.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check driver images statically: what DV's code integrity option (0x2003-0x2005)
    /// would say, and which imports civ hooks at run time.
    ///
    /// Exit status: 0 all clean, 1 findings, 2 a path or file could not be scanned.
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
}

/// Runs civctl with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Scan {
            paths,
            all_pe,
            format,
        } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            scan::run(&paths, all_pe, format, &mut out)
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
    }
}
