//! The variational bound (bits per dimension) of 8-bit images under any [`Denoiser`], the
//! same estimator as the JAX trainer's (`vlb_bpd` in notebooks/train_unet.py): the continuous-
//! time diffusion term ½(λ_max − λ_min)·E_λ[e^λ ‖x − x̂(z_λ)‖²] over K stratified λ, the prior
//! KL(q(z_λmin | x) ‖ N(0, I)) and a discretised-Gaussian reconstruction term at λ_max.
//!
//! It lets models the trainer never saw (the spectrum model, blends) be compared with the
//! trained network on one scale, and checks the Rust network against the trainer's figure.
use crate::denoiser::Denoiser;
use crate::diffusion::alpha_sigma;
use crate::image_io::Image;
use crate::rng::{Purpose, Stream};
use anyhow::{Result, ensure};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Vlb {
    pub bpd: f64,
    pub diffusion_bpd: f64,
    pub prior_bpd: f64,
    pub recon_bpd: f64,
    pub images: usize,
    pub lambda_samples: usize,
}

/// Standard normal CDF.
fn ndtr(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The diffusion term (nats) of one image, K stratified λ in [lmin, lmax].
pub fn diffusion_nats(
    model: &dyn Denoiser,
    x: &Image,
    lmin: f64,
    lmax: f64,
    k: usize,
    seed: u64,
) -> Result<f64> {
    let mut s = Stream::new(seed, Purpose::Experiment, 1, 0, 0);
    let u0 = s.uniform_open();
    let mut acc = 0.0;
    for j in 0..k {
        let l = lmin + (u0 + j as f64) / k as f64 * (lmax - lmin);
        let mut e = vec![0f32; x.data.len()];
        Stream::new(seed, Purpose::Experiment, 2, j as u64, 0).fill_normal(&mut e);
        let z = crate::diffusion::diffuse(&x.data, &e, l);
        let xh = model.predict_x(&z, x.shape, l)?;
        let se: f64 = x
            .data
            .iter()
            .zip(&xh)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum();
        acc += libm::exp(l) * se;
    }
    Ok(0.5 * (lmax - lmin) * acc / k as f64)
}

/// The bound of 8-bit images `xs` (values on the 8-bit grid in [−1, 1]) under `model`.
pub fn vlb(
    model: &dyn Denoiser,
    xs: &[Image],
    lmin: f64,
    lmax: f64,
    k: usize,
    seed: u64,
) -> Result<Vlb> {
    ensure!(
        !xs.is_empty() && k > 0 && lmin < lmax,
        "vlb: need images, K > 0 and λ_min < λ_max"
    );
    let (mut dif, mut prior, mut recon, mut dims) = (0.0, 0.0, 0.0, 0usize);
    let (a2, s2) = (
        1.0 / (1.0 + libm::exp(-lmin)),
        1.0 / (1.0 + libm::exp(lmin)),
    );
    let (a0, s0) = alpha_sigma(lmax);
    let (sc, half) = (s0 / a0, 1.0 / 255.0);
    for (i, x) in xs.iter().enumerate() {
        let seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        dif += diffusion_nats(model, x, lmin, lmax, k, seed)?;
        let mut e = vec![0f32; x.data.len()];
        Stream::new(seed, Purpose::Experiment, 3, 0, 0).fill_normal(&mut e);
        for (&v, &e) in x.data.iter().zip(&e) {
            let v = v as f64;
            prior += 0.5 * (a2 * v * v + s2 - 1.0 - libm::log(s2));
            let mu = v + sc * e as f64;
            let hi = if v >= 1.0 - 1e-6 {
                1.0
            } else {
                ndtr((v + half - mu) / sc)
            };
            let lo = if v <= -1.0 + 1e-6 {
                0.0
            } else {
                ndtr((v - half - mu) / sc)
            };
            recon -= libm::log((hi - lo).max(1e-300));
        }
        dims += x.data.len();
    }
    let k2 = 1.0 / (dims as f64 * std::f64::consts::LN_2);
    Ok(Vlb {
        bpd: (dif + prior + recon) * k2,
        diffusion_bpd: dif * k2,
        prior_bpd: prior * k2,
        recon_bpd: recon * k2,
        images: xs.len(),
        lambda_samples: k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoiser::gaussian::DiagonalGaussian;
    use crate::image_io::Shape;

    /// For X ~ N(0, diag(v)) and the exact denoiser, E‖x − x̂‖² = Σ v/(1 + e^λ v), whose
    /// weighted integral is ½ Σ ln((1 + e^λmax v)/(1 + e^λmin v)).
    #[test]
    fn diffusion_term_matches_the_closed_form_on_gaussian_data() {
        let v: Vec<f64> = (0..48)
            .map(|i| 0.25 * (i as f64 + 1.0).powf(-1.5))
            .collect();
        let model = DiagonalGaussian::new(vec![0.0; 48], v.clone());
        let (lmin, lmax) = (-6.0, 8.0);
        let (mut est, n) = (0.0, 400);
        for i in 0..n {
            let mut e = vec![0f32; 48];
            Stream::new(i, Purpose::Experiment, 50, 0, 0).fill_normal(&mut e);
            let x = Image {
                shape: Shape::new(3, 4, 4),
                data: e
                    .iter()
                    .zip(&v)
                    .map(|(&e, &v)| (e as f64 * v.sqrt()) as f32)
                    .collect(),
            };
            est += diffusion_nats(&model, &x, lmin, lmax, 16, i).unwrap() / n as f64;
        }
        let exact: f64 = v
            .iter()
            .map(|v| 0.5 * ((1.0 + libm::exp(lmax) * v) / (1.0 + libm::exp(lmin) * v)).ln())
            .sum();
        assert!(
            (est / exact - 1.0).abs() < 0.03,
            "estimate {est} vs closed form {exact}"
        );
        // a wrong model pays more
        let wrong = DiagonalGaussian::new(vec![0.0; 48], v.iter().map(|v| v * 6.0).collect());
        let x = Image {
            shape: Shape::new(3, 4, 4),
            data: v.iter().map(|v| (0.7 * v.sqrt()) as f32).collect(),
        };
        let (good, bad) = (
            diffusion_nats(&model, &x, lmin, lmax, 64, 1).unwrap(),
            diffusion_nats(&wrong, &x, lmin, lmax, 64, 1).unwrap(),
        );
        assert!(bad > good, "{bad} ≤ {good}");
    }
}
