//! `diffc bench`.
use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Reverse-channel-coding throughput: the raw ChaCha8 stream, the candidate generator, and
    /// the reference and fast PFR scorers per chunk size, on 1 thread and on every thread.
    Rcc {
        #[arg(long)]
        json: bool,
        /// Dimensions per chunk (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "64,1024,16384")]
        chunk_dims: Vec<usize>,
        /// log2 of the candidate·dims each scorer scores per chunk size.
        #[arg(long, default_value_t = 26)]
        log2_work: u32,
    },
    /// One U-Net forward pass (the model's convolution FLOPs per second) beside candle
    /// matmuls of the shapes its convolutions reduce to, in one run.
    Unet {
        /// Model (a blend card's base U-Net is timed).
        #[arg(long, default_value = crate::denoiser::DEFAULT_MODEL)]
        model: String,
        #[arg(long, default_value_t = 256)]
        height: usize,
        #[arg(long, default_value_t = 256)]
        width: usize,
        /// Timed forwards (after one warm-up).
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
}

pub fn run(c: Cmd, device: crate::device::DeviceKind) -> Result<()> {
    // the RCC bench scores candidates on the CPU threads (no network); a device the build
    // lacks is still an error rather than silently ignored
    let dev = device.open()?;
    match c {
        Cmd::Unet {
            model,
            height,
            width,
            reps,
        } => {
            anyhow::ensure!(reps >= 1, "--reps must be at least 1");
            let r = crate::experiment::unet_bench::run(&model, height, width, reps.max(1), &dev)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Cmd::Rcc {
            json,
            chunk_dims,
            log2_work,
        } => {
            if chunk_dims.is_empty() || chunk_dims.iter().any(|&d| d == 0 || d > 1 << 20) {
                anyhow::bail!("--chunk-dims: each in 1..=1048576");
            }
            if !(10..=36).contains(&log2_work) {
                anyhow::bail!("--log2-work must be in 10..=36, got {log2_work}");
            }
            let r = crate::experiment::rcc_bench::run(&chunk_dims, 1 << log2_work)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}; kernel {}; load average {:?} before, {:?} after",
                    r.cpu, r.kernel, r.load_average_before, r.load_average_after
                );
                for t in &r.runs {
                    println!(
                        "{} thread(s): ChaCha8 {:.3e} B/s, candidate words {:.3e}/s; normals {:.3e}/s plain, {:.3e}/s fused",
                        t.threads,
                        t.chacha8_bytes_per_second,
                        t.candidate_words_per_second,
                        t.normals_per_second_plain,
                        t.normals_per_second_fused
                    );
                    for b in &t.scorers {
                        println!(
                            "  {:>9} {:>6} dims: {:.3e} candidate·dims/s ({:.2} s), {:.3e} per CPU second",
                            b.scorer,
                            b.chunk_dims,
                            b.candidate_dims_per_second,
                            b.seconds,
                            b.candidate_dims_per_cpu_second
                        );
                    }
                }
                println!("identical choices: {}", r.identical_choices);
            }
            Ok(())
        }
    }
}
