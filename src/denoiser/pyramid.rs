//! A low-resolution model lifted to full resolution: x̂ from the coarse content of z_t alone.
//!
//! At low log-SNR only coarse structure is recoverable, and a photo's coarse structure is what a
//! model of whole, downsampled photos knows. Downsampling z_t = α x + σ ε by f (a box average of
//! f×f pixels, or a DCT crop when a side is not a multiple of f) gives α x↓ + (σ/f) ε′ with white
//! ε′: the same image at log-SNR λ + ln f², which the low-resolution model denoises after
//! rescaling to the variance-preserving form. Its estimate of x↓ is lifted back by the exact
//! inverse of the downsampling on the low DCT coefficients (higher ones are zero), so the result
//! is meant as the coarse-band expert of a [`super::blend::Blend`].
use super::Denoiser;
use super::gaussian::dct2d;
use crate::diffusion::alpha_sigma;
use crate::image_io::Shape;
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a pyramid card (`checkpoints/NAME.json` with `"kind": "pyramid"`) holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PyramidParams {
    /// The low-resolution model's name.
    pub low: String,
    /// Downsampling factor per side (2..=16).
    pub factor: usize,
}

pub struct Pyramid {
    name: String,
    low: Arc<dyn Denoiser>,
    factor: usize,
    fingerprint: u32,
}

impl Pyramid {
    pub fn new(name: &str, low: Arc<dyn Denoiser>, factor: usize) -> Result<Self> {
        ensure!(
            (2..=16).contains(&factor),
            "pyramid {name}: factor must be in 2..=16, got {factor}"
        );
        let mut h = crc32fast::Hasher::new();
        h.update(b"pyramid");
        h.update(&low.fingerprint().to_le_bytes());
        h.update(&(factor as u64).to_le_bytes());
        Ok(Pyramid {
            name: name.to_string(),
            low,
            factor,
            fingerprint: h.finalize(),
        })
    }
}

/// How one side of length `n` maps to the low resolution.
#[derive(Clone, Copy)]
struct Side {
    n: usize,
    m: usize,
    /// Box average of `factor` samples (n = m·factor), else a DCT crop.
    boxed: bool,
    factor: usize,
}

impl Side {
    fn new(n: usize, factor: usize) -> Self {
        Side {
            n,
            m: n.div_ceil(factor),
            boxed: n.is_multiple_of(factor),
            factor,
        }
    }

    /// Low DCT coefficient k (orthonormal, length m) per full coefficient k (length n), for the
    /// downsampling in use: √(m/n) for a crop; for a box average also the filter's response
    /// mean_j cos(π (j − (f−1)/2) k / n) on the basis function.
    fn gain(&self, k: usize) -> f64 {
        let r = (self.m as f64 / self.n as f64).sqrt();
        if !self.boxed {
            return r;
        }
        let f = self.factor as f64;
        let g: f64 = (0..self.factor)
            .map(|j| {
                libm::cos(
                    std::f64::consts::PI * (j as f64 - (f - 1.0) / 2.0) * k as f64 / self.n as f64,
                )
            })
            .sum::<f64>()
            / f;
        r * g
    }
}

/// Downsamples one h×w plane to the low grid.
fn down(p: &[f32], ys: Side, xs: Side) -> Vec<f64> {
    let (h, w, mh, mw) = (ys.n, xs.n, ys.m, xs.m);
    if ys.boxed && xs.boxed {
        let f = ys.factor;
        let mut out = vec![0f64; mh * mw];
        for (i, o) in out.iter_mut().enumerate() {
            let (y, x) = (i / mw * f, i % mw * f);
            let mut s = 0.0;
            for dy in 0..f {
                for dx in 0..f {
                    s += p[(y + dy) * w + x + dx] as f64;
                }
            }
            *o = s / (f * f) as f64;
        }
        return out;
    }
    let mut d: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    dct2d(&mut d, h, w, false);
    let (ry, rx) = (ys.gain(0), xs.gain(0));
    let mut out = vec![0f64; mh * mw];
    for ky in 0..mh {
        for kx in 0..mw {
            out[ky * mw + kx] = d[ky * w + kx] * ry * rx;
        }
    }
    dct2d(&mut out, mh, mw, true);
    out
}

