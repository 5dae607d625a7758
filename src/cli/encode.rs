//! `diffc encode`.
use crate::channel::ChannelKind;
use crate::codec::hfd_mse::Quant;
use crate::codec::registry::{self, AnyCodec, CodecSpec, Options};
use crate::codec::{Codec, RateTarget};
use crate::device::DeviceKind;
use crate::image_io::{load, write_atomic};
use anyhow::{Result, bail};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Input image (PNG or JPEG; `-` reads stdin).
    pub input: PathBuf,
    /// Output .dfc file (`-` writes stdout).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Target size of the whole file in bits per pixel (the file never exceeds it).
    #[arg(long)]
    pub bpp: Option<f64>,
    /// Stop instead at `step:N` or `logsnr:X` (HFD: `step:N` is the rate code N).
    #[arg(long, conflicts_with = "bpp")]
    pub stop: Option<String>,
    /// Which codec writes the file: a codec spec (`diffc`, `hfd`, `hfd-mse`,
    /// `hfd-mse-dither`, optionally `@MODEL`; see `diffc info --codecs`).
    #[arg(long, default_value = "diffc")]
    pub codec: String,
    /// Model: DiffC's diffusion model (default photo-unet-m2-wiener-bands; see `diffc info --models`),
    /// or HFD's MSE-codec checkpoint (default hfd-mse).
    #[arg(long)]
    pub model: Option<String>,
    /// HFD: the conditional diffusion refiner (default hfd-refiner).
    #[arg(long)]
    pub refiner: Option<String>,
    /// HFD: quantisation of the latent (rounding or shared-seed dither).
    #[arg(long, value_enum)]
    pub quant: Option<Quant>,
    /// Seed of all shared randomness (stored in the file).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Channel for the communicated steps.
    #[arg(long, value_enum, default_value = "mixed")]
    pub channel: ChannelKind,
    /// Encoder trajectory steps (default 24).
    #[arg(long)]
    pub steps: Option<usize>,
    /// DiffC: write a master file for `diffc truncate`. The trajectory runs on the grid of
    /// every point where a default encode may stop (each of the 24 steps in 8: 192 steps), so a
    /// cut to any lower budget loses nothing against a direct encode there
    /// (eval/results/truncate). Costs 8× the encoder's channel search, and decoding a cut
    /// replays up to 8× as many trajectory steps.
    #[arg(long, conflicts_with = "steps")]
    pub truncatable: bool,
    /// PFR: most KL bits per chunk (default 6; 4 above 256×256 pixels).
    #[arg(long)]
    pub chunk_kl: Option<f64>,
    /// PFR: extra candidate bits per chunk (default 6).
    #[arg(long)]
    pub padding: Option<u32>,
    /// DiffC: also score candidates K..8K of every PFR chunk and report how many chunks
    /// wanted an index beyond the cap K (truncated, hence biased); 8× slower.
    #[arg(long)]
    pub diagnose_pfr: bool,
    /// Stable Diffusion models: float type of the networks (f16/bf16 where the device has them).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: SdDtype,
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SdDtype {
    F32,
    F16,
    Bf16,
}

impl From<SdDtype> for candle_core::DType {
    fn from(d: SdDtype) -> Self {
        match d {
            SdDtype::F32 => candle_core::DType::F32,
            SdDtype::F16 => candle_core::DType::F16,
            SdDtype::Bf16 => candle_core::DType::BF16,
        }
    }
}

pub fn parse_stop(s: &str) -> Result<RateTarget> {
    let (k, v) = s.split_once(':').unwrap_or(("step", s));
    match k {
        "step" => Ok(RateTarget::Step(
            v.parse().map_err(|_| anyhow::anyhow!("bad step '{v}'"))?,
        )),
        "logsnr" | "lambda" => {
            let l: f64 = v
                .parse()
                .map_err(|_| anyhow::anyhow!("bad log-SNR '{v}'"))?;
            if !l.is_finite() {
                bail!("bad log-SNR '{v}'");
            }
            Ok(RateTarget::LogSnr(l))
        }
        _ => bail!("--stop takes step:N or logsnr:X, got '{s}'"),
    }
}

