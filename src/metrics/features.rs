//! Patch protocol and feature extractors for FID/KID.
//!
//! Protocol: each image is cut into non-overlapping `p × p` patches on a grid from the
//! top-left corner (a remainder narrower than `p` at the right/bottom is dropped; an image
//! smaller than `p` on either side gives one patch: the whole image). Each patch, on the
//! 8-bit grid, is resized to the network's input size with bilinear interpolation
//! (half-pixel centres, edge clamping, no antialiasing: PyTorch's
//! `F.interpolate(mode="bilinear", align_corners=False)`), giving float values in 0..255.
use super::fid::Features;
use super::inception::Inception;
use crate::image_io::{Image, to_u8};
use anyhow::Result;

/// An 8-bit RGB patch as planar f32 (0..=255), `s × s` or `h × w`.
#[derive(Clone, Debug)]
pub struct Patch {
    pub h: usize,
    pub w: usize,
    /// CHW, 3 channels, values 0..=255.
    pub data: Vec<f32>,
}

/// Cuts an image into the protocol's patches (see the module docs).
pub fn patches(img: &Image, p: usize) -> Vec<Patch> {
    let s = img.shape;
    assert_eq!(s.c, 3, "patches: RGB images only");
    let (ny, nx) = if s.h < p || s.w < p {
        (1, 1)
    } else {
        (s.h / p, s.w / p)
    };
    let (ph, pw) = if s.h < p || s.w < p {
        (s.h, s.w)
    } else {
        (p, p)
    };
    let mut out = Vec::with_capacity(ny * nx);
    for by in 0..ny {
        for bx in 0..nx {
            let mut data = Vec::with_capacity(3 * ph * pw);
            for c in 0..3 {
                for y in 0..ph {
                    let row = c * s.h * s.w + (by * ph + y) * s.w + bx * pw;
                    data.extend(img.data[row..row + pw].iter().map(|&v| to_u8(v) as f32));
                }
            }
            out.push(Patch { h: ph, w: pw, data });
        }
    }
    out
}

/// Bilinear resize of planar data (`c` channels) to `oh × ow`, PyTorch
/// `align_corners=False` semantics without antialiasing.
pub fn resize_bilinear(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    fn taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let x = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (x.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, (x - i0 as f64) as f32)
            })
            .collect()
    }
    let ty = taps(h, oh);
    let tx = taps(w, ow);
    let mut out = vec![0.0f32; c * oh * ow];
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for (yo, &(y0, y1, ly)) in ty.iter().enumerate() {
            for (xo, &(x0, x1, lx)) in tx.iter().enumerate() {
                let top = plane[y0 * w + x0] * (1.0 - lx) + plane[y0 * w + x1] * lx;
                let bot = plane[y1 * w + x0] * (1.0 - lx) + plane[y1 * w + x1] * lx;
                out[ch * oh * ow + yo * ow + xo] = top * (1.0 - ly) + bot * ly;
            }
        }
    }
    out
}

/// Something that maps patches to feature vectors.
pub trait FeatureExtractor: Send + Sync {
    /// Short name recorded with the run (features of different extractors never mix).
    fn name(&self) -> String;
    fn dim(&self) -> usize;
    fn extract(&self, patches: &[Patch]) -> Result<Features>;
}

/// The FID network: 2048-d pool features of patches resized to 299 × 299.
pub struct InceptionFeatures {
    pub net: Inception,
    pub batch: usize,
}

impl FeatureExtractor for InceptionFeatures {
    fn name(&self) -> String {
        "inception-v3-fid".into()
    }
    fn dim(&self) -> usize {
        2048
    }
    fn extract(&self, patches: &[Patch]) -> Result<Features> {
        let mut data = Vec::with_capacity(patches.len() * 2048);
        for chunk in patches.chunks(self.batch.max(1)) {
            let mut input = Vec::with_capacity(chunk.len() * 3 * 299 * 299);
            for p in chunk {
                input.extend(resize_bilinear(&p.data, 3, p.h, p.w, 299, 299));
            }
            data.extend(self.net.features_u8(&input, chunk.len())?);
        }
        Features::new(2048, data)
    }
}

/// A tiny weight-free feature map for fast tests and smoke runs (*not* a realism metric):
/// each patch resized to 4 × 4 (48 values, scaled to [-1, 1]) plus per-channel standard
/// deviations of the full-resolution patch (3 values): 51 dimensions.
pub struct TinyFeatures;

impl FeatureExtractor for TinyFeatures {
    fn name(&self) -> String {
        "tiny-51".into()
    }
    fn dim(&self) -> usize {
        51
    }
    fn extract(&self, patches: &[Patch]) -> Result<Features> {
        let mut data = Vec::with_capacity(patches.len() * 51);
        for p in patches {
            data.extend(
                resize_bilinear(&p.data, 3, p.h, p.w, 4, 4)
                    .iter()
                    .map(|v| v / 127.5 - 1.0),
            );
            let n = p.h * p.w;
            for c in 0..3 {
                let pl = &p.data[c * n..(c + 1) * n];
                let m = pl.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = pl.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
                data.push((var.sqrt() / 127.5) as f32);
            }
        }
        Features::new(51, data)
    }
}
