//! [`Denoiser`] adapter over the trained pixel-space U-Net ([`crate::nn::unet`]).
//!
//! Any H×W: the input is reflect-padded at the bottom/right to the network's multiple and
//! the output cropped back. The network predicts v; x̂ = α z − σ v̂, clamped to [−1, 1].
//!
//! A conditional checkpoint (HFD's refiner, `cond_channels > 0`) loads as a [`UNetDenoiser`]
//! too, but denoises only through a [`CondDenoiser`], which binds one condition image
//! (c = 2·X̂_MSE − 1) to it and is then an ordinary [`Denoiser`] for images of that size.
use super::Denoiser;
use crate::image_io::Shape;
use crate::nn::unet::UNet;
use anyhow::{Result, bail};
use candle_core::{Device, Tensor};
use std::path::Path;
use std::sync::Arc;

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
        Ok(UNetDenoiser {
            net,
            device: device.clone(),
            name,
            fingerprint: crc32fast::hash(&bytes),
        })
    }

    /// Loads a checkpoint found by [`crate::checkpoints::find`].
    pub fn from_checkpoint(ck: &crate::checkpoints::Checkpoint, device: &Device) -> Result<Self> {
        Ok(UNetDenoiser {
            net: UNet::from_bytes(&ck.bytes, &ck.origin(), device)?,
            device: device.clone(),
            name: ck.name.clone(),
            fingerprint: crc32fast::hash(&ck.bytes),
        })
    }

    pub fn net(&self) -> &UNet {
        &self.net
    }

    /// Channels of the condition image the model needs (0: unconditional).
    pub fn cond_channels(&self) -> usize {
        self.net.config().cond_channels
    }

    /// Raw network output v̂ for planar `z` (any H×W; padded and cropped internally).
    /// Unconditional models only; a conditional one goes through [`CondDenoiser`].
    pub fn predict_v(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        if self.cond_channels() > 0 {
            bail!(
                "model {} is conditional ({} condition channels, HFD refiner): use it through a CondDenoiser",
                self.name,
                self.cond_channels()
            );
        }
        self.run(z, shape, None, logsnr)
    }

    /// Conditional models: x̂ for planar `z` of `shape` given the planar condition `cond`
    /// (`cond_channels × h × w`, in [−1, 1]), without binding it ([`CondDenoiser`] binds one
    /// and pads it once). Same numbers as `CondDenoiser::new(..).predict_x(..)`.
    pub fn predict_x_cond(
        &self,
        z: &[f32],
        cond: &[f32],
        shape: Shape,
        logsnr: f64,
    ) -> Result<Vec<f32>> {
        let c = self.cond_tensor(cond, shape)?;
        let v = self.run(z, shape, Some(&c), logsnr)?;
        Ok(x_from_v(z, &v, logsnr))
    }

    /// Validates a condition for inputs of `shape` and pads it like z: (1, nc, hp, wp).
    fn cond_tensor(&self, cond: &[f32], shape: Shape) -> Result<Tensor> {
        let nc = self.cond_channels();
        if nc == 0 {
            bail!(
                "model {} is unconditional: it takes no condition image",
                self.name
            );
        }
        let (hp, wp) = self.check_shape(shape)?;
        let Shape { h, w, .. } = shape;
        if cond.len() != nc * h * w {
            bail!(
                "condition has {} values, model {} needs {nc}×{h}×{w} = {}",
                cond.len(),
                self.name,
                nc * h * w
            );
        }
        if let Some(bad) = cond
            .iter()
            .find(|v| !(v.is_finite() && v.abs() <= 1.0 + 1e-3))
        {
            bail!("condition values must lie in [-1, 1] (c = 2·x − 1), found {bad}");
        }
        let padded = reflect_pad(cond, nc, h, w, hp, wp);
        Ok(Tensor::from_vec(padded, (1, nc, hp, wp), &self.device)?)
    }

    fn check_shape(&self, shape: Shape) -> Result<(usize, usize)> {
        let Shape { c, h, w } = shape;
        let cfg = self.net.config();
        if c != cfg.in_channels {
            bail!(
                "model {} takes {} channels, got {c}",
                self.name,
                cfg.in_channels
            );
        }
        if h == 0 || w == 0 {
            bail!("empty input {h}×{w}");
        }
        let m = cfg.multiple();
        Ok((h.div_ceil(m) * m, w.div_ceil(m) * m))
    }

    /// `cond`: the already padded (1, cond_channels, hp, wp) condition, if any.
    fn run(&self, z: &[f32], shape: Shape, cond: Option<&Tensor>, logsnr: f64) -> Result<Vec<f32>> {
        let Shape { c, h, w } = shape;
        if z.len() != shape.len() {
            bail!(
                "input has {} values, shape {c}×{h}×{w} needs {}",
                z.len(),
                shape.len()
            );
        }
        let (hp, wp) = self.check_shape(shape)?;
        let padded = reflect_pad(z, c, h, w, hp, wp);
        let x = Tensor::from_vec(padded, (1, c, hp, wp), &self.device)?;
        let l = Tensor::from_vec(vec![logsnr as f32], 1, &self.device)?;
        let v = self
            .net
            .forward_cond(&x, &l, cond)?
            .flatten_all()?
            .to_vec1::<f32>()?;
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

/// x̂ = clamp(α z − σ v̂, −1, 1) in f64, as the trainer's fixture computes it.
fn x_from_v(z: &[f32], v: &[f32], logsnr: f64) -> Vec<f32> {
    let mut x = crate::diffusion::x_from_v(z, v, logsnr);
    for x in &mut x {
        *x = x.clamp(-1.0, 1.0);
    }
    x
}

impl Denoiser for UNetDenoiser {
    fn name(&self) -> &str {
        &self.name
    }

    fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// Images with a side above [`super::tiled::TILE`] go through the network in blended tiles.
    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        super::tiled::predict_tiled(
            z,
            shape,
            super::tiled::TILE,
            super::tiled::OVERLAP,
            |zt, ts, _, _| {
                let v = self.predict_v(zt, ts, logsnr)?;
                Ok(x_from_v(zt, &v, logsnr))
            },
        )
    }
}

