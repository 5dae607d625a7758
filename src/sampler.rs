//! Reconstruction from a communicated latent: the DDPM SDE (DiffC-A) and the
//! probability-flow ODE (DiffC-F: DDIM, or DPM-Solver++(2M)), over any Denoiser.
use crate::denoiser::Denoiser;
use crate::diffusion::alpha_sigma;
use crate::image_io::Shape;
use crate::rng::{Purpose, Stream};
use crate::schedule::StepCoeffs;
use anyhow::Result;

/// Probability-flow ODE solvers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OdeSolver {
    /// First order (DDIM, η = 0).
    Ddim,
    /// Second-order multistep DPM-Solver++ in data prediction.
    #[default]
    DpmPp2m,
}

/// The reverse-process mean μ_p = a·z_t + b·x̂ for a step λ_t → λ_s, plus x̂.
pub fn reverse_mean(
    model: &dyn Denoiser,
    z: &[f32],
    shape: Shape,
    lt: f64,
    ls: f64,
) -> Result<(Vec<f32>, Vec<f32>, StepCoeffs)> {
    let c = StepCoeffs::new(lt, ls);
    let xh = model.predict_x(z, shape, lt)?;
    let mu = z
        .iter()
        .zip(&xh)
        .map(|(&z, &x)| (c.a * z as f64 + c.b * x as f64) as f32)
        .collect();
    Ok((mu, xh, c))
}

/// Per-dimension standard deviation of the model's reverse step λ_t → λ_s,
/// `√(σ_q² + b²·Var[x|z_t])`, when the model knows its posterior variance (None: σ_q).
pub fn proposal_sd(
    model: &dyn Denoiser,
    z: &[f32],
    shape: Shape,
    lt: f64,
    c: &StepCoeffs,
) -> Result<Option<Vec<f32>>> {
    let Some(var) = model.posterior_var(z, shape, lt) else {
        return Ok(None);
    };
    Ok(Some(
        var?.iter()
            .map(|&v| (c.var + c.b * c.b * v.max(0.0) as f64).sqrt() as f32)
            .collect(),
    ))
}

/// Ancestral DDPM sampling over the λ grid `grid` (increasing), with the model's reverse-step
/// variance when it knows one; returns x̂ at the last point.
/// Noise comes from the shared seed, so decoding is deterministic.
pub fn sample_sde(
    model: &dyn Denoiser,
    z: &[f32],
    shape: Shape,
    grid: &[f64],
    seed: u64,
    tick: &mut dyn FnMut(),
) -> Result<Vec<f32>> {
    let mut z = z.to_vec();
    let mut eps = vec![0f32; z.len()];
    for (i, w) in grid.windows(2).enumerate() {
        let (mu, _, c) = reverse_mean(model, &z, shape, w[0], w[1])?;
        let sd = proposal_sd(model, &z, shape, w[0], &c)?;
        Stream::new(seed, Purpose::SdeNoise, i as u32, 0, 0).fill_normal(&mut eps);
        let s = c.std();
        z = mu
            .iter()
            .zip(&eps)
            .enumerate()
            .map(|(j, (&m, &e))| {
                let s = sd.as_ref().map_or(s, |v| v[j] as f64);
                (m as f64 + s * e as f64) as f32
            })
            .collect();
        tick();
    }
    model.predict_x(&z, shape, *grid.last().unwrap())
}

/// Probability-flow ODE from z at `grid[0]` to `grid[last]`; returns x̂ at the last point.
pub fn sample_ode(
    model: &dyn Denoiser,
    z: &[f32],
    shape: Shape,
    grid: &[f64],
    solver: OdeSolver,
    tick: &mut dyn FnMut(),
) -> Result<Vec<f32>> {
    let mut z = z.to_vec();
    let mut prev: Option<(Vec<f32>, f64)> = None; // (x̂, h) of the previous step
    for w in grid.windows(2) {
        let (lt, ls) = (w[0], w[1]);
        let xh = model.predict_x(&z, shape, lt)?;
        let (_, st) = alpha_sigma(lt);
        let (as_, ss) = alpha_sigma(ls);
        let h = 0.5 * (ls - lt); // step in half-log-SNR
        let r = ss / st;
        let k = as_ * -libm::expm1(-h);
        let d: Vec<f32> = match (&prev, solver) {
            (Some((xp, hp)), OdeSolver::DpmPp2m) => {
                // D = (1 + 1/(2r)) x̂_i − 1/(2r) x̂_{i−1}, r = h_{i−1}/h_i
                let c2 = h / (2.0 * hp);
                let c1 = 1.0 + c2;
                xh.iter()
                    .zip(xp)
                    .map(|(&a, &b)| (c1 * a as f64 - c2 * b as f64) as f32)
                    .collect()
            }
            _ => xh.clone(),
        };
        z = z
            .iter()
            .zip(&d)
            .map(|(&z, &d)| (r * z as f64 + k * d as f64) as f32)
            .collect();
        prev = Some((xh, h));
        tick();
    }
    model.predict_x(&z, shape, *grid.last().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoiser::gaussian::DiagonalGaussian;
    use crate::schedule::logsnr_grid;

    /// For Gaussian data the flow ODE maps z_t to x deterministically; with many steps the
    /// second-order solver must match the closed form far better than DDIM at few steps.
    #[test]
    fn ode_matches_the_closed_form_gaussian_flow() {
        let var = vec![0.3, 0.02, 1e-3];
        let g = DiagonalGaussian::new(vec![0.1, -0.2, 0.0], var.clone());
        let shape = Shape::new(1, 1, 3);
        let l0 = 0.5f64;
        let z = [0.4f32, -0.9, 1.3];
        // exact flow: x = m + sqrt(v/(α²v+σ²))·(z − α m)
        let (a, s) = alpha_sigma(l0);
        let exact: Vec<f64> = (0..3)
            .map(|i| {
                g.mean[i]
                    + (var[i] / (a * a * var[i] + s * s)).sqrt() * (z[i] as f64 - a * g.mean[i])
            })
            .collect();
        let err = |solver, n| {
            let x =
                sample_ode(&g, &z, shape, &logsnr_grid(l0, 16.0, n), solver, &mut || {}).unwrap();
            x.iter()
                .zip(&exact)
                .map(|(&x, &e)| (x as f64 - e).abs())
                .fold(0.0, f64::max)
        };
        assert!(
            err(OdeSolver::DpmPp2m, 200) < 2e-3,
            "{}",
            err(OdeSolver::DpmPp2m, 200)
        );
        assert!(err(OdeSolver::DpmPp2m, 20) < err(OdeSolver::Ddim, 20));
    }
}
