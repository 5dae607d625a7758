//! The variance-preserving diffusion parameterisation: conversions between ε-, x- and v-predictions, in one place.
//!
//! With `α² = sigmoid(λ)`, `σ² = sigmoid(−λ)`, `z = α x + σ ε`, `v = α ε − σ x`.

/// (α, σ) for a log-SNR λ, in f64.
pub fn alpha_sigma(logsnr: f64) -> (f64, f64) {
    (sigmoid(logsnr).sqrt(), sigmoid(-logsnr).sqrt())
}

/// Numerically stable logistic function.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::exp(-x))
    } else {
        let e = libm::exp(x);
        e / (1.0 + e)
    }
}

/// x̂ from a predicted ε: `x = (z − σ ε) / α`.
pub fn x_from_eps(z: &[f32], eps: &[f32], logsnr: f64) -> Vec<f32> {
    let (a, s) = alpha_sigma(logsnr);
    z.iter()
        .zip(eps)
        .map(|(&z, &e)| ((z as f64 - s * e as f64) / a) as f32)
        .collect()
}

/// x̂ from a predicted v: `x = α z − σ v`.
pub fn x_from_v(z: &[f32], v: &[f32], logsnr: f64) -> Vec<f32> {
    let (a, s) = alpha_sigma(logsnr);
    z.iter()
        .zip(v)
        .map(|(&z, &v)| (a * z as f64 - s * v as f64) as f32)
        .collect()
}

/// The noisy latent `z = α x + σ ε` at log-SNR λ.
pub fn diffuse(x: &[f32], eps: &[f32], logsnr: f64) -> Vec<f32> {
    let (a, s) = alpha_sigma(logsnr);
    x.iter()
        .zip(eps)
        .map(|(&x, &e)| (a * x as f64 + s * e as f64) as f32)
        .collect()
}

/// ε implied by x̂: `ε = (z − α x) / σ`.
pub fn eps_from_x(z: &[f32], x: &[f32], logsnr: f64) -> Vec<f32> {
    let (a, s) = alpha_sigma(logsnr);
    z.iter()
        .zip(x)
        .map(|(&z, &x)| ((z as f64 - a * x as f64) / s) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parameterisations_round_trip() {
        let x = [0.3f32, -0.7, 0.9];
        let eps = [1.2f32, -0.4, 0.05];
        for &l in &[-8.0, -1.0, 0.0, 2.5, 9.0] {
            let (a, s) = alpha_sigma(l);
            assert!((a * a + s * s - 1.0).abs() < 1e-12);
            let z = diffuse(&x, &eps, l);
            let v: Vec<f32> = x
                .iter()
                .zip(&eps)
                .map(|(&x, &e)| (a * e as f64 - s * x as f64) as f32)
                .collect();
            for (got, want) in x_from_eps(&z, &eps, l).iter().zip(&x) {
                assert!(
                    (got - want).abs() < 1e-3 * (1.0 + 1.0 / a as f32),
                    "{got} {want}"
                );
            }
            for (got, want) in x_from_v(&z, &v, l).iter().zip(&x) {
                assert!((got - want).abs() < 1e-5, "{got} {want}");
            }
            for (got, want) in eps_from_x(&z, &x, l).iter().zip(&eps) {
                assert!((got - want).abs() < 1e-4 / s as f32, "{got} {want}");
            }
        }
    }
}
