//! Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) on 8-bit RGB.
//!
//! The usual definition, as in the TF / `pytorch-msssim` implementations:
//! - data range 255, `C1 = (0.01·255)²`, `C2 = (0.03·255)²`;
//! - 11-tap Gaussian window, σ = 1.5, applied separably with *valid* convolution (no padding);
//! - 5 scales, weights `[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]`; between scales a 2×2
//!   average pool (odd sizes are zero-padded by one at the bottom/right and the pad counted
//!   in the average, as `avg_pool2d(kernel 2, padding = size % 2)` does);
//! - per channel `Π_{s<5} relu(cs_s)^{w_s} · relu(ssim_5)^{w_5}`, then the mean over R, G, B.
//!
//! Needs a smaller side > 160 (the window must fit at the coarsest scale); smaller images
//! give `None`. Pinned against `pytorch-msssim` by `tests/metrics_ms_ssim.rs`.
use crate::image_io::Image;
use anyhow::{Result, bail};

pub const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
pub const WIN: usize = 11;
pub const SIGMA: f64 = 1.5;
/// Smallest accepted side: `(WIN - 1) · 2^4 + 1`.
pub const MIN_SIDE: usize = (WIN - 1) * 16 + 1;

fn gaussian_window() -> [f64; WIN] {
    let mut g = [0.0; WIN];
    let c = (WIN / 2) as f64;
    for (i, v) in g.iter_mut().enumerate() {
        let x = i as f64 - c;
        *v = (-(x * x) / (2.0 * SIGMA * SIGMA)).exp();
    }
    let s: f64 = g.iter().sum();
    g.iter_mut().for_each(|v| *v /= s);
    g
}

/// Separable valid Gaussian filter of an `h × w` plane.
fn filter(x: &[f64], h: usize, w: usize, g: &[f64; WIN]) -> (Vec<f64>, usize, usize) {
    let (oh, ow) = (h + 1 - WIN, w + 1 - WIN);
    let mut tmp = vec![0.0; h * ow];
    for y in 0..h {
        let row = &x[y * w..(y + 1) * w];
        for xo in 0..ow {
            let mut s = 0.0;
            for k in 0..WIN {
                s += g[k] * row[xo + k];
            }
            tmp[y * ow + xo] = s;
        }
    }
    let mut out = vec![0.0; oh * ow];
    for yo in 0..oh {
        for xo in 0..ow {
            let mut s = 0.0;
            for k in 0..WIN {
                s += g[k] * tmp[(yo + k) * ow + xo];
            }
            out[yo * ow + xo] = s;
        }
    }
    (out, oh, ow)
}

/// Mean SSIM and mean contrast-structure term of one plane pair at one scale.
fn ssim_cs(a: &[f64], b: &[f64], h: usize, w: usize, g: &[f64; WIN]) -> (f64, f64) {
    const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
    const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
    let aa: Vec<f64> = a.iter().map(|v| v * v).collect();
    let bb: Vec<f64> = b.iter().map(|v| v * v).collect();
    let ab: Vec<f64> = a.iter().zip(b).map(|(x, y)| x * y).collect();
    let (mu1, oh, ow) = filter(a, h, w, g);
    let (mu2, _, _) = filter(b, h, w, g);
    let (s11, _, _) = filter(&aa, h, w, g);
    let (s22, _, _) = filter(&bb, h, w, g);
    let (s12, _, _) = filter(&ab, h, w, g);
    let n = (oh * ow) as f64;
    let (mut ssim, mut cs) = (0.0, 0.0);
    for i in 0..oh * ow {
        let (m1, m2) = (mu1[i], mu2[i]);
        let v1 = s11[i] - m1 * m1;
        let v2 = s22[i] - m2 * m2;
        let c12 = s12[i] - m1 * m2;
        let csm = (2.0 * c12 + C2) / (v1 + v2 + C2);
        cs += csm;
        ssim += (2.0 * m1 * m2 + C1) / (m1 * m1 + m2 * m2 + C1) * csm;
    }
    (ssim / n, cs / n)
}

/// 2×2 average pool; an odd side gets one zero row/column (counted in the mean).
fn downsample(x: &[f64], h: usize, w: usize) -> (Vec<f64>, usize, usize) {
    let (ph, pw) = (h % 2, w % 2);
    // avg_pool2d with padding p on both sides and kernel 2, stride 2:
    // out = floor((h + 2p - 2)/2) + 1, window starts at -p.
    let oh = (h + 2 * ph - 2) / 2 + 1;
    let ow = (w + 2 * pw - 2) / 2 + 1;
    let mut out = vec![0.0; oh * ow];
    for yo in 0..oh {
        for xo in 0..ow {
            let mut s = 0.0;
            for dy in 0..2 {
                for dx in 0..2 {
                    let y = (2 * yo + dy) as isize - ph as isize;
                    let xx = (2 * xo + dx) as isize - pw as isize;
                    if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                        s += x[y as usize * w + xx as usize];
                    }
                }
            }
            out[yo * ow + xo] = s / 4.0;
        }
    }
    (out, oh, ow)
}

/// MS-SSIM of two 8-bit grey planes (values 0..=255), `h × w`, `h, w ≥ MIN_SIDE`.
pub fn ms_ssim_plane(a: &[f64], b: &[f64], h: usize, w: usize) -> f64 {
    let g = gaussian_window();
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    let (mut h, mut w) = (h, w);
    let mut val = 1.0;
    for (s, &wt) in WEIGHTS.iter().enumerate() {
        let (ssim, cs) = ssim_cs(&a, &b, h, w, &g);
        if s + 1 < WEIGHTS.len() {
            val *= cs.max(0.0).powf(wt);
            let (na, nh, nw) = downsample(&a, h, w);
            let (nb, _, _) = downsample(&b, h, w);
            a = na;
            b = nb;
            h = nh;
            w = nw;
        } else {
            val *= ssim.max(0.0).powf(wt);
        }
    }
    val
}

/// MS-SSIM of two RGB images on 8-bit values, mean over channels.
/// `Ok(None)` when the smaller side is below [`MIN_SIDE`].
pub fn ms_ssim(a: &Image, b: &Image) -> Result<Option<f64>> {
    if a.shape != b.shape {
        bail!("MS-SSIM: shapes differ ({:?} vs {:?})", a.shape, b.shape);
    }
    let s = a.shape;
    if s.h.min(s.w) < MIN_SIDE {
        return Ok(None);
    }
    let pa = super::planes_u8(a);
    let pb = super::planes_u8(b);
    let n = s.h * s.w;
    let mut total = 0.0;
    for c in 0..s.c {
        total += ms_ssim_plane(&pa[c * n..(c + 1) * n], &pb[c * n..(c + 1) * n], s.h, s.w);
    }
    Ok(Some(total / s.c as f64))
}
