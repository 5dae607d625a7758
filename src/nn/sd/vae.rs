//! Stable Diffusion's image autoencoder: diffusers `AutoencoderKL` (`DownEncoderBlock2D` /
//! `UpDecoderBlock2D`, keys as in `vae/diffusion_pytorch_model`).
//!
//! Vendored from candle-transformers 0.11.1 `models/stable_diffusion/vae.rs` (see
//! `LICENSE-candle-transformers`). Changes: [`AutoencoderKL::encode`] returns the posterior
//! MEAN (upstream kept it private and only offered an unseeded sample; the codec wants a
//! deterministic latent and draws no randomness here); `in/out_channels`,
//! `mid_block_add_attention` configurable; no `#![allow(dead_code)]`.
//!
//! Scaling (`scaling_factor`, 0.18215 for SD) is NOT applied here: the caller multiplies the
//! mean by it before diffusion and divides before decoding, as diffusers' pipelines do.
use super::blocks::{DownEncoderBlock2D, UpDecoderBlock2D, VaeMidBlock};
use candle_core::{Module, Result, Tensor};
use candle_nn as nn;

/// Architecture of an [`AutoencoderKL`].
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Channels per level, finest first (SD: 128, 256, 512, 512).
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub latent_channels: usize,
    pub norm_num_groups: usize,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub mid_block_add_attention: bool,
}

fn conv3(cin: usize, cout: usize, vb: nn::VarBuilder) -> Result<nn::Conv2d> {
    let cfg = nn::Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    nn::conv2d(cin, cout, 3, cfg, vb)
}

#[derive(Debug)]
struct Encoder {
    conv_in: nn::Conv2d,
    down_blocks: Vec<DownEncoderBlock2D>,
    mid_block: VaeMidBlock,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2d,
}

impl Encoder {
    fn new(vb: nn::VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let conv_in = conv3(cfg.in_channels, ch[0], vb.pp("conv_in"))?;
        let vbd = vb.pp("down_blocks");
        let down_blocks = (0..n)
            .map(|i| {
                let cin = if i == 0 { ch[0] } else { ch[i - 1] };
                DownEncoderBlock2D::new(
                    vbd.pp(i),
                    cin,
                    ch[i],
                    cfg.layers_per_block,
                    cfg.norm_num_groups,
                    i + 1 < n,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let last = ch[n - 1];
        let mid_block = VaeMidBlock::new(
            vb.pp("mid_block"),
            last,
            cfg.norm_num_groups,
            cfg.mid_block_add_attention,
        )?;
        let conv_norm_out =
            nn::group_norm(cfg.norm_num_groups, last, 1e-6, vb.pp("conv_norm_out"))?;
        let conv_out = conv3(last, 2 * cfg.latent_channels, vb.pp("conv_out"))?;
        Ok(Self {
            conv_in,
            down_blocks,
            mid_block,
            conv_norm_out,
            conv_out,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.conv_in.forward(xs)?;
        for b in &self.down_blocks {
            xs = b.forward(&xs)?;
        }
        let xs = self.mid_block.forward(&xs)?;
        let xs = nn::ops::silu(&self.conv_norm_out.forward(&xs)?)?;
        self.conv_out.forward(&xs)
    }
}

#[derive(Debug)]
struct Decoder {
    conv_in: nn::Conv2d,
    mid_block: VaeMidBlock,
    up_blocks: Vec<UpDecoderBlock2D>,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2d,
}

impl Decoder {
    fn new(vb: nn::VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let rev: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let n = rev.len();
        let conv_in = conv3(cfg.latent_channels, rev[0], vb.pp("conv_in"))?;
        let mid_block = VaeMidBlock::new(
            vb.pp("mid_block"),
            rev[0],
            cfg.norm_num_groups,
            cfg.mid_block_add_attention,
        )?;
        let vbu = vb.pp("up_blocks");
        let up_blocks = (0..n)
            .map(|i| {
                let cin = if i == 0 { rev[0] } else { rev[i - 1] };
                UpDecoderBlock2D::new(
                    vbu.pp(i),
                    cin,
                    rev[i],
                    cfg.layers_per_block + 1,
                    cfg.norm_num_groups,
                    i + 1 < n,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let c0 = cfg.block_out_channels[0];
        let conv_norm_out = nn::group_norm(cfg.norm_num_groups, c0, 1e-6, vb.pp("conv_norm_out"))?;
        let conv_out = conv3(c0, cfg.out_channels, vb.pp("conv_out"))?;
        Ok(Self {
            conv_in,
            mid_block,
            up_blocks,
            conv_norm_out,
            conv_out,
        })
    }
}

impl Module for Decoder {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.mid_block.forward(&self.conv_in.forward(xs)?)?;
        for b in &self.up_blocks {
            xs = b.forward(&xs)?;
        }
        let xs = nn::ops::silu(&self.conv_norm_out.forward(&xs)?)?;
        self.conv_out.forward(&xs)
    }
}

/// SD's KL autoencoder: images in [−1, 1], (B, 3, H, W) ↔ latents (B, 4, H/8, W/8)
/// (the factor is `2^(levels − 1)`).
#[derive(Debug)]
pub struct AutoencoderKL {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<nn::Conv2d>,
    post_quant_conv: Option<nn::Conv2d>,
    config: VaeConfig,
}

impl AutoencoderKL {
    pub fn new(vb: nn::VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        if cfg.block_out_channels.is_empty() {
            candle_core::bail!("VAE config has no blocks");
        }
        let lc = cfg.latent_channels;
        let encoder = Encoder::new(vb.pp("encoder"), cfg)?;
        let decoder = Decoder::new(vb.pp("decoder"), cfg)?;
        let quant_conv = if cfg.use_quant_conv {
            Some(nn::conv2d(
                2 * lc,
                2 * lc,
                1,
                Default::default(),
                vb.pp("quant_conv"),
            )?)
        } else {
            None
        };
        let post_quant_conv = if cfg.use_post_quant_conv {
            Some(nn::conv2d(
                lc,
                lc,
                1,
                Default::default(),
                vb.pp("post_quant_conv"),
            )?)
        } else {
            None
        };
        Ok(Self {
            encoder,
            decoder,
            quant_conv,
            post_quant_conv,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Spatial downsampling factor between image and latent.
    pub fn downsampling_factor(&self) -> usize {
        1 << (self.config.block_out_channels.len() - 1)
    }

    /// The posterior moments `[mean, logvar]` concatenated on the channel axis
    /// (B, 2·latent_channels, h, w), unclamped.
    pub fn encode_moments(&self, image: &Tensor) -> Result<Tensor> {
        let h = self.encoder.forward(image)?;
        match &self.quant_conv {
            Some(q) => q.forward(&h),
            None => Ok(h),
        }
    }

    /// The posterior mean (diffusers `encode(x).latent_dist.mean`), unscaled.
    pub fn encode(&self, image: &Tensor) -> Result<Tensor> {
        self.encode_moments(image)?
            .narrow(1, 0, self.config.latent_channels)?
            .contiguous()
    }

    /// Decodes unscaled latents to an image in (about) [−1, 1] (diffusers `decode(z).sample`).
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(latent)?,
            None => latent.clone(),
        };
        self.decoder.forward(&z)
    }
}
