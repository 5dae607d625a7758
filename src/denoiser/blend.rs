//! A two-expert denoiser: x̂ = x̂_base + w(λ)·(x̂_prior − x̂_base), with the weight w fitted per
//! log-SNR by least squares on training photos.
//!
//! Why: our U-Net learned from 64×64 crops under the variational bound, whose weight e^λ all but
//! ignores low log-SNR; there it denoises a whole photo worse than the spectrum model's Wiener
//! filter, which knows whole-image statistics. Low DiffC rates stop at low log-SNR, so the
//! blend takes the Wiener estimate where it is better and the network where it is.
use super::Denoiser;
use crate::image_io::Shape;
use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a blend card (`checkpoints/NAME.json` with `"kind": "blend"`) holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlendParams {
    /// Model names: the network and the prior blended towards.
    pub base: String,
    pub prior: String,
    /// Increasing log-SNR knots and the weight of the prior at each (in [0, 1]); linear in
    /// between, constant beyond the ends.
    pub logsnr: Vec<f64>,
    pub weight: Vec<f64>,
}

impl BlendParams {
    pub fn check(&self) -> Result<()> {
        ensure!(!self.logsnr.is_empty() && self.logsnr.len() == self.weight.len(), "blend: knots and weights differ in number");
        ensure!(self.logsnr.iter().all(|l| l.is_finite()) && self.logsnr.windows(2).all(|w| w[0] < w[1]), "blend: log-SNR knots must increase");
        ensure!(self.weight.iter().all(|w| (0.0..=1.0).contains(w)), "blend: weights must lie in [0, 1]");
        Ok(())
    }

    /// The prior's weight at log-SNR `l`.
    pub fn weight_at(&self, l: f64) -> f64 {
        let (ls, ws) = (&self.logsnr, &self.weight);
        if l <= ls[0] {
            return ws[0];
        }
        for i in 1..ls.len() {
            if l <= ls[i] {
                let t = (l - ls[i - 1]) / (ls[i] - ls[i - 1]);
                return ws[i - 1] + t * (ws[i] - ws[i - 1]);
            }
        }
        *ws.last().unwrap()
    }
}

pub struct Blend {
    name: String,
    base: Arc<dyn Denoiser>,
    prior: Arc<dyn Denoiser>,
    params: BlendParams,
    fingerprint: u32,
}

impl Blend {
    pub fn new(name: &str, base: Arc<dyn Denoiser>, prior: Arc<dyn Denoiser>, params: BlendParams) -> Result<Self> {
        params.check()?;
        let mut h = crc32fast::Hasher::new();
        h.update(&base.fingerprint().to_le_bytes());
        h.update(&prior.fingerprint().to_le_bytes());
        for (l, w) in params.logsnr.iter().zip(&params.weight) {
            h.update(&l.to_le_bytes());
            h.update(&w.to_le_bytes());
        }
        Ok(Blend { name: name.to_string(), base, prior, params, fingerprint: h.finalize() })
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
        if w == 0.0 {
            return self.base.predict_x(z, shape, logsnr);
        }
        if w == 1.0 {
            return self.prior.predict_x(z, shape, logsnr);
        }
        let (a, b) = rayon::join(|| self.base.predict_x(z, shape, logsnr), || self.prior.predict_x(z, shape, logsnr));
        let (a, b) = (a?, b?);
        if a.len() != b.len() {
            bail!("blend: the two models returned {} and {} values", a.len(), b.len());
        }
        Ok(a.iter().zip(&b).map(|(&a, &b)| (a as f64 + w * (b as f64 - a as f64)) as f32).collect())
    }
}

