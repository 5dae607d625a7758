//! Noise schedules in f64, parameterised by log-SNR λ(t) for t ∈ [0, 1] (t = 1 noisiest).
use crate::diffusion::sigmoid;

/// A map t ↦ λ(t), decreasing in t, clipped to [λ_min, λ_max].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// λ linear in t from `lmax` (t = 0) to `lmin` (t = 1).
    LinearLogSnr { lmin: f64, lmax: f64 },
    /// The cosine schedule `λ = −2 ln tan(π t' / 2)` with t' rescaled so λ(0) = lmax, λ(1) = lmin.
    Cosine { lmin: f64, lmax: f64 },
}

impl Schedule {
    pub fn lmin(&self) -> f64 {
        match *self {
            Schedule::LinearLogSnr { lmin, .. } | Schedule::Cosine { lmin, .. } => lmin,
        }
    }
    pub fn lmax(&self) -> f64 {
        match *self {
            Schedule::LinearLogSnr { lmax, .. } | Schedule::Cosine { lmax, .. } => lmax,
        }
    }

    /// λ(t).
    pub fn logsnr(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        match *self {
            Schedule::LinearLogSnr { lmin, lmax } => lmax + (lmin - lmax) * t,
            Schedule::Cosine { lmin, lmax } => {
                // t' such that λ(t') = lmax at t = 0 and lmin at t = 1.
                let t0 = libm::atan(libm::exp(-0.5 * lmax)) * 2.0 / std::f64::consts::PI;
                let t1 = libm::atan(libm::exp(-0.5 * lmin)) * 2.0 / std::f64::consts::PI;
                let tp = t0 + (t1 - t0) * t;
                -2.0 * libm::log(libm::tan(std::f64::consts::FRAC_PI_2 * tp))
            }
        }
    }

    /// λ on a grid of `n` equal steps in t from t = 1 (noisiest) down to t = 0: n + 1 values,
    /// increasing.
    pub fn grid(&self, n: usize) -> Vec<f64> {
        assert!(n >= 1);
        (0..=n)
            .map(|i| self.logsnr(1.0 - i as f64 / n as f64))
            .collect()
    }
}

/// λ values from `from` to `to` (increasing), `n` equal steps in λ.
pub fn logsnr_grid(from: f64, to: f64, n: usize) -> Vec<f64> {
    let n = n.max(1);
    (0..=n)
        .map(|i| from + (to - from) * i as f64 / n as f64)
        .collect()
}

/// The reverse-step coefficients from log-SNR `lt` (noisier) to `ls` (cleaner):
/// `μ = a·z_t + b·x`, variance `var`, in VDM form with `e = −expm1(lt − ls)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCoeffs {
    pub a: f64,
    pub b: f64,
    pub var: f64,
}

impl StepCoeffs {
    pub fn new(lt: f64, ls: f64) -> Self {
        assert!(ls > lt, "reverse step must increase log-SNR ({lt} → {ls})");
        let e = -libm::expm1(lt - ls);
        let (at, _) = (sigmoid(lt).sqrt(), ());
        let as_ = sigmoid(ls).sqrt();
        let ss2 = sigmoid(-ls);
        StepCoeffs {
            a: as_ * (1.0 - e) / at,
            b: as_ * e,
            var: ss2 * e,
        }
    }
    pub fn std(&self) -> f64 {
        self.var.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_hit_their_ends_and_decrease() {
        for s in [
            Schedule::LinearLogSnr {
                lmin: -10.0,
                lmax: 12.0,
            },
            Schedule::Cosine {
                lmin: -10.0,
                lmax: 12.0,
            },
        ] {
            assert!((s.logsnr(0.0) - 12.0).abs() < 1e-9);
            assert!((s.logsnr(1.0) + 10.0).abs() < 1e-9);
            let g = s.grid(50);
            assert!(g.windows(2).all(|w| w[1] > w[0]));
        }
    }

    /// q(z_s|z_t,x) composed with q(z_t|x) must give q(z_s|x): checks the coefficients.
    #[test]
    fn step_coefficients_are_consistent_with_marginals() {
        let (lt, ls) = (-1.3, 2.2);
        let c = StepCoeffs::new(lt, ls);
        let (at, st) = (sigmoid(lt).sqrt(), sigmoid(-lt).sqrt());
        let (as_, ss) = (sigmoid(ls).sqrt(), sigmoid(-ls).sqrt());
        // mean: a·α_t + b = α_s ; variance: a²σ_t² + var = σ_s²
        assert!((c.a * at + c.b - as_).abs() < 1e-12);
        assert!((c.a * c.a * st * st + c.var - ss * ss).abs() < 1e-12);
    }
}
