//! Exact denoisers for Gaussian data X ~ N(m, Σ), Σ diagonal in a fixed orthonormal basis.
//!
//! For a coefficient with variance v: `E[x | z] = m + α v / (α² v + σ²) · (z − α m)`.
//! - [`DiagonalGaussian`]: the pixel basis (tests and the Gaussian experiment).
//! - [`SpectrumGaussian`]: an orthonormal colour transform and a 2-D orthonormal DCT with a
//!   per-channel power spectrum `A_c / (f² + f0²)^(γ_c/2)` fitted to photos: a
//!   training-free Wiener-filter prior that works at any image size.
use super::Denoiser;
use crate::image_io::Shape;
use anyhow::{Result, bail};
use rayon::prelude::*;
use rustdct::DctPlanner;
use serde::{Deserialize, Serialize};

/// Wiener gain α v / (α² v + σ²) of a coefficient with variance v.
#[inline]
fn gain(alpha: f64, sigma2: f64, v: f64) -> f64 {
    alpha * v / (alpha * alpha * v + sigma2)
}

/// Gaussian with independent pixels: mean and variance per dimension (tiled over the image
/// when it is a whole number of copies of `mean.len()`).
#[derive(Clone, Debug)]
pub struct DiagonalGaussian {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    /// Report the posterior variance, so DiffC uses the exact reverse step as its proposal
    /// (a different model for files: it changes the fingerprint).
    pub exact_proposal: bool,
}

impl DiagonalGaussian {
    pub fn new(mean: Vec<f64>, var: Vec<f64>) -> Self {
        assert_eq!(mean.len(), var.len());
        DiagonalGaussian {
            mean,
            var,
            exact_proposal: false,
        }
    }
    pub fn with_exact_proposal(self) -> Self {
        DiagonalGaussian {
            exact_proposal: true,
            ..self
        }
    }
    fn check(&self, n: usize, shape: Shape) -> Result<()> {
        let d = self.mean.len();
        if n != shape.len() || !n.is_multiple_of(d) {
            bail!("diagonal Gaussian of {d} dims cannot denoise a {shape:?} latent");
        }
        Ok(())
    }
}

impl Denoiser for DiagonalGaussian {
    fn name(&self) -> &str {
        "gauss-diagonal"
    }
    fn fingerprint(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for (m, v) in self.mean.iter().zip(&self.var) {
            h.update(&m.to_le_bytes());
            h.update(&v.to_le_bytes());
        }
        if self.exact_proposal {
            h.update(b"exact-proposal");
        }
        h.finalize()
    }
    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        self.check(z.len(), shape)?;
        let d = self.mean.len();
        let (a, s) = crate::diffusion::alpha_sigma(logsnr);
        Ok(z.iter()
            .enumerate()
            .map(|(i, &z)| {
                let (m, v) = (self.mean[i % d], self.var[i % d]);
                (m + gain(a, s * s, v) * (z as f64 - a * m)) as f32
            })
            .collect())
    }
    /// `v σ² / (α² v + σ²)` per pixel.
    fn posterior_var(&self, z: &[f32], shape: Shape, logsnr: f64) -> Option<Result<Vec<f32>>> {
        if !self.exact_proposal {
            return None;
        }
        Some(self.check(z.len(), shape).map(|_| {
            let (a, s) = crate::diffusion::alpha_sigma(logsnr);
            let d = self.var.len();
            (0..z.len())
                .map(|i| {
                    let v = self.var[i % d];
                    (v * s * s / (a * a * v + s * s)) as f32
                })
                .collect()
        }))
    }
}

/// Parameters of the spectrum model (stored as JSON in `checkpoints/`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpectrumParams {
    /// Rows: orthonormal colour transform applied to (x − mean).
    pub color: [[f64; 3]; 3],
    /// Per-channel mean in [−1, 1] units (RGB).
    pub mean: [f64; 3],
    /// Per decorrelated channel: amplitude A, exponent γ, knee f0 (cycles/pixel).
    pub amp: [f64; 3],
    pub gamma: [f64; 3],
    pub f0: [f64; 3],
    /// Variance floor per coefficient (sensor noise, quantisation).
    pub floor: f64,
}

impl SpectrumParams {
    /// Variance of a DCT coefficient at (ky, kx) of an h×w channel.
    pub fn variance(&self, c: usize, ky: usize, kx: usize, h: usize, w: usize) -> f64 {
        let fy = ky as f64 / (2.0 * h as f64);
        let fx = kx as f64 / (2.0 * w as f64);
        let f2 = fy * fy + fx * fx + self.f0[c] * self.f0[c];
        self.amp[c] * libm::pow(f2, -0.5 * self.gamma[c]) + self.floor
    }
}

