//! Pixel-space diffusion U-Net (candle), the Rust twin of `notebooks/train_unet.py`.
//!
//! Fully convolutional, no attention: any H×W that is a multiple of [`Config::multiple`]
//! (the denoiser adapter pads other sizes). Conditioned on the log-SNR λ through Fourier
//! features → MLP → per-resblock scale/shift. Predicts v = α ε − σ x.
//!
//! Layout, in forward order (names are the checkpoint keys):
//! - `temb.freqs` (F), `temb.lin1` (2F → E), `temb.lin2` (E → E), SiLU after each;
//! - optional input Fourier features (the phase of z on the 8-bit grid, see
//!   [`Config::input_fourier`]) as extra channels, then the condition image if the model has
//!   one ([`Config::cond_channels`], HFD's refiner), space-to-depth by `patch`, then
//!   `conv_in` ((3·k + cond_channels)·patch² → `channels[0]`, 3×3, k = 3 with the features,
//!   else 1);
//! - `down.{l}.{i}` resblocks at level l, then `down.{l}.ds` (3×3, stride 2) to level l+1;
//! - up the levels: `up.{l}.us` (1×1) at the coarse level, nearest 2× upsampling, add the
//!   skip from `down.{l}`, then `up.{l}.{i}` resblocks;
//! - `norm_out`, SiLU, `conv_out` (`channels[0]` → 3·patch², 3×3), depth-to-space;
//! - optionally `+ grid_gate(e)·v_grid(z, λ)` ([`Config::grid_skip`]).
//!
//! Resblock: `h = conv1(silu(norm1(x)))`, `h = norm2(h)·(1 + scale) + shift` with
//! `(scale, shift) = emb(e)`, `h = conv2(silu(h))`, output `skip(x) + h`.
//! The architecture is read from the checkpoint's safetensors metadata
//! (key [`CONFIG_KEY`], JSON), so a checkpoint is self-describing.
use super::cpu_kernels::{self, is_cpu_f32};
use anyhow::{Context, bail};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Linear, VarBuilder};
use serde::Deserialize;

/// safetensors `__metadata__` key holding the architecture as JSON.
pub const CONFIG_KEY: &str = "diffc_unet_config";

/// Architecture of a [`UNet`], as stored in the checkpoint metadata.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Config {
    pub arch: String,
    pub in_channels: usize,
    #[serde(default = "one")]
    pub patch: usize,
    /// Adds `g·sin 2πr`, `g·cos 2πr` of the input's phase on the 8-bit grid,
    /// `r = frac((z + 1)·127.5)`, gated by `g = sigmoid(λ − fourier_gate_logsnr)`.
    #[serde(default)]
    pub input_fourier: bool,
    #[serde(default)]
    pub fourier_gate_logsnr: f64,
    /// Adds `grid_gate(emb)·v_grid` to the output, where `v_grid` is the v implied by the
    /// posterior mean of x under a flat prior on the 8-bit grid (see [`grid_v`]).
    #[serde(default)]
    pub grid_skip: bool,
    /// Channels per resolution level, finest first.
    pub channels: Vec<usize>,
    /// Resblocks per level on the way down (and again on the way up, except the coarsest).
    pub num_res_blocks: Vec<usize>,
    pub groups: usize,
    pub emb_dim: usize,
    pub num_freqs: usize,
    pub gn_eps: f64,
    /// Network output; only `"v"` is supported.
    pub prediction: String,
    pub logsnr_min: f64,
    pub logsnr_max: f64,
    /// Channels of the condition image c (same H×W as z, values in [−1, 1]) that a
    /// conditional model (HFD's refiner: c = 2·X̂_MSE − 1) reads; 0 = unconditional.
    #[serde(default)]
    pub cond_channels: usize,
}

fn one() -> usize {
    1
}

impl Config {
    /// Reads the config from the metadata of safetensors file bytes.
    pub fn from_safetensors(bytes: &[u8]) -> anyhow::Result<Config> {
        let cfg: Config = super::config_from_metadata(bytes, CONFIG_KEY, "U-Net")?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.arch != "diffc-unet-v1" {
            bail!("unsupported U-Net architecture `{}`", self.arch);
        }
        if self.prediction != "v" {
            bail!("unsupported prediction target `{}`", self.prediction);
        }
        if self.channels.is_empty() || self.channels.len() != self.num_res_blocks.len() {
            bail!("channels and num_res_blocks must be non-empty and of equal length");
        }
        if self.patch == 0 || self.groups == 0 || self.channels.iter().any(|c| c % self.groups != 0)
        {
            bail!("every channel count must be a multiple of groups");
        }
        Ok(())
    }