pub fn run(a: Args, device: DeviceKind) -> Result<()> {
    let target = match (&a.bpp, &a.stop) {
        (Some(b), _) => RateTarget::Bpp(*b),
        (None, Some(s)) => parse_stop(s)?,
        (None, None) => bail!("give a rate: --bpp B or --stop step:N|logsnr:X"),
    };
    let mut spec: CodecSpec = a.codec.parse()?;
    if let Some(m) = &a.model {
        if spec.model.as_ref().is_some_and(|s| s != m) {
            bail!("--model {m} contradicts the codec spec `{}`", a.codec);
        }
        spec.model = Some(m.clone());
    }
    if let Some(q) = a.quant {
        spec.quant = q;
    }
    let img = load(&a.input)?;
    let dev = device.open()?;
    let opts = Options {
        seed: a.seed,
        refiner: a.refiner.clone(),
        diagnose_pfr: a.diagnose_pfr,
        sd_dtype: Some(a.dtype.into()),
        progress: !a.quiet,
        ..Options::default()
    };
    let mut built = registry::build(&spec, &opts, &dev)?;
    let px = img.shape.pixels() as f64;
    let AnyCodec::DiffC(codec) = &mut built.codec else {
        if a.truncatable {
            bail!("--truncatable: only DiffC files can be cut (`diffc truncate`)");
        }
        let bytes = built.codec.encode(&img, target)?;
        write_atomic(&a.output, &bytes)?;
        if !a.quiet {
            eprintln!(
                "{}×{}: {} bytes = {:.4} bpp",
                img.shape.w,
                img.shape.h,
                bytes.len(),
                bytes.len() as f64 * 8.0 / px
            );
        }
        return Ok(());
    };
    let latent = codec.space.latent_shape(img.shape)?;
    let base = codec.params_for(latent);
    let steps = match a.truncatable {
        true => Some(base.steps * crate::codec::diffc::FRACTIONS as usize),
        false => a.steps,
    };
    codec.params = registry::diffc_params(base, a.channel, steps, a.chunk_kl, a.padding)?;
    codec.shape_defaults = false;
    let recs = codec.encode_trace(&img, target, false)?;
    if a.diagnose_pfr {
        let st = codec.pfr_stats.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!(
            "PFR: {} chunks, {} truncated ({:.2} %)",
            st.chunks,
            st.truncated,
            100.0 * st.truncated as f64 / st.chunks.max(1) as f64
        );
    }
    if !a.quiet {
        // coded bits per channel: each step's growth of the whole file
        let (mut kl, mut coded) = ([0.0f64; 2], [0.0f64; 2]);
        for w in recs.windows(2) {
            let ch = match w[1].channel {
                Some(ChannelKind::Uq) => 1,
                Some(_) => 0,
                None => continue,
            };
            kl[ch] += w[1].kl_bits;
            coded[ch] += 8.0 * (w[1].file.len() as f64 - w[0].file.len() as f64);
        }
        for (name, i) in [("PFR", 0), ("UQ", 1)] {
            if kl[i] > 0.0 {
                eprintln!(
                    "{name} steps: coded {:.0} bits for Σ step KL {:.1} bits ({:.3}×)",
                    coded[i],
                    kl[i],
                    coded[i] / kl[i]
                );
            }
        }
    }
    let last = recs.last().expect("at least the empty record");
    let bytes = &last.file;
    write_atomic(&a.output, bytes)?;
    if !a.quiet {
        eprintln!(
            "{}×{}: {} bytes = {:.4} bpp, {} steps, z at log-SNR {:.2}",
            img.shape.w,
            img.shape.h,
            bytes.len(),
            bytes.len() as f64 * 8.0 / px,
            last.step,
            last.logsnr
        );
    }
    Ok(())
}
