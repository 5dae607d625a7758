//! A two-expert denoiser: x̂ = x̂_base + W_λ(x̂_prior − x̂_base), where W_λ scales each radial
//! frequency band of the difference (orthonormal DCT per channel) by a weight fitted per
//! log-SNR and band by least squares on training photos. With no bands, W_λ is one scalar.
//!
//! Why: our U-Net learned from 64×64 crops under the variational bound, whose weight e^λ all but
//! ignores low log-SNR; there it denoises a whole photo worse than the spectrum model's Wiener
//! filter, which knows whole-image statistics. The network is better at fine detail and the
//! Wiener filter at coarse structure, so the weight depends on frequency as well as on λ.
use super::Denoiser;
use super::gaussian::dct2d;
use crate::image_io::Shape;
use anyhow::{Result, bail, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a blend card (`checkpoints/NAME.json` with `"kind": "blend"`) holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlendParams {
    /// Model names: the network and the prior blended towards.
    pub base: String,
    pub prior: String,
    /// Increasing log-SNR knots; weights are linear in between and constant beyond the ends.
    pub logsnr: Vec<f64>,
    /// Upper edges, in cycles/pixel, of the radial frequency bands of a DCT coefficient
    /// (ky/2h, kx/2w); the last band runs to Nyquist. Empty: one band.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<f64>,
    /// Per knot, the prior's weight in each band (in [0, 1]).
    pub weight: Vec<Vec<f64>>,
}

impl BlendParams {
    pub fn check(&self) -> Result<()> {
        ensure!(
            !self.logsnr.is_empty() && self.logsnr.len() == self.weight.len(),
            "blend: knots and weights differ in number"
        );
        ensure!(
            self.logsnr.iter().all(|l| l.is_finite())
                && self.logsnr.windows(2).all(|w| w[0] < w[1]),
            "blend: log-SNR knots must increase"
        );
        ensure!(
            self.bands.iter().all(|f| *f > 0.0 && f.is_finite())
                && self.bands.windows(2).all(|w| w[0] < w[1]),
            "blend: band edges must be positive and increase"
        );
        ensure!(
            self.weight.iter().all(|w| w.len() == self.bands.len() + 1),
            "blend: every knot needs one weight per band ({})",
            self.bands.len() + 1
        );
        ensure!(
            self.weight
                .iter()
                .flatten()
                .all(|w| (0.0..=1.0).contains(w)),
            "blend: weights must lie in [0, 1]"
        );
        Ok(())
    }

    /// The prior's weight in each band at log-SNR `l`.
    pub fn weight_at(&self, l: f64) -> Vec<f64> {
        let (ls, ws) = (&self.logsnr, &self.weight);
        if l <= ls[0] {
            return ws[0].clone();
        }
        for i in 1..ls.len() {
            if l <= ls[i] {
                let t = (l - ls[i - 1]) / (ls[i] - ls[i - 1]);
                return ws[i - 1]
                    .iter()
                    .zip(&ws[i])
                    .map(|(a, b)| a + t * (b - a))
                    .collect();
            }
        }
        ws.last().unwrap().clone()
    }

    /// The band of DCT coefficient (ky, kx) of an h×w plane.
    pub fn band(&self, ky: usize, kx: usize, h: usize, w: usize) -> usize {
        dct_band(&self.bands, ky, kx, h, w)
    }

    /// The band of every coefficient of an h×w plane, row-major.
    fn band_map(&self, h: usize, w: usize) -> Vec<u8> {
        (0..h * w)
            .map(|i| self.band(i / w, i % w, h, w) as u8)
            .collect()
    }
}

/// The radial band of DCT coefficient (ky, kx) of an h×w plane: how many of the increasing
/// band `edges` (cycles/pixel) its frequency reaches.
pub fn dct_band(edges: &[f64], ky: usize, kx: usize, h: usize, w: usize) -> usize {
    let (fy, fx) = (ky as f64 / (2.0 * h as f64), kx as f64 / (2.0 * w as f64));
    let f = (fy * fy + fx * fx).sqrt();
    edges.iter().take_while(|&&e| e <= f).count()
}

/// Scales each band of every channel of `d` (c planes of h×w) by `gain[band]` in the DCT domain.
fn scale_bands(d: &mut [f64], shape: Shape, bands: &[u8], gain: &[f64]) {
    let (h, w) = (shape.h, shape.w);
    d.par_chunks_mut(h * w).for_each(|plane| {
        dct2d(plane, h, w, false);
        for (v, &b) in plane.iter_mut().zip(bands) {
            *v *= gain[b as usize];
        }
        dct2d(plane, h, w, true);
    });
}

pub struct Blend {
    name: String,
    base: Arc<dyn Denoiser>,
    prior: Arc<dyn Denoiser>,
    params: BlendParams,
    fingerprint: u32,
}

impl Blend {
    pub fn new(
        name: &str,
        base: Arc<dyn Denoiser>,
        prior: Arc<dyn Denoiser>,
        params: BlendParams,
    ) -> Result<Self> {
        params.check()?;
        let mut h = crc32fast::Hasher::new();
        h.update(&base.fingerprint().to_le_bytes());
        h.update(&prior.fingerprint().to_le_bytes());
        for e in &params.bands {
            h.update(&e.to_le_bytes());
        }
        for (l, ws) in params.logsnr.iter().zip(&params.weight) {
            h.update(&l.to_le_bytes());
            for w in ws {
                h.update(&w.to_le_bytes());
            }
        }
        Ok(Blend {
            name: name.to_string(),
            base,
            prior,
            params,
            fingerprint: h.finalize(),
        })
    }
    pub fn params(&self) -> &BlendParams {
        &self.params
    }
}

impl Denoiser for Blend {
    fn name(&self) -> &str {
        &self.name
    }
    fn fingerprint(&self) -> u32 {
        self.fingerprint
    }
    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        let w = self.params.weight_at(logsnr);
        if w.iter().all(|&w| w == 0.0) {
            return self.base.predict_x(z, shape, logsnr);
        }
        if w.iter().all(|&w| w == 1.0) {
            return self.prior.predict_x(z, shape, logsnr);
        }
        let (a, b) = rayon::join(
            || self.base.predict_x(z, shape, logsnr),
            || self.prior.predict_x(z, shape, logsnr),
        );
        let (a, b) = (a?, b?);
        if a.len() != b.len() || a.len() != shape.len() {
            bail!(
                "blend: the two models returned {} and {} values for {shape:?}",
                a.len(),
                b.len()
            );
        }
        let mut d: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(&a, &b)| b as f64 - a as f64)
            .collect();
        if w.len() == 1 {
            d.iter_mut().for_each(|v| *v *= w[0]);
        } else {
            scale_bands(&mut d, shape, &self.params.band_map(shape.h, shape.w), &w);
        }
        Ok(a.iter()
            .zip(&d)
            .map(|(&a, &d)| (a as f64 + d) as f32)
            .collect())
    }
}

