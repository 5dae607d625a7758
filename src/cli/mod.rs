//! The `diffc` command line: one module per command; `main.rs` only hands over to [`main`].
mod bench;
mod decode;
mod encode;
pub(crate) mod eval;
mod experiment;
mod info;
mod truncate;

use crate::device::DeviceKind;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "diffc",
    version,
    about = "Diffusion-based realism image codec (DiffC, HFD)"
)]
struct Cli {
    /// Where networks run (shared randomness never depends on it).
    #[arg(long, global = true, value_enum, default_value = "cpu")]
    device: DeviceKind,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compress an image (PNG/JPEG, or - for stdin) to a .dfc file.
    Encode(encode::Args),
    /// Decompress a .dfc file to PNG.
    Decode(decode::Args),
    /// Show what a .dfc file holds (a DiffC file: where it can be cut).
    Info(info::Args),
    /// Cut a DiffC file to a lower rate without the model (a prefix of its trajectory).
    Truncate(truncate::Args),
    /// Realism–distortion evaluation of codecs on a folder of images (and `eval merge`).
    Eval(eval::EvalArgs),
    /// Research experiments measured with the real codec.
    #[command(subcommand)]
    Experiment(experiment::Cmd),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::Cmd),
}

/// Parses arguments, runs the command, prints errors as one clear message, exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // SIGINT/SIGTERM remove this run's temporary files before the process ends
    crate::interrupt::install();
    let res = match cli.cmd {
        Command::Encode(a) => encode::run(a, cli.device),
        Command::Decode(a) => decode::run(a, cli.device),
        Command::Info(a) => info::run(a, cli.device),
        Command::Truncate(a) => truncate::run(a),
        Command::Eval(a) => eval::run(a, cli.device),
        Command::Experiment(c) => experiment::run(c, cli.device),
        Command::Bench(c) => bench::run(c, cli.device),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a whole input file, or stdin for `-`.
fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading stdin")?;
        Ok(b)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}
