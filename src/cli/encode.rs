//! `diffc encode`.
use crate::channel::ChannelKind;
use crate::codec::diffc::{DiffC, DiffcParams};
use crate::codec::hfd::Hfd;
use crate::codec::hfd_mse::{HfdMse, Quant};
use crate::codec::{Codec, RateTarget};
use crate::device::DeviceKind;
use crate::image_io::Image;
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
    /// Which codec writes the file.
    #[arg(long, value_enum, default_value = "diffc")]
    pub codec: CodecChoice,
    /// Model: DiffC's diffusion model (default photo-unet-s-wiener-bands; see `diffc info --models`),
    /// or HFD's MSE-codec checkpoint (default hfd-mse).
    #[arg(long)]
    pub model: Option<String>,
    /// HFD: the conditional diffusion refiner (default hfd-refiner).
    #[arg(long)]
    pub refiner: Option<String>,
    /// HFD: quantisation of the latent (rounding or shared-seed dither).
    #[arg(long, value_enum, default_value = "round")]
    pub quant: Quant,
    /// Seed of all shared randomness (stored in the file).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Channel for the communicated steps.
    #[arg(long, value_enum, default_value = "mixed")]
    pub channel: ChannelKind,
    /// Encoder trajectory steps (default 24).
    #[arg(long)]
    pub steps: Option<usize>,
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
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The codecs `encode --codec` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecChoice {
    Diffc,
    /// HFD: MSE transform codec + conditional diffusion decoder.
    Hfd,
    /// HFD's MSE transform codec alone.
    HfdMse,
}

fn encode_hfd(a: &Args, img: &Image, target: RateTarget, dev: &candle_core::Device) -> Result<()> {
    let mut mse = HfdMse::load(
        a.model
            .as_deref()
            .unwrap_or(crate::codec::hfd_mse::DEFAULT_MSE_MODEL),
        dev,
    )?;
    mse.seed = a.seed;
    mse.quant = a.quant;
    let bytes = if a.codec == CodecChoice::Hfd {
        let refiner = crate::denoiser::checkpoint_path(
            a.refiner
                .as_deref()
                .unwrap_or(crate::codec::hfd::DEFAULT_REFINER),
        )?;
        let refiner = crate::denoiser::unet::UNetDenoiser::load(&refiner, dev)?;
        Hfd::new(mse, std::sync::Arc::new(refiner))?.encode(img, target)?
    } else {
        mse.encode(img, target)?
    };
    write_atomic(&a.output, &bytes)?;
    if !a.quiet {
        let px = img.shape.pixels() as f64;
        eprintln!(
            "{}×{}: {} bytes = {:.4} bpp",
            img.shape.w,
            img.shape.h,
            bytes.len(),
            bytes.len() as f64 * 8.0 / px
        );
    }
    Ok(())
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
    let img = load(&a.input)?;
    let dev = device.open()?;
    if a.codec != CodecChoice::Diffc {
        return encode_hfd(&a, &img, target, &dev);
    }
    let model = crate::denoiser::load(
        a.model.as_deref().unwrap_or(crate::denoiser::DEFAULT_MODEL),
        &dev,
    )?;
    let mut codec = DiffC::new(model);
    let mut p = DiffcParams {
        channel: a.channel,
        ..DiffcParams::for_shape(img.shape)
    };
    if let Some(s) = a.steps {
        if !(1..=4096).contains(&s) {
            bail!("--steps must be in 1..=4096");
        }
        p.steps = s;
    }
    if let Some(c) = a.chunk_kl {
        if !(c > 0.0 && c <= 20.0) {
            bail!("--chunk-kl must be in (0, 20]");
        }
        p.pfr.chunk_kl = c;
    }
    if let Some(pad) = a.padding {
        if pad > 8 {
            bail!("--padding must be ≤ 8");
        }
        p.pfr.padding = pad;
    }
    codec.params = p;
    codec.shape_defaults = false;
    codec.seed = a.seed;
    codec.progress = !a.quiet;
    codec.diagnose = a.diagnose_pfr;
    let recs = codec.encode_trace(&img, target, false)?;
    if a.diagnose_pfr {
        let st = codec.pfr_stats.lock().unwrap();
        eprintln!(
            "PFR: {} chunks, {} truncated ({:.2} %)",
            st.chunks,
            st.truncated,
            100.0 * st.truncated as f64 / st.chunks.max(1) as f64
        );
    }
    let last = recs.last().expect("at least the empty record");
    let bytes = &last.file;
    write_atomic(&a.output, bytes)?;
    if !a.quiet {
        let px = img.shape.pixels() as f64;
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
