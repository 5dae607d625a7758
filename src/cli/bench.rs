//! `diffc bench`.
use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Reverse-channel-coding throughput: reference vs fast PFR scorer.
    Rcc {
        #[arg(long)]
        json: bool,
        /// Dimensions per chunk.
        #[arg(long, default_value_t = 64)]
        chunk_dims: usize,
        /// log2 of the candidate count.
        #[arg(long, default_value_t = 12)]
        log2k: u32,
        #[arg(long, default_value_t = 8)]
        chunks: usize,
    },
}

pub fn run(c: Cmd, device: crate::device::DeviceKind) -> Result<()> {
    // the RCC bench scores candidates on the CPU threads (no network); a device the build
    // lacks is still an error rather than silently ignored
    device.open()?;
    match c {
        Cmd::Rcc {
            json,
            chunk_dims,
            log2k,
            chunks,
        } => {
            let r = crate::experiment::rcc_bench::run(chunk_dims, log2k, chunks);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for b in &r.results {
                    println!(
                        "{:>10}: {:.3e} candidate·dims/s ({:.2} s)",
                        b.scorer, b.candidate_dims_per_second, b.seconds
                    );
                }
                println!(
                    "speedup {:.2}× on {} threads; identical choices: {}",
                    r.speedup, r.threads, r.identical_choices
                );
            }
            Ok(())
        }
    }
}