/// The `gauss-spectrum` model.
pub struct SpectrumGaussian {
    pub params: SpectrumParams,
    name: String,
    fingerprint: u32,
}

impl SpectrumGaussian {
    pub fn new(name: &str, params: SpectrumParams) -> Self {
        let fingerprint = crc32fast::hash(serde_json::to_string(&params).unwrap().as_bytes());
        SpectrumGaussian {
            params,
            name: name.to_string(),
            fingerprint,
        }
    }
}

/// Orthonormal 2-D DCT-II (forward) and its inverse on an h×w plane, row-major, in f64.
pub fn dct2d(plane: &mut [f64], h: usize, w: usize, inverse: bool) {
    let mut planner = DctPlanner::new();
    let pass = |data: &mut [f64], n: usize, count: usize, planner: &mut DctPlanner<f64>| {
        let c0 = (1.0 / n as f64).sqrt();
        let ck = (2.0 / n as f64).sqrt();
        if inverse {
            let dct = planner.plan_dct3(n);
            data.par_chunks_mut(n).take(count).for_each(|row| {
                row[0] *= 2.0 * c0;
                for v in &mut row[1..] {
                    *v *= ck;
                }
                dct.process_dct3(row);
            });
        } else {
            let dct = planner.plan_dct2(n);
            data.par_chunks_mut(n).take(count).for_each(|row| {
                dct.process_dct2(row);
                row[0] *= c0;
                for v in &mut row[1..] {
                    *v *= ck;
                }
            });
        }
    };
    pass(plane, w, h, &mut planner);
    let mut t = vec![0.0; h * w];
    transpose::transpose(plane, &mut t, w, h);
    pass(&mut t, h, w, &mut planner);
    transpose::transpose(&t, plane, h, w);
}

impl Denoiser for SpectrumGaussian {
    fn name(&self) -> &str {
        &self.name
    }
    fn fingerprint(&self) -> u32 {
        self.fingerprint
    }
    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        let Shape { c, h, w } = shape;
        if c != 3 || z.len() != shape.len() {
            bail!("gauss-spectrum models 3-channel images, got {shape:?}");
        }
        let p = &self.params;
        let (a, s) = crate::diffusion::alpha_sigma(logsnr);
        let n = h * w;
        // decorrelated channels of z − α m
        let mut planes = vec![vec![0.0f64; n]; 3];
        for (o, plane) in planes.iter_mut().enumerate() {
            for i in 0..n {
                plane[i] = (0..3)
                    .map(|k| p.color[o][k] * (z[k * n + i] as f64 - a * p.mean[k]))
                    .sum();
            }
        }
        planes.par_iter_mut().enumerate().for_each(|(ch, plane)| {
            dct2d(plane, h, w, false);
            for ky in 0..h {
                for kx in 0..w {
                    plane[ky * w + kx] *= gain(a, s * s, p.variance(ch, ky, kx, h, w));
                }
            }
            dct2d(plane, h, w, true);
        });
        let mut out = vec![0f32; 3 * n];
        for k in 0..3 {
            for i in 0..n {
                let v: f64 = (0..3).map(|o| p.color[o][k] * planes[o][i]).sum();
                out[k * n + i] = (v + p.mean[k]) as f32;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_is_orthonormal_and_inverts() {
        let (h, w) = (5, 7);
        let x: Vec<f64> = (0..h * w)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let mut y = x.clone();
        dct2d(&mut y, h, w, false);
        let e0: f64 = x.iter().map(|v| v * v).sum();
        let e1: f64 = y.iter().map(|v| v * v).sum();
        assert!((e0 - e1).abs() < 1e-9 * e0, "{e0} {e1}");
        dct2d(&mut y, h, w, true);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-10);
        }
    }

    #[test]
    fn diagonal_gaussian_limits() {
        let g = DiagonalGaussian::new(vec![0.2, -0.1], vec![0.5, 0.01]);
        let shape = Shape::new(1, 1, 2);
        // very noisy: predicts the mean; very clean: predicts z/α
        let x = g.predict_x(&[3.0, -3.0], shape, -30.0).unwrap();
        assert!((x[0] - 0.2).abs() < 1e-4 && (x[1] + 0.1).abs() < 1e-4);
        let x = g.predict_x(&[0.7, 0.3], shape, 30.0).unwrap();
        assert!((x[0] - 0.7).abs() < 1e-4 && (x[1] - 0.3).abs() < 1e-4);
    }
}