/// Lifts one mh×mw plane to h×w: the inverse of [`down`] on the low coefficients.
fn up(p: &[f32], ys: Side, xs: Side) -> Vec<f32> {
    let (h, w, mh, mw) = (ys.n, xs.n, ys.m, xs.m);
    let mut d: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    dct2d(&mut d, mh, mw, false);
    let gy: Vec<f64> = (0..mh).map(|k| ys.gain(k)).collect();
    let gx: Vec<f64> = (0..mw).map(|k| xs.gain(k)).collect();
    let mut full = vec![0f64; h * w];
    for ky in 0..mh {
        for kx in 0..mw {
            full[ky * w + kx] = d[ky * mw + kx] / (gy[ky] * gx[kx]);
        }
    }
    dct2d(&mut full, h, w, true);
    full.iter().map(|&v| v as f32).collect()
}

impl Denoiser for Pyramid {
    fn name(&self) -> &str {
        &self.name
    }
    fn fingerprint(&self) -> u32 {
        self.fingerprint
    }
    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        ensure!(
            z.len() == shape.len(),
            "pyramid: z does not match {shape:?}"
        );
        let (ys, xs) = (
            Side::new(shape.h, self.factor),
            Side::new(shape.w, self.factor),
        );
        let low = Shape::new(shape.c, ys.m, xs.m);
        // the low view's noise has variance (m_h m_w)/(h w) of the original's
        let lam = logsnr + ((shape.h * shape.w) as f64 / (ys.m * xs.m) as f64).ln();
        let (a, _) = alpha_sigma(logsnr);
        let (a_low, _) = alpha_sigma(lam);
        let scale = a_low / a;
        let plane = shape.h * shape.w;
        let zl: Vec<f32> = z
            .chunks_exact(plane)
            .flat_map(|p| down(p, ys, xs))
            .map(|v| (v * scale) as f32)
            .collect();
        let xl = self.low.predict_x(&zl, low, lam)?;
        ensure!(
            xl.len() == low.len(),
            "pyramid: the low model returned {} values for {low:?}",
            xl.len()
        );
        Ok(xl
            .chunks_exact(low.h * low.w)
            .flat_map(|p| up(p, ys, xs))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lifting a low-resolution plane and downsampling it again returns it, for box averages
    /// (sides divisible by f) and DCT crops alike.
    #[test]
    fn up_inverts_down_on_the_low_band() {
        for (h, w, f) in [(16usize, 24usize, 4usize), (18, 10, 4), (12, 12, 2)] {
            let (ys, xs) = (Side::new(h, f), Side::new(w, f));
            // a random low-resolution plane, lifted, then downsampled again
            let low: Vec<f32> = (0..ys.m * xs.m)
                .map(|i| ((i * 7919 % 101) as f32 / 50.0) - 1.0)
                .collect();
            let full = up(&low, ys, xs);
            let back = down(&full, ys, xs);
            // `full` has no coefficient ≥ m, so neither downsampling folds anything back
            for (a, b) in low.iter().zip(&back) {
                assert!((*a as f64 - b).abs() < 1e-4, "{h}×{w}/{f}: {a} vs {b}");
            }
        }
    }

    /// White noise keeps unit variance per coefficient: a box average of f² samples has
    /// variance 1/f², what the log-SNR shift ln f² assumes.
    #[test]
    fn downsampled_noise_has_the_assumed_variance() {
        let (h, w, f) = (64usize, 64usize, 4usize);
        let mut e = vec![0f32; h * w];
        crate::rng::Stream::new(3, crate::rng::Purpose::Experiment, 0, 0, 0).fill_normal(&mut e);
        let d = down(&e, Side::new(h, f), Side::new(w, f));
        let var = d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64;
        assert!(
            (var * 16.0 - 1.0).abs() < 0.2,
            "variance ×16 = {}",
            var * 16.0
        );
    }
}
