//! [`Denoiser`] adapter over the trained pixel-space U-Net ([`crate::nn::unet`]).
//!
//! Any H×W: the input is reflect-padded at the bottom/right to the network's multiple and
//! the output cropped back. The network predicts v; x̂ = α z − σ v̂, clamped to [−1, 1].
use super::Denoiser;
use super::param::alpha_sigma;
use crate::image_io::Shape;
use crate::nn::unet::UNet;
use anyhow::{Result, bail};
use candle_core::{Device, Tensor};
use std::path::Path;

/// A trained U-Net checkpoint used as a denoiser.
pub struct UNetDenoiser {
    net: UNet,
    device: Device,
    name: String,
    fingerprint: u32,
}

impl UNetDenoiser {
    /// Loads `path` (a `.safetensors` checkpoint with its architecture in the metadata).
    /// The name is the file stem; the fingerprint is the CRC-32 of the file bytes.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (net, bytes) = UNet::load(path, device)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unet".to_string());
        Ok(UNetDenoiser { net, device: device.clone(), name, fingerprint: crc32fast::hash(&bytes) })
    }

    pub fn net(&self) -> &UNet {
        &self.net
    }

    /// Raw network output v̂ for planar `z` (any H×W; padded and cropped internally).
    pub fn predict_v(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        let Shape { c, h, w } = shape;
        if z.len() != shape.len() {
            bail!("input has {} values, shape {c}×{h}×{w} needs {}", z.len(), shape.len());
        }
        let cfg = self.net.config();
        if c != cfg.in_channels {
            bail!("model {} takes {} channels, got {c}", self.name, cfg.in_channels);
        }
        if h == 0 || w == 0 {
            bail!("empty input {h}×{w}");
        }
        let m = cfg.multiple();
        let (hp, wp) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
        let padded = reflect_pad(z, c, h, w, hp, wp);
        let x = Tensor::from_vec(padded, (1, c, hp, wp), &self.device)?;
        let l = Tensor::from_vec(vec![logsnr as f32], 1, &self.device)?;
        let v = self.net.forward(&x, &l)?.flatten_all()?.to_vec1::<f32>()?;
        if hp == h && wp == w {
            return Ok(v);
        }
        let mut out = Vec::with_capacity(shape.len());
        for ch in 0..c {
            for y in 0..h {
                let row = (ch * hp + y) * wp;
                out.extend_from_slice(&v[row..row + w]);
            }
        }
        Ok(out)
    }
}

/// Mirror index without repeating the edge (numpy's `reflect`), for any overshoot.
fn reflect(i: usize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let p = 2 * (n - 1);
    let r = i % p;
    if r < n { r } else { p - r }
}

/// Pads planar `c×h×w` to `c×hp×wp` by reflection at the bottom and right.
fn reflect_pad(z: &[f32], c: usize, h: usize, w: usize, hp: usize, wp: usize) -> Vec<f32> {
    if hp == h && wp == w {
        return z.to_vec();
    }
    let mut out = vec![0.0f32; c * hp * wp];
    for ch in 0..c {
        for y in 0..hp {
            let sy = reflect(y, h);
            let src = &z[(ch * h + sy) * w..(ch * h + sy + 1) * w];
            let dst = &mut out[(ch * hp + y) * wp..(ch * hp + y + 1) * wp];
            for (x, d) in dst.iter_mut().enumerate() {
                *d = src[reflect(x, w)];
            }
        }
    }
    out
}

impl Denoiser for UNetDenoiser {
    fn name(&self) -> &str {
        &self.name
    }

    fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        let v = self.predict_v(z, shape, logsnr)?;
        let (a, s) = alpha_sigma(logsnr);
        Ok(z
            .iter()
            .zip(&v)
            .map(|(&z, &v)| ((a * z as f64 - s * v as f64) as f32).clamp(-1.0, 1.0))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad(np.arange(3), (0, 7), mode="reflect") == [0 1 2 1 0 1 2 1 0 1]
        let got: Vec<usize> = (0..10).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]);
        assert_eq!(reflect(5, 1), 0);
        let z: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 1×2×3
        let p = reflect_pad(&z, 1, 2, 3, 4, 4);
        assert_eq!(p, [0., 1., 2., 1., 3., 4., 5., 4., 0., 1., 2., 1., 3., 4., 5., 4.]);
    }
}
