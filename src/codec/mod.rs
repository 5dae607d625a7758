//! Codecs share one encode/decode surface; they orchestrate and hold no maths of their own.
//! [`registry`] is the one place that turns a codec spec or a file's codec id into a codec.
pub mod diffc;
pub mod fuzz;
pub mod hfd;
pub mod hfd_mse;
pub mod info;
pub mod registry;
pub mod space;
pub mod truncate;

use crate::error::{FormatError, ParamError, Result};
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

/// The most pixels a decoder accepts unless told otherwise (`--max-pixels`,
/// [`DecodeOptions::max_pixels`]): 8 Mpixel (2^23), so a 2048×2048 image and a 3840×2160 frame
/// decode, while a few bytes that declare 8000×8000 (legal in the format, up to 64 Mpixel)
/// are refused before the decoder allocates gigabytes and runs for hours.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 23;

/// A DiffC file may ask its decoder to rebuild at most this many trajectory steps per pixel
/// of the pixel limit: pixels × steps ≤ max_pixels × 64. An image at the limit takes up to 64
/// steps (the format's default is 24), a 256×256 one any legal count (4096).
pub const STEPS_AT_PIXEL_LIMIT: u64 = 64;

/// Refuses an image of `width`×`height` above `max_pixels` (before any allocation for it).
pub fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), FormatError> {
    let n = width as u64 * height as u64;
    if n > max_pixels {
        return Err(FormatError::OverLimit {
            what: format!("image size {width}×{height} ="),
            value: n,
            limit: max_pixels,
            unit: "pixels",
        });
    }
    Ok(())
}

/// Refuses a trajectory of `steps` steps over `pixels` pixels beyond
/// `max_pixels × STEPS_AT_PIXEL_LIMIT` pixel-steps (one model call over the image each).
pub fn check_trajectory(pixels: u64, steps: u64, max_pixels: u64) -> Result<(), FormatError> {
    let limit = max_pixels.saturating_mul(STEPS_AT_PIXEL_LIMIT);
    let work = pixels.saturating_mul(steps);
    if work > limit {
        return Err(FormatError::OverLimit {
            what: format!("a trajectory of {steps} steps over {pixels} pixels ="),
            value: work,
            limit,
            unit: "pixel-steps",
        });
    }
    Ok(())
}

/// Options common to every decoder.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    pub decoder: DecoderKind,
    /// Number of denoising steps from the stopping point to t = 0 (codec default if None).
    pub steps: Option<usize>,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Where the output lies between the posterior mean (0) and the decoder's sample (1);
    /// `None` means 1 (today's output). See [`realism_blend`].
    pub realism: Option<f64>,
    /// The most pixels a file may declare ([`DEFAULT_MAX_PIXELS`] by default); a larger image,
    /// or a DiffC trajectory beyond [`check_trajectory`], is a [`FormatError::OverLimit`]
    /// before any large allocation.
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            decoder: DecoderKind::default(),
            steps: None,
            progress: false,
            realism: None,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
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
    // the ends exactly (no rounding through f64), so a sweep over R reproduces R = 0 and 1
    if r == 0.0 {
        return xhat.to_vec();
    }
    if r == 1.0 {
        return x.to_vec();
    }
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
    /// Decodes at each realism in `rs`: output `i` is what [`Codec::decode`] gives with
    /// `opts.realism = Some(rs[i])`, bit for bit. Codecs with a knob override it to decode the
    /// knob's two ends once and blend them per value (the harness's R sweeps).
    fn decode_realisms(
        &self,
        bytes: &[u8],
        opts: &DecodeOptions,
        rs: &[f64],
    ) -> Result<Vec<Image>> {
        rs.iter()
            .map(|&r| {
                let o = DecodeOptions {
                    realism: Some(r),
                    ..opts.clone()
                };
                self.decode(bytes, &o)
            })
            .collect()
    }
}

/// [`Codec::decode`] for codecs whose [`Codec::decode_realisms`] does the work: a sweep of the
/// one value `opts.realism`, so a lone decode and a sweep's output agree by construction.
pub fn decode_one_realism<C: Codec + ?Sized>(
    c: &C,
    bytes: &[u8],
    opts: &DecodeOptions,
) -> Result<Image> {
    let mut v = c.decode_realisms(bytes, opts, &[opts.realism()?])?;
    Ok(v.pop().expect("one realism"))
}

/// The knob's two ends, each computed only when some R in `rs` needs it (x̂ unless every
/// R is 1, the sample unless every R is 0), blended per R with [`realism_blend`].
pub fn blend_ends(
    rs: &[f64],
    xhat: impl FnOnce() -> Result<Vec<f32>>,
    sample: impl FnOnce() -> Result<Vec<f32>>,
) -> Result<Vec<Vec<f32>>> {
    for &r in rs {
        check_realism(r)?;
    }
    let x = if rs.iter().any(|&r| r != 0.0) {
        sample()?
    } else {
        vec![]
    };
    let m = if rs.iter().any(|&r| r != 1.0) {
        xhat()?
    } else {
        vec![]
    };
    Ok(rs.iter().map(|&r| realism_blend(&m, &x, r)).collect())
}
