//! `diffc decode`.
use crate::codec::diffc::DiffC;
use crate::codec::hfd::Hfd;
use crate::codec::hfd_mse::{DEFAULT_MSE_MODEL, HfdMse};
use crate::codec::{Codec, DecodeOptions, DecoderKind, MAX_DECODE_STEPS};
use crate::container::{CodecId, File};
use crate::device::DeviceKind;
use crate::image_io::save_png;
use crate::sampler::OdeSolver;
use anyhow::{Result, bail};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Input .dfc file (`-` reads stdin).
    pub input: PathBuf,
    /// Output PNG (`-` writes stdout).
    #[arg(short, long)]
    pub output: PathBuf,
    /// sde = DiffC-A (ancestral sampling), ode = DiffC-F (probability flow).
    #[arg(long, value_enum, default_value = "ode")]
    pub decoder: DecoderKind,
    /// Denoising steps from the communicated latent to the image (DiffC: 24 for ode, 64 for
    /// sde; HFD: the refiner's default).
    #[arg(long)]
    pub steps: Option<usize>,
    /// ODE solver.
    #[arg(long, value_enum, default_value = "dpm-pp2m")]
    pub solver: OdeSolver,
    /// Model (default: the known model whose fingerprint the file names; HFD: hfd-mse).
    #[arg(long)]
    pub model: Option<String>,
    /// HFD: the conditional diffusion refiner (default hfd-refiner).
    #[arg(long)]
    pub refiner: Option<String>,
    /// HFD: log-SNR where refinement starts from α·X̂_MSE + σ·ε (lower: more generated detail,
    /// further from X̂_MSE; default: matched to the MSE codec's error at the file's rate).
    #[arg(long, allow_negative_numbers = true)]
    pub start_logsnr: Option<f64>,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: Args, device: DeviceKind) -> Result<()> {
    let bytes = super::read_input(&a.input)?;
    let f = File::from_bytes(&bytes)?;
    let dev = device.open()?;
    if let Some(s) = a.steps {
        if !(1..=MAX_DECODE_STEPS).contains(&s) {
            bail!("--steps must be in 1..={MAX_DECODE_STEPS}");
        }
    }
    let opts = DecodeOptions {
        decoder: a.decoder,
        steps: a.steps,
        progress: !a.quiet,
    };
    match f.codec {
        CodecId::DiffC => {}
        CodecId::HfdMse => {
            let c = HfdMse::load(a.model.as_deref().unwrap_or(DEFAULT_MSE_MODEL), &dev)?;
            return save_png(&c.decode(&bytes, &opts)?, &a.output);
        }
        CodecId::Hfd => {
            let mut c = Hfd::load(a.model.as_deref(), a.refiner.as_deref(), &dev)?;
            c.ode_solver = a.solver;
            if let Some(l) = a.start_logsnr {
                if !l.is_finite() {
                    bail!("--start-logsnr must be a number");
                }
                c.start_logsnr = Some(l);
            }
            return save_png(&c.decode(&bytes, &opts)?, &a.output);
        }
    }
    let model = match &a.model {
        Some(m) => crate::denoiser::load(m, &dev)?,
        None => match crate::denoiser::find_by_fingerprint(f.model_fp, &dev) {
            Some(m) => m,
            None => bail!(
                "no known model has fingerprint {:04x} (the file's); pass --model",
                f.model_fp
            ),
        },
    };
    let mut codec = DiffC::new(model);
    codec.ode_solver = a.solver;
    codec.progress = !a.quiet;
    let img = codec.decode(&bytes, &opts)?;
    save_png(&img, &a.output)
}
