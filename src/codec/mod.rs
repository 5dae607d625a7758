//! Codecs share one encode/decode surface; they orchestrate and hold no maths of their own.
//! [`registry`] is the one place that turns a codec spec or a file's codec id into a codec.
pub mod diffc;
pub mod hfd;
pub mod hfd_mse;
pub mod registry;
pub mod space;
pub mod truncate;

use crate::error::{ParamError, Result};
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
    /// Where the output lies between the posterior mean (0) and the decoder's sample (1);
    /// `None` means 1 (today's output). See [`realism_blend`].
    pub realism: Option<f64>,
}

impl DecodeOptions {
    /// The realism knob R in [0, 1] (1 when unset); anything else is a [`ParamError`].
    pub fn realism(&self) -> Result<f64> {
        check_realism(self.realism.unwrap_or(1.0))
    }
}

/// Checks a realism value: a number in [0, 1] (NaN refused).
pub fn check_realism(r: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(ParamError::new("the realism R", "a number in [0, 1]", r).into())
    }
}

/// The decode-time realism knob: `x̂ + R·(x − x̂)`, the linear interpolation between the
/// minimum-MSE estimate x̂ = E[X | z_t] (R = 0) and the decoder's perfect-realism output x
/// (R = 1), value by value in the model's space (for latent models, before the autoencoder's
/// decoder).
///
/// Why this one: for Gaussian sources, Freirich, Michaeli & Meir (2021, "A theory of the
/// distortion–perception tradeoff in Wasserstein space") show that every estimator on the
/// optimal MSE–perception trade-off is such an interpolation between the MMSE estimator and
/// the least-MSE perfect-perception estimator; DiffC-F's flow output is that estimator for a
/// Gaussian source (the optimal transport map from x̂ to p_X), so DiffC-F's curve is the
/// optimal one. DiffC-A's sample is x̂ + W with W ~ p(x | z_t) − x̂ independent of X given
/// z_t, so `E‖X − X_R‖² = (1 + R²)·mmse` (mmse at R = 0, twice it at R = 1). For DiffC-F on a
/// Gaussian coefficient of variance v with ρ² = α²v/(α²v + σ²):
/// `E(X − X_R)² = v(1 − ρ²) + R²·v(1 − ρ)²`. The Gaussian experiment measures both.
pub fn realism_blend(xhat: &[f32], x: &[f32], r: f64) -> Vec<f32> {
    xhat.iter()
        .zip(x)
        .map(|(&m, &s)| (m as f64 + r * (s as f64 - m as f64)) as f32)
        .collect()
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
