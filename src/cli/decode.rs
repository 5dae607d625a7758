//! `diffc decode`.
use crate::codec::registry::{self, Options};
use crate::codec::{Codec, DecoderKind};
use crate::container::File;
use crate::device::DeviceKind;
use crate::image_io::save_png;
use crate::sampler::OdeSolver;
use anyhow::Result;
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
    /// Realism R in [0, 1]: 0 the posterior mean x̂(z_t) (least MSE, blurry; HFD: X̂_MSE),
    /// 1 the decoder's sample (default), in between x̂ + R·(sample − x̂).
    #[arg(long, allow_negative_numbers = true)]
    pub realism: Option<f64>,
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
    /// Stable Diffusion models: float type of the networks (f16/bf16 where the device has them).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: super::encode::SdDtype,
    /// Refuse files that declare more pixels than this (default 8388608 = 2^23, e.g.
    /// 2048×2048 or 3840×2160), or a longer DiffC trajectory than 64 steps at that size,
    /// before any large allocation: a few bytes can declare a legal 64-Mpixel image.
    #[arg(long, value_name = "N", default_value_t = crate::codec::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: Args, device: DeviceKind) -> Result<()> {
    let bytes = super::read_input(&a.input)?;
    let f = File::from_bytes(&bytes)?;
    // before the model is loaded, so a decompression bomb costs nothing
    crate::codec::check_pixels(f.width, f.height, a.max_pixels)?;
    if let Some(r) = a.realism {
        crate::codec::check_realism(r)?;
    }
    let mut spec = registry::spec_for_file(f.codec, a.decoder, a.steps, a.model.clone())?;
    spec.realism = a.realism;
    let dev = device.open()?;
    let opts = Options {
        fingerprint: Some(f.model_fp),
        refiner: a.refiner.clone(),
        ode_solver: a.solver,
        start_logsnr: a.start_logsnr,
        sd_dtype: Some(a.dtype.into()),
        progress: !a.quiet,
        ..Options::default()
    };
    let built = registry::build(&spec, &opts, &dev)?;
    let dopts = crate::codec::DecodeOptions {
        max_pixels: a.max_pixels,
        ..built.decode
    };
    let img = built.codec.decode(&bytes, &dopts)?;
    save_png(&img, &a.output)
}
