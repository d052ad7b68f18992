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
