//! Universal (dithered) quantisation of a step (UQDM-style).
//!
//! With Δ = √12·σ and a shared dither u ~ U(−½, ½)^D, the encoder sends
//! `k = round((μ_q − μ_p)/Δ + u)`; the decoder returns `μ_p + Δ(k − u)`, whose error
//! against μ_q is U(±Δ/2), independent of x (same mean and variance as q).
//!
//! Prior of k: y = (μ_q − μ_p)/Δ ~ N(0, s²), convolved with the dither and conditioned on u
//! through `U_BINS` dither bins. With the equal-variance proposal s² is fixed by the
//! transmitted step KL (KL per dim in nats = 6·E\[y²\]); a proposal with its own variance says
//! E\[y²\] = (ρ² − 1)/12 per dimension (ρ = σ_p/σ), and s is the root of its mean, rounded to a
//! 1/16-octave grid. Tables come from integers and libm only: bit-identical on any machine.
use super::{Proposal, StepChannel, StepCtx};
use crate::entropy::{GaussianTables, Reader, Writer};
use crate::error::{Error, FormatError};
use crate::rng::{Purpose, Stream};

const SQRT12: f64 = 3.464_101_615_137_754_6;

/// Prior scale s (in units of Δ) for a step of `kl_bits` over `dims` dimensions.
pub fn prior_scale(kl_bits: f64, dims: usize) -> f64 {
    (kl_bits * std::f64::consts::LN_2 / (6.0 * dims as f64)).sqrt()
}

fn dither(ctx: &StepCtx, dims: usize) -> Vec<f64> {
    let mut u = vec![0.0; dims];
    Stream::new(ctx.seed, Purpose::UqDither, ctx.step, 0, 0).fill_uniform_centered(&mut u);
    u
}

/// Prior scale s (in units of Δ) that a proposal with per-dimension variances implies.
fn proposal_scale(p: &Proposal, sigma: f64) -> Option<f64> {
    p.sd?;
    let n = p.mu.len().max(1) as f64;
    let e2 = (0..p.mu.len())
        .map(|i| (p.ratio(i, sigma).powi(2) - 1.0).max(0.0))
        .sum::<f64>()
        / (12.0 * n);
    Some(libm::exp2(
        (16.0 * libm::log2(e2.sqrt().max(1e-6))).round() / 16.0,
    ))
}

/// What both sides derive for a step: dims, step width Δ, k-tables and the dither.
fn setup(ctx: &StepCtx, p: &Proposal) -> (usize, f64, GaussianTables, Vec<f64>) {
    let d = p.mu.len();
    let s = proposal_scale(p, ctx.sigma).unwrap_or_else(|| prior_scale(ctx.kl_bits, d));
    (
        d,
        SQRT12 * ctx.sigma,
        GaussianTables::dithered(s),
        dither(ctx, d),
    )
}

/// Reads one step's symbols from `r` and writes them unchanged to `w`, with the tables of the
/// equal-variance proposal (they depend only on the step's KL code, `dims` and the seeded
/// dither, not on the model): how a file is truncated without its model.
pub fn transcode(ctx: &StepCtx, dims: usize, r: &mut Reader, w: &mut Writer) -> Result<(), Error> {
    let t = GaussianTables::dithered(prior_scale(ctx.kl_bits, dims));
    for u in dither(ctx, dims) {
        let k = r.signed(t.r, t.table(u))?;
        w.signed(k, t.r, t.table(u))?;
    }
    Ok(())
}

/// The universal-quantisation channel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Uq;

impl StepChannel for Uq {
    fn encode(
        &self,
        ctx: &StepCtx,
        p: &Proposal,
        mu_q: &[f32],
        w: &mut Writer,
    ) -> Result<Vec<f32>, Error> {
        let mu_p = p.mu;
        let (d, delta, t, u) = setup(ctx, p);
        let mut z = vec![0f32; d];
        for i in 0..d {
            let y = (mu_q[i] as f64 - mu_p[i] as f64) / delta;
            let k = (y + u[i] + 0.5).floor();
            if !k.is_finite() || k.abs() > (1u64 << 40) as f64 {
                return Err(Error::Unsupported(format!(
                    "non-finite or huge latent offset at dim {i}"
                )));
            }
            let k = k as i64;
            w.signed(k, t.r, t.table(u[i]))?;
            z[i] = (mu_p[i] as f64 + delta * (k as f64 - u[i])) as f32;
        }
        Ok(z)
    }

    fn decode(&self, ctx: &StepCtx, p: &Proposal, r: &mut Reader) -> Result<Vec<f32>, FormatError> {
        let mu_p = p.mu;
        let (d, delta, t, u) = setup(ctx, p);
        let mut z = vec![0f32; d];
        for i in 0..d {
            let k = r.signed(t.r, t.table(u[i]))?;
            z[i] = (mu_p[i] as f64 + delta * (k as f64 - u[i])) as f32;
        }
        Ok(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoded error against μ_q is uniform on ±Δ/2 whatever μ_q − μ_p is.
    #[test]
    fn error_is_uniform_and_independent_of_the_offset() {
        let d = 20000;
        let ctx = StepCtx {
            seed: 3,
            step: 1,
            sigma: 0.1,
            kl_bits: 0.0,
        };
        let mu_p = vec![0f32; d];
        let mu_q: Vec<f32> = (0..d).map(|i| ((i % 7) as f32 - 3.0) * 0.05).collect();
        let kl = super::super::offsets_and_kl(&mu_p, &mu_q, 0.1).1;
        let ctx = StepCtx {
            kl_bits: super::super::code_to_kl(super::super::kl_to_code(kl)),
            ..ctx
        };
        let mut w = Writer::new();
        let p = Proposal::equal(&mu_p);
        let z = Uq.encode(&ctx, &p, &mu_q, &mut w).unwrap();
        let bytes = w.finish();
        let z2 = Uq
            .decode(&ctx, &p, &mut Reader::new(&bytes).unwrap())
            .unwrap();
        assert_eq!(z, z2);
        let half = SQRT12 * 0.1 / 2.0;
        let errs: Vec<f64> = z
            .iter()
            .zip(&mu_q)
            .map(|(&a, &b)| a as f64 - b as f64)
            .collect();
        assert!(errs.iter().all(|e| e.abs() <= half * 1.0001));
        let var = errs.iter().map(|e| e * e).sum::<f64>() / d as f64;
        assert!(
            (var / 0.01 - 1.0).abs() < 0.03,
            "variance ratio {}",
            var / 0.01
        );
        // the rate should be near the KL plus UQ's known overhead, well below 2x here
        let bits = bytes.len() as f64 * 8.0;
        assert!(bits < 2.0 * kl + 200.0, "bits {bits} kl {kl}");
    }
}
