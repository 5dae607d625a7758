//! How much rate a better-calibrated proposal variance could save on photos: the step KLs of
//! DDPM's proposal N(μ_p, σ_q²) against an oracle that gives each radial DCT band of each
//! channel its own proposal variance σ_q²(1 + r), r = the band's mean squared offset
//! ‖μ_q − μ_p‖²/σ_q² (the best isotropic-per-band variance, so an upper bound on what band
//! variances calibrated on training photos could save). Along one exact q-trajectory per image
//! (z_s drawn from q itself, no channel coding), the default 24-step schedule.
//!
//! `cargo run --release --example proposal_gap -- DIR MODEL`
use diffc::denoiser::blend::dct_band;
use diffc::denoiser::gaussian::dct2d;
use diffc::rng::{Purpose, Stream};
use diffc::schedule::StepCoeffs;
use std::path::Path;

/// Band edges (cycles/pixel), the default blend's.
const EDGES: [f64; 6] = [0.0078125, 0.015625, 0.03125, 0.0625, 0.125, 0.25];

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let model = diffc::denoiser::load(&a[2], &candle_core::Device::Cpu)?;
    let images = diffc::eval::list_images(Path::new(&a[1]))?;
    let p = diffc::codec::diffc::DiffcParams::default();
    let grid = p.schedule.grid(p.steps);
    let nb = EDGES.len() + 1;
    println!("image step logsnr_s kl_ddpm_bits kl_band_oracle_bits cum_ddpm cum_oracle");
    for (k, path) in images.iter().enumerate() {
        let img = diffc::image_io::load(path)?;
        let (s, x) = (img.shape, &img.data);
        let (h, w) = (s.h, s.w);
        let band: Vec<usize> = (0..h * w)
            .map(|i| dct_band(&EDGES, i / w, i % w, h, w))
            .collect();
        let mut z = vec![0f32; s.len()];
        Stream::new(k as u64, Purpose::InitLatent, 0, 0, 0).fill_normal(&mut z);
        let (mut cum_e, mut cum_o) = (0.0, 0.0);
        for i in 0..p.steps {
            let (lt, ls) = (grid[i], grid[i + 1]);
            let c = StepCoeffs::new(lt, ls);
            let xh = model.predict_x(&z, s, lt)?;
            // offsets μ_q − μ_p = b (x − x̂), in units of σ_q
            let d: Vec<f64> = x
                .iter()
                .zip(&xh)
                .map(|(&x, &y)| c.b * (x - y) as f64 / c.std())
                .collect();
            let kl_e = d.iter().map(|v| v * v).sum::<f64>() / 2.0;
            let mut kl_o = 0.0;
            for plane in d.chunks(h * w) {
                let mut p = plane.to_vec();
                dct2d(&mut p, h, w, false);
                let (mut sum, mut n) = (vec![0.0; nb], vec![0usize; nb]);
                for (v, &b) in p.iter().zip(&band) {
                    sum[b] += v * v;
                    n[b] += 1;
                }
                for b in 0..nb {
                    if n[b] > 0 {
                        kl_o += n[b] as f64 / 2.0 * (sum[b] / n[b] as f64).ln_1p();
                    }
                }
            }
            let ln2 = std::f64::consts::LN_2;
            cum_e += kl_e / ln2;
            cum_o += kl_o / ln2;
            println!(
                "{} {} {:.3} {:.1} {:.1} {:.1} {:.1}",
                path.file_name().unwrap().to_string_lossy(),
                i + 1,
                ls,
                kl_e / ln2,
                kl_o / ln2,
                cum_e,
                cum_o
            );
            // an exact sample of q(z_s | z_t, x)
            let mut e = vec![0f32; s.len()];
            Stream::new(k as u64, Purpose::Experiment, i as u32, 7, 0).fill_normal(&mut e);
            z = z
                .iter()
                .zip(x)
                .zip(&e)
                .map(|((&z, &x), &e)| (c.a * z as f64 + c.b * x as f64 + c.std() * e as f64) as f32)
                .collect();
        }
    }
    Ok(())
}
