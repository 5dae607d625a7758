//! Theis et al.'s Gaussian analysis, measured with the real codec and real files.
//!
//! Data: X ~ N(0, diag(v)), v_i = v0·(i+1)^−γ over `dims` coefficients (a 1/f-like
//! spectrum), `batch` independent samples per file. The exact denoiser is the model, so the
//! measured rate and distortion can be checked against closed forms.
use crate::channel::ChannelKind;
use crate::channel::pfr::PfrParams;
use crate::codec::diffc::{DiffC, DiffcParams};
use crate::codec::{DecodeOptions, DecoderKind, RateTarget};
use crate::denoiser::gaussian::DiagonalGaussian;
use crate::diffusion::alpha_sigma;
use crate::image_io::{Image, Shape};
use crate::rng::{Purpose, Stream};
use crate::schedule::Schedule;
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub dims: usize,
    pub v0: f64,
    pub gamma: f64,
    /// Samples per file (the file's "image" is batch × dims values).
    pub batch: usize,
    pub files: usize,
    /// Files on which PFR truncation is diagnosed (8× slower).
    pub diagnose_files: usize,
    pub steps: usize,
    pub lmin: f64,
    pub lmax: f64,
    /// Stopping points (log-SNR; each must lie on the encoder's grid of `steps` steps).
    pub stop_logsnrs: Vec<f64>,
    pub decode_steps: usize,
    pub chunk_kl: f64,
    pub padding: u32,
    /// Propose the exact reverse step N(a z + b x̂, σ_q² + b² Var[x|z]) (the model knows its
    /// posterior variance); false: the DDPM proposal with σ_q, whose step KLs exceed
    /// I(X; Z_t) by a discretisation gap that only vanishes with many steps.
    pub exact_proposal: bool,
    /// Decode-time realism values R at which MSE is measured (x̂ + R·(sample − x̂)).
    pub realism: Vec<f64>,
}