/// A conditional U-Net (HFD's refiner) bound to one condition image: a [`Denoiser`] of
/// p(x | c) for inputs of exactly the bound shape.
///
/// `cond` is planar `cond_channels×h×w` in [−1, 1] (HFD: c = 2·X̂_MSE − 1 with X̂_MSE the MSE
/// codec's reconstruction in [0, 1]); it is reflect-padded once, exactly like z. The name and
/// fingerprint are the base checkpoint's (its file stem and the CRC-32 of its bytes).
/// Sampling starts at [`CondDenoiser::logsnr_min`] from z = α·c + σ·ε and ends at
/// [`CondDenoiser::logsnr_max`], the range the refiner was trained on.
pub struct CondDenoiser {
    base: Arc<UNetDenoiser>,
    cond: Vec<f32>,
    cond_padded: Tensor,
    shape: Shape,
}

impl CondDenoiser {
    /// Binds `cond` (planar, `base.cond_channels() × shape.h × shape.w`, finite, in [−1, 1])
    /// to the conditional model `base` for inputs z of `shape` (`in_channels × h × w`).
    /// Errors if `base` is unconditional or any size disagrees.
    pub fn new(base: Arc<UNetDenoiser>, cond: Vec<f32>, shape: Shape) -> Result<Self> {
        let cond_padded = base.cond_tensor(&cond, shape)?;
        Ok(CondDenoiser {
            base,
            cond,
            cond_padded,
            shape,
        })
    }

    pub fn base(&self) -> &Arc<UNetDenoiser> {
        &self.base
    }

    /// The bound condition, planar `cond_channels×h×w`.
    pub fn cond(&self) -> &[f32] {
        &self.cond
    }

    /// The shape of z this denoiser accepts.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Lowest log-SNR of the training range: where sampling starts, from z = α·c + σ·ε.
    pub fn logsnr_min(&self) -> f64 {
        self.base.net.config().logsnr_min
    }

    /// Highest log-SNR of the training range: where sampling ends.
    pub fn logsnr_max(&self) -> f64 {
        self.base.net.config().logsnr_max
    }

    /// Raw network output v̂ for planar `z` of the bound shape.
    pub fn predict_v(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        if shape != self.shape {
            bail!(
                "conditional denoiser was bound to {}×{}×{}, got {}×{}×{}",
                self.shape.c,
                self.shape.h,
                self.shape.w,
                shape.c,
                shape.h,
                shape.w
            );
        }
        self.base.run(z, shape, Some(&self.cond_padded), logsnr)
    }
}

impl Denoiser for CondDenoiser {
    fn name(&self) -> &str {
        &self.base.name
    }

    fn fingerprint(&self) -> u32 {
        self.base.fingerprint
    }

    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        let v = self.predict_v(z, shape, logsnr)?;
        Ok(x_from_v(z, &v, logsnr))
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
        assert_eq!(
            p,
            [
                0., 1., 2., 1., 3., 4., 5., 4., 0., 1., 2., 1., 3., 4., 5., 4.
            ]
        );
    }
}