/// Least-squares fit of the blend weight at each knot on clean images `xs`: per knot λ, noisy
/// latents z = α x + σ ε (shared-seed noise), then w = ⟨x̂_p − x̂_b, x − x̂_b⟩ / ‖x̂_p − x̂_b‖²
/// clipped to [0, 1]. Returns the weights and, per knot, the mean squared error of base, prior
/// and blend on the fitting images.
pub fn fit(base: &dyn Denoiser, prior: &dyn Denoiser, xs: &[crate::image_io::Image], knots: &[f64], progress: bool) -> Result<(Vec<f64>, Vec<[f64; 3]>)> {
    use crate::rng::{Purpose, Stream};
    ensure!(!xs.is_empty(), "blend fit: no images");
    let bar = crate::codec::diffc::progress_bar(progress, knots.len(), "fit blend");
    let mut weights = Vec::new();
    let mut mses = Vec::new();
    for (k, &l) in knots.iter().enumerate() {
        let (alpha, sigma) = super::param::alpha_sigma(l);
        let (mut num, mut den, mut n) = (0.0f64, 0.0f64, 0usize);
        let mut preds = Vec::new();
        for (i, img) in xs.iter().enumerate() {
            let mut e = vec![0f32; img.data.len()];
            Stream::new(i as u64, Purpose::Experiment, k as u32, 0, 0).fill_normal(&mut e);
            let z: Vec<f32> = img.data.iter().zip(&e).map(|(&x, &e)| (alpha * x as f64 + sigma * e as f64) as f32).collect();
            let (xb, xp) = (base.predict_x(&z, img.shape, l)?, prior.predict_x(&z, img.shape, l)?);
            for ((&x, &b), &p) in img.data.iter().zip(&xb).zip(&xp) {
                let d = p as f64 - b as f64;
                num += d * (x as f64 - b as f64);
                den += d * d;
            }
            n += img.data.len();
            preds.push((xb, xp));
        }
        let w = if den > 0.0 { (num / den).clamp(0.0, 1.0) } else { 0.0 };
        let mut m = [0.0f64; 3];
        for (img, (xb, xp)) in xs.iter().zip(&preds) {
            for ((&x, &b), &p) in img.data.iter().zip(xb).zip(xp) {
                let (x, b, p) = (x as f64, b as f64, p as f64);
                m[0] += (x - b).powi(2);
                m[1] += (x - p).powi(2);
                m[2] += (x - (b + w * (p - b))).powi(2);
            }
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
        BlendParams { base: "a".into(), prior: "b".into(), logsnr: vec![-2.0, 0.0, 4.0], weight }
    }

    #[test]
    fn weight_is_piecewise_linear_and_constant_beyond_the_ends() {
        let p = params(vec![1.0, 0.5, 0.0]);
        assert_eq!(p.weight_at(-9.0), 1.0);
        assert_eq!(p.weight_at(-1.0), 0.75);
        assert_eq!(p.weight_at(2.0), 0.25);
        assert_eq!(p.weight_at(99.0), 0.0);
        assert!(params(vec![1.0, 0.5]).check().is_err());
        assert!(params(vec![1.0, 1.5, 0.0]).check().is_err());
        assert!(BlendParams { logsnr: vec![0.0, 0.0, 1.0], ..params(vec![0.0; 3]) }.check().is_err());
    }

    /// Samples of X ~ N(0, diag(v)) as 3×4×4 images.
    fn samples(v: &[f64], n: usize) -> Vec<Image> {
        (0..n)
            .map(|k| {
                let mut e = vec![0f32; 48];
                Stream::new(k as u64, Purpose::Experiment, 77, 0, 0).fill_normal(&mut e);
                Image { shape: Shape::new(3, 4, 4), data: e.iter().zip(v).map(|(&e, &v)| (e as f64 * v.sqrt()) as f32).collect() }
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
        let (w, mse) = fit(&wrong, &exact, &xs, &knots, false).unwrap();
        for (k, (w, m)) in w.iter().zip(&mse).enumerate() {
            assert!(*w > 0.8, "knot {k}: weight {w} on the exact model");
            assert!(m[2] <= m[0] + 1e-12 && m[2] <= m[1] + 1e-12, "knot {k}: blend {m:?}");
        }
        // the blend denoises as its parts say
        let p = BlendParams { base: "wrong".into(), prior: "exact".into(), logsnr: knots.to_vec(), weight: vec![0.0, 0.5, 1.0] };
        let b = Blend::new("mix", Arc::new(wrong.clone()), Arc::new(exact.clone()), p).unwrap();
        let z: Vec<f32> = xs[0].data.iter().map(|x| x * 0.7 + 0.1).collect();
        let s = xs[0].shape;
        assert_eq!(b.predict_x(&z, s, -4.0).unwrap(), wrong.predict_x(&z, s, -4.0).unwrap());
        assert_eq!(b.predict_x(&z, s, 4.0).unwrap(), exact.predict_x(&z, s, 4.0).unwrap());
        let (a, c, m) = (wrong.predict_x(&z, s, 0.0).unwrap(), exact.predict_x(&z, s, 0.0).unwrap(), b.predict_x(&z, s, 0.0).unwrap());
        for i in 0..m.len() {
            assert!((m[i] - 0.5 * (a[i] + c[i])).abs() < 1e-6);
        }
        assert_ne!(b.fingerprint(), wrong.fingerprint());
        assert_ne!(b.fingerprint(), exact.fingerprint());
    }
}
