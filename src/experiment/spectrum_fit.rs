//! Fits the `gauss-spectrum` model to photos: per decorrelated colour channel, the power of
//! orthonormal-DCT coefficients against radial frequency, `A/(f² + f0²)^(γ/2)` by least
//! squares in log power (grid over γ and f0, closed form for A).
use crate::denoiser::gaussian::{SpectrumParams, dct2d};
use crate::image_io::Image;
use anyhow::{Result, bail};

const BINS: usize = 40;

/// Fits to `images` (each contributes its centre `tile`×`tile` crop after `down`× box
/// downsampling).
/// The centre `tile`×`tile` crop of `img` after `down`× box downsampling (planar, f64), or
/// None when the image is too small. Box downsampling washes out JPEG artefacts and sensor
/// noise, as in the dev24 preparation.
pub fn centre_tile(img: &Image, tile: usize, down: usize) -> Option<Vec<f64>> {
    let s = img.shape;
    let (h, w) = (s.h / down, s.w / down);
    if h < tile || w < tile {
        return None;
    }
    let (oy, ox) = ((h - tile) / 2, (w - tile) / 2);
    let mut t = vec![0.0f64; 3 * tile * tile];
    for c in 0..3 {
        for y in 0..tile {
            for x in 0..tile {
                let mut acc = 0.0;
                for dy in 0..down {
                    for dx in 0..down {
                        acc += img.data
                            [c * s.h * s.w + ((oy + y) * down + dy) * s.w + (ox + x) * down + dx]
                            as f64;
                    }
                }
                t[c * tile * tile + y * tile + x] = acc / (down * down) as f64;
            }
        }
    }
    Some(t)
}

pub fn fit(images: &[Image], tile: usize, down: usize) -> Result<SpectrumParams> {
    let r3 = 1.0 / 3f64.sqrt();
    let r2 = 1.0 / 2f64.sqrt();
    let r6 = 1.0 / 6f64.sqrt();
    let color = [[r3, r3, r3], [r2, 0.0, -r2], [r6, -2.0 * r6, r6]];
    let tiles: Vec<Vec<f64>> = images
        .iter()
        .filter_map(|img| centre_tile(img, tile, down))
        .collect();
    if tiles.is_empty() {
        bail!("no image is large enough for a {tile}×{tile} tile after {down}× downsampling");
    }
    let n = tile * tile;
    let mut mean = [0.0; 3];
    for t in &tiles {
        for c in 0..3 {
            mean[c] += t[c * n..(c + 1) * n].iter().sum::<f64>() / (n * tiles.len()) as f64;
        }
    }
    // radial-bin average power per decorrelated channel (DC excluded)
    let mut pow = vec![[0.0f64; BINS]; 3];
    let mut cnt = [0usize; BINS];
    let fmax = 0.5f64.hypot(0.5);
    let bin_of = |ky: usize, kx: usize| {
        let f = (ky as f64 / (2.0 * tile as f64)).hypot(kx as f64 / (2.0 * tile as f64));
        ((libm::log(f / (0.5 / tile as f64)) / libm::log(fmax / (0.5 / tile as f64)))
            * (BINS - 1) as f64)
            .round() as usize
    };
    for (ti, t) in tiles.iter().enumerate() {
        for o in 0..3 {
            let mut plane: Vec<f64> = (0..n)
                .map(|i| (0..3).map(|k| color[o][k] * (t[k * n + i] - mean[k])).sum())
                .collect();
            dct2d(&mut plane, tile, tile, false);
            for ky in 0..tile {
                for kx in 0..tile {
                    if ky + kx == 0 {
                        continue;
                    }
                    let b = bin_of(ky, kx).min(BINS - 1);
                    pow[o][b] += plane[ky * tile + kx].powi(2);
                    if o == 0 && ti == 0 {
                        cnt[b] += 1;
                    }
                }
            }
        }
    }
    let floor = (2.0f64 / 255.0).powi(2) / 12.0;
    let mut p = SpectrumParams {
        color,
        mean,
        amp: [0.0; 3],
        gamma: [0.0; 3],
        f0: [0.0; 3],
        floor,
    };
    for (o, pow_o) in pow.iter().enumerate() {
        // (log f², log power) per bin, centre frequency from the bin index
        let pts: Vec<(f64, f64)> = (0..BINS)
            .filter(|&b| cnt[b] > 0 && pow_o[b] > 0.0)
            .map(|b| {
                let f = (0.5 / tile as f64)
                    * libm::exp(
                        b as f64 / (BINS - 1) as f64 * libm::log(fmax / (0.5 / tile as f64)),
                    );
                (f * f, libm::log(pow_o[b] / (cnt[b] * tiles.len()) as f64))
            })
            .collect();
        let mut best = (f64::MAX, 0.0, 0.0, 0.0);
        for gi in 0..=60 {
            let g = 1.0 + gi as f64 * 0.05;
            for fi in 0..=40 {
                let f0 = 1e-4 * libm::pow(10.0, fi as f64 * 0.075);
                // log P = log A − (g/2) log(f² + f0²)  (+ floor ignored in the fit)
                let la: f64 = pts
                    .iter()
                    .map(|&(f2, lp)| lp + 0.5 * g * libm::log(f2 + f0 * f0))
                    .sum::<f64>()
                    / pts.len() as f64;
                let err: f64 = pts
                    .iter()
                    .map(|&(f2, lp)| (lp - la + 0.5 * g * libm::log(f2 + f0 * f0)).powi(2))
                    .sum();
                if err < best.0 {
                    best = (err, libm::exp(la), g, f0);
                }
            }
        }
        p.amp[o] = best.1;
        p.gamma[o] = best.2;
        p.f0[o] = best.3;
    }
    Ok(p)
}
