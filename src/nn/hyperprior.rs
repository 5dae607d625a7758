//! HFD's MSE transform codec networks (candle), the Rust twin of `notebooks/train_hfd_mse.py`.
//!
//! Ballé et al. (2018) mean-scale hyperprior, small, with gain units for variable rate:
//! - `g_a`: 4 × conv5×5 stride 2 (`g_a.0..3`) with GDN (`g_a.gdn0..2`) between → y, 1/16 size;
//! - `g_s`: 4 × (conv3×3 → depth-to-space ×2) (`g_s.0..3`) with inverse GDN between;
//! - `h_a`: conv3×3, ReLU, conv5×5 s2, ReLU, conv5×5 s2 → z, 1/64 size;
//! - `h_s`: 2 × (conv3×3 → depth-to-space, ReLU), conv3×3 → (μ, log σ) of the gained y;
//! - `gain.log`, `gain.log_inv` (R × M): per trained rate, log gains applied to y before
//!   quantisation and after; a continuous rate r interpolates them linearly in log space;
//! - `z_prior.log_scale` (Z): zero-mean Gaussian prior of each z channel.
//!
//! GDN is stored as its effective β (C) and γ (C × C): `x / sqrt(β + γ·x²)`.
//! The architecture is read from the checkpoint metadata ([`CONFIG_KEY`]).
use anyhow::{Context, bail};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use serde::Deserialize;

/// safetensors `__metadata__` key holding the architecture as JSON.
pub const CONFIG_KEY: &str = "diffc_hfd_mse_config";

/// Architecture of a [`Hyperprior`], as stored in the checkpoint metadata.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Config {
    pub arch: String,
    /// Hidden channels.
    pub n: usize,
    /// Channels of y.
    pub m: usize,
    /// Channels of z.
    pub nz: usize,
    /// Rate–distortion trade-offs of the trained rates, lowest rate first.
    pub lambdas: Vec<f64>,
    /// Lower bound on every predicted scale.
    pub scale_min: f64,
}

impl Config {
    pub fn from_safetensors(bytes: &[u8]) -> anyhow::Result<Config> {
        let cfg: Config = super::config_from_metadata(bytes, CONFIG_KEY, "MSE-codec")?;
        if cfg.arch != "diffc-hfd-mse-v1" {
            bail!("unsupported MSE-codec architecture `{}`", cfg.arch);
        }
        if cfg.lambdas.len() < 2 || cfg.n == 0 || cfg.m == 0 || cfg.nz == 0 {
            bail!("bad MSE-codec config {cfg:?}");
        }
        Ok(cfg)
    }

    /// H and W of the network input must be multiples of this.
    pub const MULTIPLE: usize = 64;

    /// Highest continuous rate, `R − 1`.
    pub fn max_rate(&self) -> f64 {
        (self.lambdas.len() - 1) as f64
    }
}

/// Generalised divisive normalisation (or its inverse): `x / sqrt(β + γ·x²)`, γ as a 1×1 conv.
#[derive(Clone, Debug)]
struct Gdn {
    conv: Conv2d,
    inverse: bool,
}

impl Gdn {
    fn new(c: usize, inverse: bool, vb: VarBuilder) -> Result<Self> {
        let gamma = vb.get((c, c), "gamma")?.reshape((c, c, 1, 1))?;
        let beta = vb.get(c, "beta")?;
        Ok(Gdn {
            conv: Conv2d::new(gamma, Some(beta), Conv2dConfig::default()),
            inverse,
        })
    }
}

impl Module for Gdn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let norm = self.conv.forward(&x.sqr()?)?.sqrt()?;
        if self.inverse { x * norm } else { x / norm }
    }
}

/// (B, C·r², H, W) → (B, C, H·r, W·r), channel index `c·r² + dy·r + dx` (PyTorch's order).
pub fn depth_to_space(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c4, h, w) = x.dims4()?;
    let c = c4 / (r * r);
    x.reshape((b, c, r, r, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((b, c, h * r, w * r))
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: (k - 1) / 2,
        stride,
        ..Default::default()
    };
    candle_nn::conv2d(cin, cout, k, cfg, vb)
}

/// The four networks and the rate parameters of the MSE codec.
#[derive(Clone, Debug)]
pub struct Hyperprior {
    cfg: Config,
    g_a: Vec<Conv2d>,
    g_a_gdn: Vec<Gdn>,
    g_s: Vec<Conv2d>,
    g_s_igdn: Vec<Gdn>,
    h_a: Vec<Conv2d>,
    h_s: Vec<Conv2d>,
    gain_log: Vec<Vec<f32>>,
    gain_log_inv: Vec<Vec<f32>>,
    z_log_scale: Vec<f32>,
}