    /// H and W must be multiples of this (space-to-depth and the downsamplings).
    pub fn multiple(&self) -> usize {
        self.patch << (self.channels.len() - 1)
    }

    /// Floating-point operations (2 per multiply-add) of the convolutions of one forward pass
    /// at `h`×`w` (multiples of [`Config::multiple`]), batch 1: `conv_in`, the resblocks'
    /// 3×3 convolutions and skips, the strided downsamplings, the 1×1 upsampling
    /// projections and `conv_out`; norms, activations and the embedding MLP (well under 1 %)
    /// are left out.
    pub fn forward_flops(&self, h: usize, w: usize) -> u64 {
        let (ch, nres) = (&self.channels, &self.num_res_blocks);
        let conv =
            |cin: usize, cout: usize, k: usize, px: usize| 2 * (cin * cout * k * k * px) as u64;
        let px = |l: usize| ((h / self.patch) >> l) * ((w / self.patch) >> l);
        let levels = ch.len();
        let mut f = conv(self.conv_in_channels(), ch[0], 3, px(0));
        f += conv(ch[0], self.in_channels * self.patch * self.patch, 3, px(0));
        for l in 0..levels {
            // down resblocks, and the same number up (every level but the coarsest)
            let blocks = nres[l] * if l + 1 < levels { 2 } else { 1 };
            f += blocks as u64 * 2 * conv(ch[l], ch[l], 3, px(l));
            if l + 1 < levels {
                f += conv(ch[l], ch[l + 1], 3, px(l + 1));
                f += conv(ch[l + 1], ch[l], 1, px(l + 1));
            }
        }
        f
    }

    /// Input channels of `conv_in`: space-to-depth of `[z, grid features of z, cond]`.
    pub fn conv_in_channels(&self) -> usize {
        let k = if self.input_fourier { 3 } else { 1 };
        (self.in_channels * k + self.cond_channels) * self.patch * self.patch
    }
}