impl Config {
    pub fn full() -> Self {
        Config {
            dims: 48,
            v0: 0.25,
            gamma: 2.5,
            batch: 128,
            files: 16,
            diagnose_files: 1,
            steps: 20,
            lmin: -8.0,
            lmax: 12.0,
            stop_logsnrs: vec![-2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0],
            decode_steps: 300,
            chunk_kl: 6.0,
            padding: 8,
            exact_proposal: true,
            realism: vec![0.0, 0.25, 0.5, 0.75, 1.0],
        }
    }
    /// A small version for CI.
    pub fn quick() -> Self {
        Config {
            files: 4,
            diagnose_files: 0,
            steps: 10,
            stop_logsnrs: vec![2.0, 6.0, 12.0],
            decode_steps: 60,
            ..Self::full()
        }
    }
    /// Encoder steps at which the stopping points lie.
    pub fn stops(&self) -> Result<Vec<usize>> {
        let span = self.lmax - self.lmin;
        self.stop_logsnrs
            .iter()
            .map(|&l| {
                let f = (l - self.lmin) / span * self.steps as f64;
                let i = f.round();
                anyhow::ensure!(
                    (f - i).abs() < 1e-6 && i >= 1.0 && i <= self.steps as f64,
                    "stopping log-SNR {l} is not a point of the {}-step grid over [{}, {}]",
                    self.steps,
                    self.lmin,
                    self.lmax
                );
                Ok(i as usize)
            })
            .collect()
    }
    pub fn variances(&self) -> Vec<f64> {
        (0..self.dims)
            .map(|i| self.v0 * libm::pow(i as f64 + 1.0, -self.gamma))
            .collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub stop_step: usize,
    pub logsnr: f64,
    /// Per file (batch samples): I(X; Z_t) in bits.
    pub ideal_bits: f64,
    /// Σ step KLs actually incurred (bits, per file).
    pub kl_bits: f64,
    /// Real file size in bits (container + payload), per file, PFR channel.
    pub coded_bits: f64,
    /// Payload bits only (file minus container; includes the step-KL codes), per file.
    pub payload_bits: f64,
    /// The same trajectory coded with the UQ and mixed channels (file bits, per file).
    pub coded_bits_uq: f64,
    pub mse_a: f64,
    pub mse_f: f64,
    pub mse_a_theory: f64,
    pub mse_f_theory: f64,
    pub cov_rel_err_a: f64,
    pub cov_rel_err_f: f64,
    /// MSE against the realism knob R, beside its closed form.
    pub realism: Vec<RealismPoint>,
}

/// MSE of `x̂ + R·(x_decoded − x̂)` (see [`crate::codec::realism_blend`]) at one stop.
#[derive(Clone, Debug, Serialize)]
pub struct RealismPoint {
    pub r: f64,
    pub mse_a: f64,
    /// (1 + R²)·mmse: the SDE sample's error W is independent of X given z_t.
    pub mse_a_theory: f64,
    pub mse_f: f64,
    /// Mean over coefficients of v(1 − ρ²) + R²·v(1 − ρ)², ρ² = α²v/(α²v + σ²): the flow
    /// maps z_t linearly, so the error is the MMSE plus R² times the flow's excess.
    pub mse_f_theory: f64,
    /// Relative errors of the sample covariance at this R (against diag v).
    pub cov_rel_err_a: f64,
    pub cov_rel_err_f: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config: Config,
    pub truncated_chunk_fraction: f64,
    pub pfr_chunks_diagnosed: usize,
    pub points: Vec<Point>,
    pub seconds: f64,
}

/// Relative Frobenius error of the sample covariance (known zero mean) against diag(v).
fn cov_rel_err(samples: &[Vec<f32>], v: &[f64]) -> f64 {
    let d = v.len();
    let mut c = vec![0.0f64; d * d];
    let mut n = 0usize;
    for s in samples {
        for x in s.chunks_exact(d) {
            n += 1;
            for i in 0..d {
                for j in 0..d {
                    c[i * d + j] += x[i] as f64 * x[j] as f64;
                }
            }
        }
    }
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..d {
        for j in 0..d {
            let t = if i == j { v[i] } else { 0.0 };
            num += (c[i * d + j] / n as f64 - t).powi(2);
            den += t * t;
        }
    }
    (num / den).sqrt()
}

pub fn run(cfg: &Config, progress: bool) -> Result<Report> {
    let t0 = std::time::Instant::now();
    let v = cfg.variances();
    let stops = cfg.stops()?;
    let mut model = DiagonalGaussian::new(vec![0.0; cfg.dims], v.clone());
    model.exact_proposal = cfg.exact_proposal;
    let model = Arc::new(model);
    let total = cfg.dims * cfg.batch;
    // a 3×h×w "image" holding batch samples
    let w = 64.min(total / 3);
    let shape = Shape::new(3, total / 3 / w, w);
    assert_eq!(shape.len(), total, "dims·batch must be a multiple of 3·{w}");
    let params = |channel| DiffcParams {
        schedule: Schedule::LinearLogSnr {
            lmin: cfg.lmin,
            lmax: cfg.lmax,
        },
        steps: cfg.steps,
        channel,
        pfr: PfrParams {
            chunk_kl: cfg.chunk_kl,
            padding: cfg.padding,
            max_log2k: 20,
        },
        mixed_threshold: 0.0,
    };
    let grid = params(ChannelKind::Pfr)
        .canonical()
        .schedule
        .grid(cfg.steps);
    let np = stops.len();
    let (mut kl, mut coded, mut payload, mut coded_uq) =
        (vec![0.0; np], vec![0.0; np], vec![0.0; np], vec![0.0; np]);
    let mut recon_a: Vec<Vec<Vec<f32>>> = vec![vec![]; np];
    let mut recon_f: Vec<Vec<Vec<f32>>> = vec![vec![]; np];
    let (mut se_a, mut se_f) = (vec![0.0; np], vec![0.0; np]);
    let nr = cfg.realism.len();
    // per decoder (A, F), stop and realism: squared error and the blended reconstructions
    let mut se_r = [vec![vec![0.0; nr]; np], vec![vec![0.0; nr]; np]];
    let mut recon_r: [Vec<Vec<Vec<Vec<f32>>>>; 2] =
        [vec![vec![vec![]; nr]; np], vec![vec![vec![]; nr]; np]];
    let (mut chunks, mut truncated) = (0usize, 0usize);
    let bar = crate::progress::bar(progress, cfg.files, "gaussian");
    for f in 0..cfg.files {
        // the data: batch samples of N(0, diag v)
        let mut s = Stream::new(f as u64, Purpose::Experiment, 1, 0, 0);
        let x: Vec<f32> = (0..total)
            .map(|i| (s.normal() * v[i % cfg.dims].sqrt()) as f32)
            .collect();
        let img = Image {
            shape,
            data: x.clone(),
        };
        let mut codec = DiffC::new(model.clone());
        codec.seed = 1000 + f as u64;
        codec.params = params(ChannelKind::Pfr);
        codec.diagnose = f < cfg.diagnose_files;
        // decode to where x̂ = E[x|z] is exact up to MMSE(20) ≈ 2e−9, so the decoders'
        // MSEs compare with the theory of exact samples (ending at 14 would remove MMSE(14))
        codec.decode_lmax = 20.0;
        let last = *stops.iter().max().unwrap();
        let recs = codec.encode_trace(&img, RateTarget::Step(last), true)?;
        if codec.diagnose {
            let st = codec.pfr_stats.lock().unwrap();
            chunks += st.chunks;
            truncated += st.truncated;
        }
        let mut uq = DiffC::new(model.clone());
        uq.seed = codec.seed;
        uq.params = params(ChannelKind::Uq);
        let recs_uq = uq.encode_trace(&img, RateTarget::Step(last), false)?;
        for (p, &stop) in stops.iter().enumerate() {
            let rec = &recs[stop];
            kl[p] += recs[1..=stop].iter().map(|r| r.kl_bits).sum::<f64>();
            coded[p] += rec.file.len() as f64 * 8.0;
            let parsed = codec.parse(&rec.file)?;
            let overhead = rec.file.len() - parsed.payload.len();
            payload[p] += (rec.file.len() - overhead) as f64 * 8.0;
            coded_uq[p] += recs_uq[stop].file.len() as f64 * 8.0;
            // the decoder must rebuild exactly the encoder's latent
            let lat = codec.decode_latent(&rec.file)?;
            let (z, l) = (lat.z, lat.logsnr);
            anyhow::ensure!(
                Some(&z) == rec.z.as_ref(),
                "decoder latent differs from encoder's at stop {stop}"
            );
            let opts = |decoder, realism| DecodeOptions {
                decoder,
                steps: Some(cfg.decode_steps),
                progress: false,
                realism,
                ..DecodeOptions::default()
            };
            // the posterior mean: the decoder at realism 0
            let xhat = codec.reconstruct(&z, l, shape, &opts(DecoderKind::Ode, Some(0.0)), 0)?;
            for (k, (kind, out, se)) in [
                (DecoderKind::Sde, &mut recon_a, &mut se_a),
                (DecoderKind::Ode, &mut recon_f, &mut se_f),
            ]
            .into_iter()
            .enumerate()
            {
                let xr = codec.reconstruct(&z, l, shape, &opts(kind, None), codec.seed)?;
                for (ri, &r) in cfg.realism.iter().enumerate() {
                    let xb = crate::codec::realism_blend(&xhat, &xr, r);
                    se_r[k][p][ri] += xb
                        .iter()
                        .zip(&x)
                        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                        .sum::<f64>();
                    recon_r[k][p][ri].push(xb);
                }
                se[p] += xr
                    .iter()
                    .zip(&x)
                    .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                    .sum::<f64>();
                out[p].push(xr);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let nf = cfg.files as f64;
    let n_values = nf * total as f64;
    let points = stops
        .iter()
        .enumerate()
        .map(|(p, &stop)| {
            let l = grid[stop];
            let (a, s) = alpha_sigma(l);
            let snr = |vi: f64| a * a * vi / (s * s);
            let ideal: f64 = v
                .iter()
                .map(|&vi| 0.5 * libm::log2(1.0 + snr(vi)))
                .sum::<f64>()
                * cfg.batch as f64;
            let mmse: f64 = v
                .iter()
                .map(|&vi| vi * s * s / (a * a * vi + s * s))
                .sum::<f64>()
                / cfg.dims as f64;
            let mse_f_th: f64 = v
                .iter()
                .map(|&vi| 2.0 * vi * (1.0 - (a * a * vi / (a * a * vi + s * s)).sqrt()))
                .sum::<f64>()
                / cfg.dims as f64;
            let mse_f_r = |r: f64| -> f64 {
                v.iter()
                    .map(|&vi| {
                        let rho = (a * a * vi / (a * a * vi + s * s)).sqrt();
                        vi * (1.0 - rho * rho) + r * r * vi * (1.0 - rho).powi(2)
                    })
                    .sum::<f64>()
                    / cfg.dims as f64
            };
            let realism = cfg
                .realism
                .iter()
                .enumerate()
                .map(|(ri, &r)| RealismPoint {
                    r,
                    mse_a: se_r[0][p][ri] / n_values,
                    mse_a_theory: (1.0 + r * r) * mmse,
                    mse_f: se_r[1][p][ri] / n_values,
                    mse_f_theory: mse_f_r(r),
                    cov_rel_err_a: cov_rel_err(&recon_r[0][p][ri], &v),
                    cov_rel_err_f: cov_rel_err(&recon_r[1][p][ri], &v),
                })
                .collect();
            Point {
                realism,
                stop_step: stop,
                logsnr: l,
                ideal_bits: ideal,
                kl_bits: kl[p] / nf,
                coded_bits: coded[p] / nf,
                payload_bits: payload[p] / nf,
                coded_bits_uq: coded_uq[p] / nf,
                mse_a: se_a[p] / n_values,
                mse_f: se_f[p] / n_values,
                mse_a_theory: 2.0 * mmse,
                mse_f_theory: mse_f_th,
                cov_rel_err_a: cov_rel_err(&recon_a[p], &v),
                cov_rel_err_f: cov_rel_err(&recon_f[p], &v),
            }
        })
        .collect();
    Ok(Report {
        config: cfg.clone(),
        truncated_chunk_fraction: if chunks > 0 {
            truncated as f64 / chunks as f64
        } else {
            0.0
        },
        pfr_chunks_diagnosed: chunks,
        points,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// An SVG with the rate curves and the MSE curves against theory.
pub fn plot(r: &Report, path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let pts = &r.points;
    let lx = |p: &Point| p.logsnr;
    let (x0, x1) = (
        pts.iter().map(lx).fold(f64::MAX, f64::min),
        pts.iter().map(lx).fold(f64::MIN, f64::max),
    );
    let ymax = pts
        .iter()
        .map(|p| p.coded_bits.max(p.coded_bits_uq))
        .fold(1.0, f64::max);
    let mut c = ChartBuilder::on(&left)
        .caption("rate vs stopping log-SNR (bits/file)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (1.0..ymax * 1.2).log_scale())?;
    c.configure_mesh().x_desc("log-SNR").draw()?;
    for (name, col, f) in [
        (
            "ideal I(X;Z)",
            BLACK,
            (|p: &Point| p.ideal_bits) as fn(&Point) -> f64,
        ),
        ("Σ step KL", BLUE, |p: &Point| p.kl_bits),
        ("coded (PFR)", RED, |p: &Point| p.coded_bits),
        ("coded (UQ)", GREEN, |p: &Point| p.coded_bits_uq),
    ] {
        c.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.logsnr, f(p).max(1.0))),
            col,
        ))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], col));
    }
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    let ymin = pts
        .iter()
        .map(|p| p.mse_f.min(p.mse_f_theory))
        .fold(f64::MAX, f64::min);
    let ymaxm = pts
        .iter()
        .map(|p| p.mse_a.max(p.mse_a_theory))
        .fold(0.0, f64::max);
    let mut c = ChartBuilder::on(&right)
        .caption("MSE vs stopping log-SNR", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (ymin * 0.8..ymaxm * 1.2).log_scale())?;
    c.configure_mesh().x_desc("log-SNR").draw()?;
    for (name, col, f) in [
        ("DiffC-A", RED, (|p: &Point| p.mse_a) as fn(&Point) -> f64),
        ("2·MMSE (theory A)", MAGENTA, |p: &Point| p.mse_a_theory),
        ("DiffC-F", BLUE, |p: &Point| p.mse_f),
        ("flow theory (F)", CYAN, |p: &Point| p.mse_f_theory),
    ] {
        c.draw_series(LineSeries::new(pts.iter().map(|p| (p.logsnr, f(p))), col))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], col));
    }
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