impl Hyperprior {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (n, m, nz, r) = (cfg.n, cfg.m, cfg.nz, cfg.lambdas.len());
        let ga = vb.pp("g_a");
        let gs = vb.pp("g_s");
        let ha = vb.pp("h_a");
        let hs = vb.pp("h_s");
        let rows = |t: Tensor| -> Result<Vec<Vec<f32>>> { t.to_vec2::<f32>() };
        Ok(Hyperprior {
            cfg: cfg.clone(),
            g_a: vec![
                conv(3, n, 5, 2, ga.pp(0))?,
                conv(n, n, 5, 2, ga.pp(1))?,
                conv(n, n, 5, 2, ga.pp(2))?,
                conv(n, m, 5, 2, ga.pp(3))?,
            ],
            g_a_gdn: (0..3)
                .map(|i| Gdn::new(n, false, ga.pp(format!("gdn{i}"))))
                .collect::<Result<_>>()?,
            g_s: vec![
                conv(m, 4 * n, 3, 1, gs.pp(0))?,
                conv(n, 4 * n, 3, 1, gs.pp(1))?,
                conv(n, 4 * n, 3, 1, gs.pp(2))?,
                conv(n, 12, 3, 1, gs.pp(3))?,
            ],
            g_s_igdn: (0..3)
                .map(|i| Gdn::new(n, true, gs.pp(format!("igdn{i}"))))
                .collect::<Result<_>>()?,
            h_a: vec![
                conv(m, n, 3, 1, ha.pp(0))?,
                conv(n, n, 5, 2, ha.pp(1))?,
                conv(n, nz, 5, 2, ha.pp(2))?,
            ],
            h_s: vec![
                conv(nz, 4 * n, 3, 1, hs.pp(0))?,
                conv(n, 4 * n, 3, 1, hs.pp(1))?,
                conv(n, 2 * m, 3, 1, hs.pp(2))?,
            ],
            gain_log: rows(vb.get((r, m), "gain.log")?)?,
            gain_log_inv: rows(vb.get((r, m), "gain.log_inv")?)?,
            z_log_scale: vb.get(nz, "z_prior.log_scale")?.to_vec1::<f32>()?,
        })
    }

    /// Loads a checkpoint file; returns the network and the file bytes (for fingerprints).
    pub fn load(path: &std::path::Path, device: &Device) -> anyhow::Result<(Hyperprior, Vec<u8>)> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let net = Self::from_bytes(&bytes, &path.display().to_string(), device)?;
        Ok((net, bytes))
    }

    /// Loads a checkpoint's bytes (`origin` names it in errors) as f32 on `device`.
    pub fn from_bytes(bytes: &[u8], origin: &str, device: &Device) -> anyhow::Result<Hyperprior> {
        let cfg = Config::from_safetensors(bytes).with_context(|| format!("in {origin}"))?;
        let vb = VarBuilder::from_slice_safetensors(bytes, DType::F32, device)?;
        Hyperprior::new(&cfg, vb).with_context(|| format!("loading weights from {origin}"))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// y = g_a(x − ½) for x in [0, 1], (B, 3, H, W) with H, W multiples of 64.
    pub fn analysis(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = (x - 0.5)?;
        for (i, c) in self.g_a.iter().enumerate() {
            h = c.forward(&h)?;
            if let Some(g) = self.g_a_gdn.get(i) {
                h = g.forward(&h)?;
            }
        }
        Ok(h)
    }

    /// x̂ = g_s(ŷ) + ½ (not clipped).
    pub fn synthesis(&self, y: &Tensor) -> Result<Tensor> {
        let mut h = y.clone();
        for (i, c) in self.g_s.iter().enumerate() {
            h = depth_to_space(&c.forward(&h)?, 2)?;
            if let Some(g) = self.g_s_igdn.get(i) {
                h = g.forward(&h)?;
            }
        }
        h + 0.5
    }

    /// z = h_a(gained y).
    pub fn hyper_analysis(&self, y: &Tensor) -> Result<Tensor> {
        let h = self.h_a[0].forward(y)?.relu()?;
        let h = self.h_a[1].forward(&h)?.relu()?;
        self.h_a[2].forward(&h)
    }

    /// (μ, log σ) of the gained y from ẑ.
    pub fn hyper_synthesis(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = depth_to_space(&self.h_s[0].forward(z)?, 2)?.relu()?;
        let h = depth_to_space(&self.h_s[1].forward(&h)?, 2)?.relu()?;
        let o = self.h_s[2].forward(&h)?;
        let m = self.cfg.m;
        Ok((o.narrow(1, 0, m)?, o.narrow(1, m, m)?))
    }

    /// Per-channel gain and inverse gain at continuous rate `r`: log-linear interpolation in
    /// [0, R−1], extrapolation of the end segments outside (the trainer's f32 maths).
    pub fn gains(&self, r: f32) -> (Vec<f32>, Vec<f32>) {
        let rmax = self.gain_log.len() - 2;
        let i = (r.floor().max(0.0) as usize).min(rmax);
        let t = r - i as f32;
        let lerp = |a: &[Vec<f32>]| -> Vec<f32> {
            a[i].iter()
                .zip(&a[i + 1])
                .map(|(&p, &q)| ((1.0 - t) * p + t * q).exp())
                .collect()
        };
        (lerp(&self.gain_log), lerp(&self.gain_log_inv))
    }

    /// Scale of each z channel's zero-mean Gaussian prior (bounded below by `scale_min`).
    pub fn z_scales(&self) -> Vec<f64> {
        self.z_log_scale
            .iter()
            .map(|&l| (l.exp() as f64).max(self.cfg.scale_min))
            .collect()
    }
}

/// Multiplies channel c of (B, C, H, W) by `g[c]`.
pub fn scale_channels(x: &Tensor, g: &[f32]) -> Result<Tensor> {
    let g = Tensor::from_slice(g, g.len(), x.device())?.reshape((1, g.len(), 1, 1))?;
    x.broadcast_mul(&g)
}
