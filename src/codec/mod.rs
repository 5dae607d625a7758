//! Codecs share one encode/decode surface; they orchestrate and hold no maths of their own.
//! [`registry`] is the one place that turns a codec spec or a file's codec id into a codec.
pub mod diffc;
pub mod hfd;
pub mod hfd_mse;
pub mod registry;
pub mod space;

use crate::error::Result;
use crate::image_io::Image;

/// How the encoder decides where to stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateTarget {
    /// Total file size (header included) at most this many bits per pixel.
    Bpp(f64),
    /// Stop once the trajectory reaches this log-SNR.
    LogSnr(f64),
    /// Stop after this many communicated steps.
    Step(usize),
}

/// Which reconstruction the decoder runs from the communicated latent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DecoderKind {
    /// DiffC-A: ancestral DDPM SDE sampling.
    Sde,
    /// DiffC-F: probability-flow ODE.
    #[default]
    Ode,
}

/// The most denoising steps a decoder may be asked for (`--steps`, `diffc-a:N`): beyond any
/// use, and a bound on decode time.
pub const MAX_DECODE_STEPS: usize = 10_000;

/// Options common to every decoder.
#[derive(Clone, Debug, Default)]
pub struct DecodeOptions {
    pub decoder: DecoderKind,
    /// Number of denoising steps from the stopping point to t = 0 (codec default if None).
    pub steps: Option<usize>,
    /// Show progress bars on stderr.
    pub progress: bool,
}

/// The surface every codec implements: image in, real bitstream out, and back.
pub trait Codec: Send + Sync {
    /// Codec name as used on the CLI and in the harness (e.g. `diffc`).
    fn name(&self) -> &str;
    fn encode(&self, img: &Image, target: RateTarget) -> Result<Vec<u8>>;
    /// Encodes for several `--bpp` targets: per target, the file [`Codec::encode`] writes for it
    /// and the seconds that encode takes. Codecs whose encodes share work override it.
    fn encode_targets(&self, img: &Image, targets: &[f64]) -> Result<Vec<(Vec<u8>, f64)>> {
        targets
            .iter()
            .map(|&t| {
                let t0 = std::time::Instant::now();
                let bytes = self.encode(img, RateTarget::Bpp(t))?;
                Ok((bytes, t0.elapsed().as_secs_f64()))
            })
            .collect()
    }
    fn decode(&self, bytes: &[u8], opts: &DecodeOptions) -> Result<Image>;
}
