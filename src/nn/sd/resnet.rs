//! ResNet block of the SD U-Net and VAE (diffusers `ResnetBlock2D`, `time_embedding_norm =
//! "default"`, SiLU, pre-norm).
//!
//! Vendored from candle-transformers 0.11.1 `models/stable_diffusion/resnet.rs` (see
//! `LICENSE-candle-transformers`); tracing spans removed.
use candle_core::{D, Module, Result, Tensor};
use candle_nn as nn;

/// Configuration of a [`ResnetBlock2D`].
#[derive(Debug, Clone, Copy)]
pub struct ResnetBlock2DConfig {
    /// Output channels; `None` keeps the input channel count.
    pub out_channels: Option<usize>,
    /// Width of the time embedding added after `conv1`; `None` for the VAE.
    pub temb_channels: Option<usize>,
    /// Groups of both group norms.
    pub groups: usize,
    /// Epsilon of both group norms.
    pub eps: f64,
    /// The output `(shortcut + h)` is divided by this.
    pub output_scale_factor: f64,
}

/// `out = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb)))))) / s`.
#[derive(Debug)]
pub struct ResnetBlock2D {
    norm1: nn::GroupNorm,
    conv1: nn::Conv2d,
    norm2: nn::GroupNorm,
    conv2: nn::Conv2d,
    time_emb_proj: Option<nn::Linear>,
    conv_shortcut: Option<nn::Conv2d>,
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    pub fn new(vb: nn::VarBuilder, in_channels: usize, cfg: ResnetBlock2DConfig) -> Result<Self> {
        let out_channels = cfg.out_channels.unwrap_or(in_channels);
        let conv3 = nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let norm1 = nn::group_norm(cfg.groups, in_channels, cfg.eps, vb.pp("norm1"))?;
        let conv1 = nn::conv2d(in_channels, out_channels, 3, conv3, vb.pp("conv1"))?;
        let norm2 = nn::group_norm(cfg.groups, out_channels, cfg.eps, vb.pp("norm2"))?;
        let conv2 = nn::conv2d(out_channels, out_channels, 3, conv3, vb.pp("conv2"))?;
        // diffusers: `use_in_shortcut = in_channels != out_channels` (SD never overrides it).
        let conv_shortcut = if in_channels != out_channels {
            Some(nn::conv2d(
                in_channels,
                out_channels,
                1,
                Default::default(),
                vb.pp("conv_shortcut"),
            )?)
        } else {
            None
        };
        let time_emb_proj = match cfg.temb_channels {
            None => None,
            Some(t) => Some(nn::linear(t, out_channels, vb.pp("time_emb_proj"))?),
        };
        Ok(Self {
            norm1,
            conv1,
            norm2,
            conv2,
            time_emb_proj,
            conv_shortcut,
            output_scale_factor: cfg.output_scale_factor,
        })
    }

    pub fn forward(&self, xs: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let shortcut = match &self.conv_shortcut {
            Some(c) => c.forward(xs)?,
            None => xs.clone(),
        };
        let h = self
            .conv1
            .forward(&nn::ops::silu(&self.norm1.forward(xs)?)?)?;
        let h = match (temb, &self.time_emb_proj) {
            (Some(temb), Some(proj)) => proj
                .forward(&nn::ops::silu(temb)?)?
                .unsqueeze(D::Minus1)?
                .unsqueeze(D::Minus1)?
                .broadcast_add(&h)?,
            _ => h,
        };
        let h = self
            .conv2
            .forward(&nn::ops::silu(&self.norm2.forward(&h)?)?)?;
        let out = (shortcut + h)?;
        if self.output_scale_factor == 1.0 {
            Ok(out)
        } else {
            out / self.output_scale_factor
        }
    }
}
