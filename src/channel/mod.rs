//! Communicating one reverse step: a sample of q(z_s|z_t,x) = N(μ_q, σ²I) given the shared
//! proposal p(z_s|z_t) = N(μ_p, diag(σ_p²)), where σ_p = σ (the DDPM proposal) unless the
//! model knows its posterior variance (then σ_p² = σ² + b²·Var[x|z_t], the exact reverse step).
//!
//! Both sides know the step's quantised KL (`kl_code`, sent in the file) and the shared
//! seed; from those alone they build identical chunk plans and probability tables.
pub mod lanes;
pub mod pfr;
pub mod uq;

use crate::entropy::{Reader, Writer};
use crate::error::{Error, FormatError};

/// What both encoder and decoder know about a step.
#[derive(Clone, Copy, Debug)]
pub struct StepCtx {
    pub seed: u64,
    pub step: u32,
    /// Standard deviation of q (and of p when the proposal has no `sd`).
    pub sigma: f64,
    /// Dequantised total KL of the step in bits (from the transmitted code).
    pub kl_bits: f64,
}

/// Which channel carries a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum ChannelKind {
    /// Truncated Poisson functional representation on chunks (Gaussian, exact up to truncation).
    Pfr,
    /// Universal (dithered) quantisation: uniform noise, linear time.
    Uq,
    /// PFR for low-KL-per-dimension steps, UQ for the rest.
    Mixed,
}

impl ChannelKind {
    pub fn to_u8(self) -> u8 {
        match self {
            ChannelKind::Pfr => 0,
            ChannelKind::Uq => 1,
            ChannelKind::Mixed => 2,
        }
    }
    pub fn from_u8(v: u8) -> Result<Self, FormatError> {
        Ok(match v {
            0 => ChannelKind::Pfr,
            1 => ChannelKind::Uq,
            2 => ChannelKind::Mixed,
            _ => return Err(FormatError::corrupt("channel", format!("unknown kind {v}"))),
        })
    }
}

/// Quantised step KL: `code = ceil(8·log2(1 + kl))`, 0 = nothing sent (free step).
pub fn kl_to_code(kl_bits: f64) -> u8 {
    if !(kl_bits > 0.0) {
        return 0;
    }
    (8.0 * libm::log2(1.0 + kl_bits)).ceil().clamp(1.0, 255.0) as u8
}

/// The KL bound that both sides use for a code (≥ the true KL for codes < 255).
pub fn code_to_kl(code: u8) -> f64 {
    libm::exp2(code as f64 / 8.0) - 1.0
}

/// The shared proposal p(z_s|z_t) = N(mu, diag(sd²)); `sd: None` means σ_q in every dimension.
#[derive(Clone, Copy, Debug)]
pub struct Proposal<'a> {
    pub mu: &'a [f32],
    pub sd: Option<&'a [f32]>,
}

impl<'a> Proposal<'a> {
    /// The equal-variance (DDPM) proposal.
    pub fn equal(mu: &'a [f32]) -> Self {
        Proposal { mu, sd: None }
    }
    /// The proposal's point μ_p + σ_p·u in dimension i for a standard normal draw u (σ_p = σ_q
    /// without `sd`): how candidates and free steps become latents, on both sides.
    #[inline]
    pub fn point(&self, i: usize, sigma_q: f64, u: f32) -> f32 {
        let sd = self.sd.map_or(sigma_q, |s| s[i] as f64);
        (self.mu[i] as f64 + sd * u as f64) as f32
    }
    /// σ_p/σ_q of dimension i.
    #[inline]
    pub fn ratio(&self, i: usize, sigma_q: f64) -> f64 {
        self.sd.map_or(1.0, |s| s[i] as f64 / sigma_q)
    }
}

/// KL(q ‖ p) of a step in bits, for q = N(μ_q, σ_q²I) and the proposal `p`. With ρ = σ_p/σ_q
/// and m = (μ_q − μ_p)/σ_q, per dimension `ln ρ + (1 + m²)/(2ρ²) − ½` nats (m²/2 when ρ = 1).
pub fn step_kl(p: &Proposal, mu_q: &[f32], sigma_q: f64) -> f64 {
    let Some(sd) = p.sd else {
        return offsets_and_kl(p.mu, mu_q, sigma_q).1;
    };
    let nats: f64 = mu_q
        .iter()
        .zip(p.mu)
        .zip(sd)
        .map(|((&q, &m), &s)| {
            let m = (q as f64 - m as f64) / sigma_q;
            let r2 = (s as f64 / sigma_q).powi(2);
            // ln ρ − ½(1 − 1/ρ²) without cancellation when ρ ≈ 1
            0.5 * (libm::log1p(r2 - 1.0) - (r2 - 1.0) / r2) + 0.5 * m * m / r2
        })
        .sum();
    nats / std::f64::consts::LN_2
}

/// Unit-variance offsets m = (μ_q − μ_p)/σ and the step's KL in bits.
pub fn offsets_and_kl(mu_p: &[f32], mu_q: &[f32], sigma: f64) -> (Vec<f32>, f64) {
    let inv = 1.0 / sigma;
    let m: Vec<f32> = mu_q
        .iter()
        .zip(mu_p)
        .map(|(&q, &p)| ((q as f64 - p as f64) * inv) as f32)
        .collect();
    let kl =
        m.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / (2.0 * std::f64::consts::LN_2);
    (m, kl)
}

/// One channel's encoder and decoder for a whole step.
pub trait StepChannel {
    /// Codes a sample near N(μ_q, σ²) and returns it (exactly what the decoder will rebuild).
    fn encode(
        &self,
        ctx: &StepCtx,
        p: &Proposal,
        mu_q: &[f32],
        w: &mut Writer,
    ) -> Result<Vec<f32>, Error>;
    /// Rebuilds the encoder's sample from the payload.
    fn decode(&self, ctx: &StepCtx, p: &Proposal, r: &mut Reader) -> Result<Vec<f32>, FormatError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn kl_code_bounds_the_kl() {
        for &kl in &[1e-6, 0.3, 1.0, 13.7, 1e3, 1e6, 3e9] {
            let c = kl_to_code(kl);
            assert!(
                code_to_kl(c) >= kl && code_to_kl(c) <= (kl + 1.0) * 1.0906,
                "{kl} {c}"
            );
        }
        assert_eq!(kl_to_code(0.0), 0);
        assert_eq!(code_to_kl(0), 0.0);
    }

    #[test]
    fn step_kl_matches_the_gaussian_formula() {
        let (mu_p, mu_q, sd) = ([0.1f32, -0.3], [0.4f32, -0.2], [0.5f32, 0.2]);
        let sq = 0.2;
        let want: f64 = (0..2)
            .map(|i| {
                let (s1, s2) = (sq, sd[i] as f64);
                let d = (mu_q[i] - mu_p[i]) as f64;
                (s2 / s1).ln() + (s1 * s1 + d * d) / (2.0 * s2 * s2) - 0.5
            })
            .sum::<f64>()
            / std::f64::consts::LN_2;
        let p = Proposal {
            mu: &mu_p,
            sd: Some(&sd),
        };
        assert!((step_kl(&p, &mu_q, sq) - want).abs() < 1e-6);
        // ρ = 1 gives the equal-variance KL
        let same = [0.2f32; 2];
        let p1 = Proposal {
            mu: &mu_p,
            sd: Some(&same),
        };
        let eq = step_kl(&Proposal::equal(&mu_p), &mu_q, sq);
        assert!((step_kl(&p1, &mu_q, sq) - eq).abs() < 1e-5 * eq);
    }
}
