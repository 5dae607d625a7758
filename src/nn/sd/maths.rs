//! The scalar maths of SD's diffusion, in f64: the ᾱ table, x̂ from the network output, and
//! the DDPM posterior between two timesteps. Pure functions over slices, no candle.
use super::config::PredictionType;

/// diffusers' `beta_schedule = "scaled_linear"`: `β_i = (√b₀ + i·(√b₁ − √b₀)/(N − 1))²`,
/// `ᾱ_i = Π_{j ≤ i} (1 − β_j)`, i = 0 … N − 1, all in f64 (diffusers computes the same
/// in f32; the two agree to ~1e-7). Index i is diffusers' `alphas_cumprod[i]`, the noise
/// level the U-Net is trained on at timestep i.
pub fn scaled_linear_alphas_cumprod(beta_start: f64, beta_end: f64, n: usize) -> Vec<f64> {
    let (a, b) = (beta_start.sqrt(), beta_end.sqrt());
    let mut prod = 1.0;
    (0..n)
        .map(|i| {
            let s = if n == 1 {
                a
            } else if i == n - 1 {
                b
            } else {
                a + (b - a) * (i as f64) / ((n - 1) as f64)
            };
            prod *= 1.0 - s * s;
            prod
        })
        .collect()
}

/// x̂ = (z_t − √(1−ᾱ) ε̂) / √ᾱ.
pub fn x0_from_eps(z_t: &[f64], eps: &[f64], abar: f64) -> Vec<f64> {
    let (a, s) = (abar.sqrt(), (1.0 - abar).sqrt());
    z_t.iter()
        .zip(eps)
        .map(|(&z, &e)| (z - s * e) / a)
        .collect()
}

/// x̂ = √ᾱ z_t − √(1−ᾱ) v̂ (v = √ᾱ ε − √(1−ᾱ) x).
pub fn x0_from_v(z_t: &[f64], v: &[f64], abar: f64) -> Vec<f64> {
    let (a, s) = (abar.sqrt(), (1.0 - abar).sqrt());
    z_t.iter().zip(v).map(|(&z, &v)| a * z - s * v).collect()
}

/// ε̂ = √ᾱ v̂ + √(1−ᾱ) z_t.
pub fn eps_from_v(z_t: &[f64], v: &[f64], abar: f64) -> Vec<f64> {
    let (a, s) = (abar.sqrt(), (1.0 - abar).sqrt());
    z_t.iter().zip(v).map(|(&z, &v)| a * v + s * z).collect()
}

/// x̂ from the network output under either parameterisation.
pub fn predict_x0(prediction: PredictionType, z_t: &[f64], out: &[f64], abar: f64) -> Vec<f64> {
    match prediction {
        PredictionType::Epsilon => x0_from_eps(z_t, out, abar),
        PredictionType::VPrediction => x0_from_v(z_t, out, abar),
    }
}

/// q(z_s | z_t, x) for s < t as `mean = x_coef·x + z_coef·z_t`, std `sigma`, with
/// α_{t|s} = ᾱ_t/ᾱ_s: `x_coef = √ᾱ_s (1 − α_{t|s}) / (1 − ᾱ_t)`,
/// `z_coef = √α_{t|s} (1 − ᾱ_s) / (1 − ᾱ_t)`, `σ² = (1 − α_{t|s})(1 − ᾱ_s)/(1 − ᾱ_t)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    pub x_coef: f64,
    pub z_coef: f64,
    pub sigma: f64,
}

/// The DDPM posterior between ᾱ_t (noisier) and ᾱ_s (cleaner, ᾱ_s > ᾱ_t); ᾱ_s = 1 gives
/// the clean endpoint (mean x, σ 0).
pub fn ddpm_posterior(abar_t: f64, abar_s: f64) -> Posterior {
    let alpha_ts = abar_t / abar_s;
    let beta_ts = 1.0 - alpha_ts;
    let denom = 1.0 - abar_t;
    Posterior {
        x_coef: abar_s.sqrt() * beta_ts / denom,
        z_coef: alpha_ts.sqrt() * (1.0 - abar_s) / denom,
        sigma: (beta_ts * (1.0 - abar_s) / denom).max(0.0).sqrt(),
    }
}

/// `x_coef·x̂ + z_coef·z_t`, elementwise.
pub fn posterior_mean(p: &Posterior, x_hat: &[f64], z_t: &[f64]) -> Vec<f64> {
    x_hat
        .iter()
        .zip(z_t)
        .map(|(&x, &z)| p.x_coef * x + p.z_coef * z)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_table_matches_field_notes() {
        let a = scaled_linear_alphas_cumprod(0.00085, 0.012, 1000);
        assert!((a[0] - 0.99915).abs() < 1e-12);
        assert!((a[199] - 0.75524).abs() < 1e-5);
        assert!((a[999] - 0.0046601).abs() < 1e-7);
    }

    #[test]
    fn eps_and_v_agree() {
        let (abar, x, e) = (0.3f64, [0.5, -1.0], [0.25, 2.0]);
        let z: Vec<f64> = x
            .iter()
            .zip(&e)
            .map(|(x, e)| abar.sqrt() * x + (1.0 - abar).sqrt() * e)
            .collect();
        let v: Vec<f64> = x
            .iter()
            .zip(&e)
            .map(|(x, e)| abar.sqrt() * e - (1.0 - abar).sqrt() * x)
            .collect();
        for (a, b) in x0_from_eps(&z, &e, abar).iter().zip(&x) {
            assert!((a - b).abs() < 1e-14);
        }
        for (a, b) in x0_from_v(&z, &v, abar).iter().zip(&x) {
            assert!((a - b).abs() < 1e-14);
        }
        for (a, b) in eps_from_v(&z, &v, abar).iter().zip(&e) {
            assert!((a - b).abs() < 1e-14);
        }
        let p = ddpm_posterior(0.3, 1.0);
        assert!((p.x_coef - 1.0).abs() < 1e-15 && p.z_coef.abs() < 1e-15 && p.sigma == 0.0);
    }
}