/// A GroupNorm that keeps its affine weights at hand (candle's `GroupNorm` hides them) for the
/// fused CPU kernel; candle's op stays the reference path and serves other devices.
#[derive(Clone, Debug)]
struct Norm {
    gn: GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

fn group_norm(groups: usize, ch: usize, eps: f64, vb: VarBuilder) -> Result<Norm> {
    let weight = vb.get_with_hints(ch, "weight", candle_nn::Init::Const(1.))?;
    let bias = vb.get_with_hints(ch, "bias", candle_nn::Init::Const(0.))?;
    Ok(Norm {
        gn: GroupNorm::new(weight.clone(), bias.clone(), ch, groups, eps)?,
        weight,
        bias,
        groups,
        eps,
    })
}

impl Norm {
    /// `silu(norm(x))`, or `silu(norm(x)·(1 + scale) + shift)` with `ss = (scale, shift)`,
    /// each (B, C). One fused pass on a CPU f32 tensor when `fast`.
    fn forward_silu(
        &self,
        x: &Tensor,
        ss: Option<(&Tensor, &Tensor)>,
        fast: bool,
    ) -> Result<Tensor> {
        if fast && is_cpu_f32(x) && is_cpu_f32(&self.weight) {
            let (w, b, g, e) = (&self.weight, &self.bias, self.groups, self.eps);
            return cpu_kernels::group_norm_silu(x, w, b, g, e, ss, true);
        }
        let h = self.gn.forward(x)?;
        let h = match ss {
            Some((scale, shift)) => {
                let (b, c) = scale.dims2()?;
                let scale = (scale.reshape((b, c, 1, 1))? + 1.0)?;
                h.broadcast_mul(&scale)?
                    .broadcast_add(&shift.reshape((b, c, 1, 1))?)?
            }
            None => h,
        };
        h.silu()
    }
}

/// A convolution with a fused residual; im2col + `gemm` on a CPU f32 tensor when `fast`,
/// else candle's `conv2d` (the reference path, and other devices).
#[derive(Clone, Debug)]
struct Conv {
    conv: Conv2d,
    stride: usize,
    padding: usize,
}

impl Conv {
    /// `conv(x) + add`.
    fn forward(&self, x: &Tensor, add: Option<&Tensor>, fast: bool) -> Result<Tensor> {
        let c = &self.conv;
        if fast && is_cpu_f32(x) && is_cpu_f32(c.weight()) {
            let (s, p) = (self.stride, self.padding);
            return cpu_kernels::conv2d(x, c.weight(), c.bias(), s, p, add);
        }
        let y = c.forward(x)?;
        match add {
            Some(a) => a + y,
            None => Ok(y),
        }
    }
}

#[derive(Clone, Debug)]
struct ResBlock {
    norm1: Norm,
    conv1: Conv,
    emb: Linear,
    norm2: Norm,
    conv2: Conv,
    skip: Option<Conv>,
    c_out: usize,
}

fn conv3(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Conv> {
    let cfg = Conv2dConfig {
        padding: 1,
        stride,
        ..Default::default()
    };
    Ok(Conv {
        conv: candle_nn::conv2d(cin, cout, 3, cfg, vb)?,
        stride,
        padding: 1,
    })
}

fn conv1(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv> {
    Ok(Conv {
        conv: candle_nn::conv2d(cin, cout, 1, Conv2dConfig::default(), vb)?,
        stride: 1,
        padding: 0,
    })
}

impl ResBlock {
    fn new(cfg: &Config, cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        let g = cfg.groups;
        Ok(ResBlock {
            norm1: group_norm(g, cin, cfg.gn_eps, vb.pp("norm1"))?,
            conv1: conv3(cin, cout, 1, vb.pp("conv1"))?,
            emb: candle_nn::linear(cfg.emb_dim, 2 * cout, vb.pp("emb"))?,
            norm2: group_norm(g, cout, cfg.gn_eps, vb.pp("norm2"))?,
            conv2: conv3(cout, cout, 1, vb.pp("conv2"))?,
            skip: if cin != cout {
                Some(conv1(cin, cout, vb.pp("skip"))?)
            } else {
                None
            },
            c_out: cout,
        })
    }

    fn forward(&self, x: &Tensor, emb: &Tensor, fast: bool) -> Result<Tensor> {
        let h = self.norm1.forward_silu(x, None, fast)?;
        let h = self.conv1.forward(&h, None, fast)?;
        let ss = self.emb.forward(emb)?;
        let scale = ss.narrow(1, 0, self.c_out)?;
        let shift = ss.narrow(1, self.c_out, self.c_out)?;
        let h = self.norm2.forward_silu(&h, Some((&scale, &shift)), fast)?;
        let res = match &self.skip {
            Some(s) => s.forward(x, None, fast)?,
            None => x.clone(),
        };
        self.conv2.forward(&h, Some(&res), fast)
    }
}

/// The diffusion U-Net. `forward` maps (z, λ) to v̂.
#[derive(Clone, Debug)]
pub struct UNet {
    cfg: Config,
    freqs: Tensor,
    lin1: Linear,
    lin2: Linear,
    conv_in: Conv,
    down: Vec<Vec<ResBlock>>,
    ds: Vec<Conv>,
    us: Vec<Conv>,
    up: Vec<Vec<ResBlock>>,
    norm_out: Norm,
    conv_out: Conv,
    grid_gate: Option<Linear>,
    /// Fused CPU kernels for CPU f32 inputs ([`UNet::set_fast_kernels`]).
    fast: bool,
}

impl UNet {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (ch, nres) = (&cfg.channels, &cfg.num_res_blocks);
        let levels = ch.len();
        let pc = cfg.in_channels * cfg.patch * cfg.patch;
        let t = vb.pp("temb");
        let freqs = t.get(cfg.num_freqs, "freqs")?;
        let lin1 = candle_nn::linear(2 * cfg.num_freqs, cfg.emb_dim, t.pp("lin1"))?;
        let lin2 = candle_nn::linear(cfg.emb_dim, cfg.emb_dim, t.pp("lin2"))?;
        let conv_in = conv3(cfg.conv_in_channels(), ch[0], 1, vb.pp("conv_in"))?;
        let (mut down, mut ds, mut us, mut up) = (vec![], vec![], vec![], vec![]);
        for l in 0..levels {
            let vbl = vb.pp("down").pp(l);
            let blocks = (0..nres[l])
                .map(|i| ResBlock::new(cfg, ch[l], ch[l], vbl.pp(i)))
                .collect::<Result<Vec<_>>>()?;
            down.push(blocks);
            if l + 1 < levels {
                ds.push(conv3(ch[l], ch[l + 1], 2, vbl.pp("ds"))?);
                let vbu = vb.pp("up").pp(l);
                us.push(conv1(ch[l + 1], ch[l], vbu.pp("us"))?);
                let blocks = (0..nres[l])
                    .map(|i| ResBlock::new(cfg, ch[l], ch[l], vbu.pp(i)))
                    .collect::<Result<Vec<_>>>()?;
                up.push(blocks);
            }
        }
        Ok(UNet {
            cfg: cfg.clone(),
            freqs,
            lin1,
            lin2,
            conv_in,
            down,
            ds,
            us,
            up,
            norm_out: group_norm(cfg.groups, ch[0], cfg.gn_eps, vb.pp("norm_out"))?,
            conv_out: conv3(ch[0], pc, 1, vb.pp("conv_out"))?,
            grid_gate: if cfg.grid_skip {
                Some(candle_nn::linear(cfg.emb_dim, 1, vb.pp("grid_gate"))?)
            } else {
                None
            },
            fast: true,
        })
    }

    /// Chooses the fused CPU kernels (the default; used only for CPU f32 tensors) or candle's
    /// ops, the reference they are tested against. The two agree to float rounding, not bit
    /// for bit, so an encoder and its decoder must use the same choice.
    pub fn set_fast_kernels(&mut self, on: bool) {
        self.fast = on;
    }

    /// Whether the fused CPU kernels are on ([`UNet::set_fast_kernels`]).
    pub fn fast_kernels(&self) -> bool {
        self.fast
    }

    /// Loads a checkpoint file (architecture from its metadata) as f32 on `device`.
    pub fn load(path: &std::path::Path, device: &Device) -> anyhow::Result<(UNet, Vec<u8>)> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let net = Self::from_bytes(&bytes, &path.display().to_string(), device)?;
        Ok((net, bytes))
    }

    /// Loads a checkpoint's bytes (`origin` names it in errors) as f32 on `device`.
    pub fn from_bytes(bytes: &[u8], origin: &str, device: &Device) -> anyhow::Result<UNet> {
        let cfg = Config::from_safetensors(bytes).with_context(|| format!("in {origin}"))?;
        let vb = VarBuilder::from_slice_safetensors(bytes, DType::F32, device)?;
        UNet::new(&cfg, vb).with_context(|| format!("loading weights from {origin}"))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn embed(&self, logsnr: &Tensor) -> Result<Tensor> {
        let b = logsnr.dim(0)?;
        let arg = logsnr
            .reshape((b, 1))?
            .broadcast_mul(&self.freqs.unsqueeze(0)?)?;
        let f = Tensor::cat(&[arg.sin()?, arg.cos()?], 1)?;
        self.lin2.forward(&self.lin1.forward(&f)?.silu()?)?.silu()
    }

    /// `[z, g·sin 2πr, g·cos 2πr]` along channels, with `r = frac((z + 1)·127.5)` and
    /// `g = sigmoid(λ − gate)`; the same f32 operations as the trainer.
    fn input_features(&self, z: &Tensor, logsnr: &Tensor) -> Result<Tensor> {
        if !self.cfg.input_fourier {
            return Ok(z.clone());
        }
        let b = z.dim(0)?;
        let u = ((z + 1.0)? * 127.5)?;
        let r = (&u - u.floor()?)?;
        let arg = (r * std::f64::consts::TAU)?;
        let g = candle_nn::ops::sigmoid(&(logsnr - self.cfg.fourier_gate_logsnr)?)?
            .reshape((b, 1, 1, 1))?;
        let s = arg.sin()?.broadcast_mul(&g)?;
        let co = arg.cos()?.broadcast_mul(&g)?;
        Tensor::cat(&[z, &s, &co], 1)
    }

    /// Whether the model reads a condition image ([`Config::cond_channels`] > 0).
    pub fn is_conditional(&self) -> bool {
        self.cfg.cond_channels > 0
    }

    /// `x`: (B, C, H, W) noisy input z, H and W multiples of [`Config::multiple`];
    /// `logsnr`: (B,) f32. Returns v̂ with the shape of `x`. Unconditional models only
    /// (a conditional one errors; use [`UNet::forward_cond`]).
    pub fn forward(&self, x: &Tensor, logsnr: &Tensor) -> Result<Tensor> {
        self.forward_cond(x, logsnr, None)
    }

    /// [`UNet::forward`] with the condition `cond`: (B, cond_channels, H, W) in [−1, 1], same
    /// B, H, W as `x`. Required iff the model is conditional; an error otherwise.
    pub fn forward_cond(
        &self,
        x: &Tensor,
        logsnr: &Tensor,
        cond: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let m = self.cfg.multiple();
        if h % m != 0 || w % m != 0 {
            candle_core::bail!("U-Net input {h}×{w} is not a multiple of {m}");
        }
        let nc = self.cfg.cond_channels;
        match cond {
            None if nc > 0 => {
                candle_core::bail!(
                    "this U-Net is conditional ({nc} condition channels): a condition image is required"
                )
            }
            Some(_) if nc == 0 => {
                candle_core::bail!("this U-Net is unconditional: it takes no condition image")
            }
            Some(cd) if cd.dims4()? != (b, nc, h, w) => {
                candle_core::bail!(
                    "condition has shape {:?}, the U-Net needs {:?}",
                    cd.dims(),
                    (b, nc, h, w)
                )
            }
            _ => {}
        }
        let emb = self.embed(logsnr)?;
        let p = self.cfg.patch;
        let z = x;
        let x = self.input_features(x, logsnr)?;
        let x = match cond {
            Some(cd) => Tensor::cat(&[&x, &cd.to_dtype(x.dtype())?], 1)?,
            None => x,
        };
        let ci = x.dim(1)?;
        let x = if p > 1 {
            // space-to-depth: channel c·p² + dy·p + dx
            x.reshape((b, ci, h / p, p, w / p, p))?
                .permute((0, 1, 3, 5, 2, 4))?
                .contiguous()?
                .reshape((b, ci * p * p, h / p, w / p))?
        } else {
            x.clone()
        };
        let fast = self.fast;
        let mut hcur = self.conv_in.forward(&x, None, fast)?;
        let levels = self.cfg.channels.len();
        let mut skips = Vec::with_capacity(levels);
        for l in 0..levels {
            for blk in &self.down[l] {
                hcur = blk.forward(&hcur, &emb, fast)?;
            }
            if l + 1 < levels {
                skips.push(hcur.clone());
                hcur = self.ds[l].forward(&hcur, None, fast)?;
            }
        }
        for l in (0..levels - 1).rev() {
            let t = self.us[l].forward(&hcur, None, fast)?;
            let (_, _, th, tw) = t.dims4()?;
            let skip = skips.pop().expect("one skip per level");
            hcur = if fast && is_cpu_f32(&t) && is_cpu_f32(&skip) {
                cpu_kernels::upsample2_add(&t, &skip)?
            } else {
                (t.upsample_nearest2d(th * 2, tw * 2)? + skip)?
            };
            for blk in &self.up[l] {
                hcur = blk.forward(&hcur, &emb, fast)?;
            }
        }
        let hn = self.norm_out.forward_silu(&hcur, None, fast)?;
        let out = self.conv_out.forward(&hn, None, fast)?;
        let out = if p > 1 {
            out.reshape((b, c, p, p, h / p, w / p))?
                .permute((0, 1, 4, 2, 5, 3))?
                .contiguous()?
                .reshape((b, c, h, w))?
        } else {
            out
        };
        match &self.grid_gate {
            Some(gate) => {
                let g = gate.forward(&emb)?.reshape((b, 1, 1, 1))?;
                out + grid_v(z, logsnr)?.broadcast_mul(&g)?
            }
            None => Ok(out),
        }
    }
}

/// v implied by the posterior mean of x under a flat prior on the 8-bit grid of [−1, 1].
///
/// With `u = (z + 1)·127.5` and `rc` its signed offset from the nearest grid point (in grid
/// steps), the five nearest grid points `k − rc` (k = −2..2) get weights
/// `∝ exp(−(k − rc)²·e^λ / (2·127.5²))` (noise scale σ/α = e^{−λ/2}, taking α ≈ 1, true where
/// it matters); `x̂ − z = m`, `v = (α z − x̂)/σ = ((α − 1) z − m)/σ`. Same f32 operations, in
/// the same order, as the trainer's `grid_v`.
pub fn grid_v(z: &Tensor, logsnr: &Tensor) -> Result<Tensor> {
    let b = z.dim(0)?;
    let l = logsnr.reshape((b, 1, 1, 1))?;
    let u = ((z + 1.0)? * 127.5)?;
    let r = (&u - u.floor()?)?;
    let rc = (&r - (&r + 0.5)?.floor()?)?;
    let c = (l.exp()? / (2.0 * 127.5 * 127.5))?;
    let d: Vec<Tensor> = (-2i32..=2)
        .map(|k| rc.affine(-1.0, k as f64))
        .collect::<Result<_>>()?;
    let lw: Vec<Tensor> = d
        .iter()
        .map(|dk| dk.sqr()?.neg()?.broadcast_mul(&c))
        .collect::<Result<_>>()?;
    let mut mx = lw[0].clone();
    for w in &lw[1..] {
        mx = mx.maximum(w)?;
    }
    let e: Vec<Tensor> = lw.iter().map(|w| (w - &mx)?.exp()).collect::<Result<_>>()?;
    let mut num = (&e[0] * &d[0])?;
    let mut den = e[0].clone();
    for (ek, dk) in e.iter().zip(&d).skip(1) {
        num = (num + (ek * dk)?)?;
        den = (den + ek)?;
    }
    let m = ((num / den)? / 127.5)?;
    let a = candle_nn::ops::sigmoid(&l)?.sqrt()?;
    let s = candle_nn::ops::sigmoid(&l.neg()?)?.sqrt()?;
    (z.broadcast_mul(&(a - 1.0)?)? - m)?.broadcast_div(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    /// A small random-weight U-Net with every feature on (input features, grid skip, a skip
    /// conv-free resblock stack over three levels).
    fn small_net() -> UNet {
        let cfg = Config {
            arch: "diffc-unet-v1".into(),
            in_channels: 3,
            patch: 2,
            input_fourier: true,
            fourier_gate_logsnr: 6.0,
            grid_skip: true,
            channels: vec![16, 24, 32],
            num_res_blocks: vec![1, 2, 1],
            groups: 8,
            emb_dim: 32,
            num_freqs: 8,
            gn_eps: 1e-5,
            prediction: "v".into(),
            logsnr_min: -10.0,
            logsnr_max: 13.0,
            cond_channels: 0,
        };
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        UNet::new(&cfg, vb).unwrap()
    }

    fn input(b: usize, h: usize, w: usize) -> (Tensor, Tensor) {
        let n = b * 3 * h * w;
        let z: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 1.3)
            .collect();
        let l: Vec<f32> = (0..b).map(|i| 1.5 - 2.0 * i as f32).collect();
        (
            Tensor::from_vec(z, (b, 3, h, w), &Device::Cpu).unwrap(),
            Tensor::from_vec(l, b, &Device::Cpu).unwrap(),
        )
    }

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    #[test]
    fn fast_forward_matches_reference() {
        let mut net = small_net();
        assert!(net.fast_kernels());
        for (b, h, w) in [(1, 32, 32), (2, 16, 40)] {
            let (z, l) = input(b, h, w);
            net.set_fast_kernels(true);
            let fast = net.forward(&z, &l).unwrap();
            net.set_fast_kernels(false);
            let reference = net.forward(&z, &l).unwrap();
            let e = max_rel_diff(&fast, &reference);
            assert!(e < 1e-4, "{b}×{h}×{w}: fast vs reference {e:e}");
        }
    }

    #[test]
    fn fast_forward_is_thread_count_invariant() {
        let net = small_net();
        let (z, l) = input(1, 64, 48);
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| net.forward(&z, &l).unwrap())
        };
        let bits = |t: &Tensor| {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let (one, two) = (bits(&run(1)), bits(&run(2)));
        assert!(one == two, "forward differs between 1 and 2 threads");
        assert!(bits(&run(2)) == two, "forward differs between two runs");
    }
}