/// What [`fit`] returns: the weights per knot and band, and per knot the MSE of base, prior
/// and blend on the fitting images.
pub type FitRows = (Vec<Vec<f64>>, Vec<[f64; 3]>);

/// Least-squares fit of the blend weights at each knot on clean images `xs`: per knot λ, noisy
/// latents z = α x + σ ε (shared-seed noise); in each band, with D = x̂_p − x̂_b and
/// E = x − x̂_b in the DCT domain, w = ⟨D, E⟩ / ‖D‖² clipped to [0, 1]. Returns the weights
/// and, per knot, the mean squared error of base, prior and blend on the fitting images.
pub fn fit(
    base: &dyn Denoiser,
    prior: &dyn Denoiser,
    xs: &[crate::image_io::Image],
    knots: &[f64],
    bands: &[f64],
    progress: bool,
) -> Result<FitRows> {
    use crate::rng::{Purpose, Stream};
    ensure!(!xs.is_empty(), "blend fit: no images");
    let nb = bands.len() + 1;
    let banding = BlendParams {
        base: String::new(),
        prior: String::new(),
        logsnr: vec![0.0],
        bands: bands.to_vec(),
        weight: vec![vec![0.0; nb]],
    };
    let bar = crate::progress::bar(progress, knots.len(), "fit blend");
    let mut weights = Vec::new();
    let mut mses = Vec::new();
    for (k, &l) in knots.iter().enumerate() {
        // per band: ⟨D, E⟩, ‖D‖², ‖E‖²
        let (mut de, mut dd, mut ee) = (vec![0.0f64; nb], vec![0.0f64; nb], vec![0.0f64; nb]);
        let mut n = 0usize;
        for (i, img) in xs.iter().enumerate() {
            let mut e = vec![0f32; img.data.len()];
            Stream::new(i as u64, Purpose::Experiment, k as u32, 0, 0).fill_normal(&mut e);
            let z = crate::diffusion::diffuse(&img.data, &e, l);
            let (xb, xp) = (
                base.predict_x(&z, img.shape, l)?,
                prior.predict_x(&z, img.shape, l)?,
            );
            let mut d: Vec<f64> = xp
                .iter()
                .zip(&xb)
                .map(|(&p, &b)| p as f64 - b as f64)
                .collect();
            let mut r: Vec<f64> = img
                .data
                .iter()
                .zip(&xb)
                .map(|(&x, &b)| x as f64 - b as f64)
                .collect();
            let (h, w) = (img.shape.h, img.shape.w);
            let map = banding.band_map(h, w);
            for v in [&mut d, &mut r] {
                v.par_chunks_mut(h * w).for_each(|p| dct2d(p, h, w, false));
            }
            for (j, (&d, &r)) in d.iter().zip(&r).enumerate() {
                let b = map[j % (h * w)] as usize;
                de[b] += d * r;
                dd[b] += d * d;
                ee[b] += r * r;
            }
            n += img.data.len();
        }
        let w: Vec<f64> = (0..nb)
            .map(|b| {
                if dd[b] > 0.0 {
                    (de[b] / dd[b]).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect();
        let mut m = [0.0f64; 3];
        for b in 0..nb {
            m[0] += ee[b];
            m[1] += ee[b] - 2.0 * de[b] + dd[b];
            m[2] += ee[b] - 2.0 * w[b] * de[b] + w[b] * w[b] * dd[b];
        }
        weights.push(w);
        mses.push(m.map(|v| v / n as f64));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((weights, mses))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoiser::gaussian::DiagonalGaussian;
    use crate::image_io::Image;
    use crate::rng::{Purpose, Stream};

    fn params(weight: Vec<f64>) -> BlendParams {
        BlendParams {
            base: "a".into(),
            prior: "b".into(),
            logsnr: vec![-2.0, 0.0, 4.0],
            bands: vec![],
            weight: weight.into_iter().map(|w| vec![w]).collect(),
        }
    }

    #[test]
    fn weight_is_piecewise_linear_and_constant_beyond_the_ends() {
        let p = params(vec![1.0, 0.5, 0.0]);
        assert_eq!(p.weight_at(-9.0), [1.0]);
        assert_eq!(p.weight_at(-1.0), [0.75]);
        assert_eq!(p.weight_at(2.0), [0.25]);
        assert_eq!(p.weight_at(99.0), [0.0]);
        assert!(
            BlendParams {
                bands: vec![0.1],
                ..params(vec![1.0; 3])
            }
            .check()
            .is_err(),
            "one weight per band"
        );
        assert!(params(vec![1.0, 0.5]).check().is_err());
        assert!(params(vec![1.0, 1.5, 0.0]).check().is_err());
        assert!(
            BlendParams {
                logsnr: vec![0.0, 0.0, 1.0],
                ..params(vec![0.0; 3])
            }
            .check()
            .is_err()
        );
    }

    /// Weights 1 below 0.2 cycles/pixel and 0 above: the blend adds exactly the low band of
    /// x̂_prior − x̂_base to x̂_base.
    #[test]
    fn banded_blend_moves_only_its_bands() {
        let s = Shape::new(3, 6, 10);
        let a = DiagonalGaussian::new(vec![0.1; s.len()], vec![0.2; s.len()]);
        let c = DiagonalGaussian::new(
            (0..s.len()).map(|i| (i % 7) as f64 * 0.1 - 0.3).collect(),
            (0..s.len()).map(|i| 0.05 + (i % 5) as f64 * 0.1).collect(),
        );
        let p = BlendParams {
            base: "a".into(),
            prior: "c".into(),
            logsnr: vec![0.0],
            bands: vec![0.2],
            weight: vec![vec![1.0, 0.0]],
        };
        assert_eq!(p.band(0, 0, 6, 10), 0);
        assert_eq!(p.band(5, 9, 6, 10), 1);
        let map = p.band_map(6, 10);
        assert!(map.contains(&0) && map.contains(&1));
        let b = Blend::new("mix", Arc::new(a.clone()), Arc::new(c.clone()), p).unwrap();
        let z: Vec<f32> = (0..s.len())
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let (xa, xc, xb) = (
            a.predict_x(&z, s, 0.0).unwrap(),
            c.predict_x(&z, s, 0.0).unwrap(),
            b.predict_x(&z, s, 0.0).unwrap(),
        );
        let dct = |v: Vec<f64>| -> Vec<f64> {
            let mut v = v;
            v.chunks_mut(60).for_each(|p| dct2d(p, 6, 10, false));
            v
        };
        let moved = dct(xb
            .iter()
            .zip(&xa)
            .map(|(&b, &a)| b as f64 - a as f64)
            .collect());
        let full = dct(xc
            .iter()
            .zip(&xa)
            .map(|(&c, &a)| c as f64 - a as f64)
            .collect());
        for (j, (m, f)) in moved.iter().zip(&full).enumerate() {
            let want = if map[j % 60] == 0 { *f } else { 0.0 };
            assert!((m - want).abs() < 1e-5, "coefficient {j}: {m} vs {want}");
        }
    }

    /// Samples of X ~ N(0, diag(v)) as 3×4×4 images.
    fn samples(v: &[f64], n: usize) -> Vec<Image> {
        (0..n)
            .map(|k| {
                let mut e = vec![0f32; 48];
                Stream::new(k as u64, Purpose::Experiment, 77, 0, 0).fill_normal(&mut e);
                Image {
                    shape: Shape::new(3, 4, 4),
                    data: e
                        .iter()
                        .zip(v)
                        .map(|(&e, &v)| (e as f64 * v.sqrt()) as f32)
                        .collect(),
                }
            })
            .collect()
    }

    #[test]
    fn fit_prefers_the_exact_model_and_never_loses_to_either_part() {
        let v: Vec<f64> = (0..48).map(|i| 0.3 / (1.0 + i as f64)).collect();
        let exact = DiagonalGaussian::new(vec![0.0; 48], v.clone());
        let wrong = DiagonalGaussian::new(vec![0.0; 48], v.iter().map(|v| v * 8.0).collect());
        let xs = samples(&v, 64);
        let knots = [-4.0, 0.0, 4.0];
        let (w, mse) = fit(&wrong, &exact, &xs, &knots, &[], false).unwrap();
        for (k, (w, m)) in w.iter().zip(&mse).enumerate() {
            assert!(w[0] > 0.8, "knot {k}: weight {w:?} on the exact model");
            assert!(
                m[2] <= m[0] + 1e-12 && m[2] <= m[1] + 1e-12,
                "knot {k}: blend {m:?}"
            );
        }
        // the blend denoises as its parts say
        let p = BlendParams {
            base: "wrong".into(),
            prior: "exact".into(),
            logsnr: knots.to_vec(),
            bands: vec![],
            weight: vec![vec![0.0], vec![0.5], vec![1.0]],
        };
        let b = Blend::new("mix", Arc::new(wrong.clone()), Arc::new(exact.clone()), p).unwrap();
        let z: Vec<f32> = xs[0].data.iter().map(|x| x * 0.7 + 0.1).collect();
        let s = xs[0].shape;
        assert_eq!(
            b.predict_x(&z, s, -4.0).unwrap(),
            wrong.predict_x(&z, s, -4.0).unwrap()
        );
        assert_eq!(
            b.predict_x(&z, s, 4.0).unwrap(),
            exact.predict_x(&z, s, 4.0).unwrap()
        );
        let (a, c, m) = (
            wrong.predict_x(&z, s, 0.0).unwrap(),
            exact.predict_x(&z, s, 0.0).unwrap(),
            b.predict_x(&z, s, 0.0).unwrap(),
        );
        for i in 0..m.len() {
            assert!((m[i] - 0.5 * (a[i] + c[i])).abs() < 1e-6);
        }
        assert_ne!(b.fingerprint(), wrong.fingerprint());
        // per-band weights fit at least as well as one weight per knot
        let (wb, mse_b) = fit(&wrong, &exact, &xs, &knots, &[0.1, 0.25], false).unwrap();
        for (k, (mb, m)) in mse_b.iter().zip(&mse).enumerate() {
            assert_eq!(wb[k].len(), 3);
            assert!(
                mb[2] <= m[2] + 1e-9 && (mb[0] - m[0]).abs() < 1e-9 * m[0],
                "knot {k}: {mb:?} vs {m:?}"
            );
        }
        assert_ne!(b.fingerprint(), exact.fingerprint());
    }
}
