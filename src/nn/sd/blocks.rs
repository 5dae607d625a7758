//! U-Net and VAE building blocks: diffusers' `DownBlock2D` / `CrossAttnDownBlock2D`,
//! `UpBlock2D` / `CrossAttnUpBlock2D`, `UNetMidBlock2DCrossAttn`, and the VAE's
//! `DownEncoderBlock2D`, `UpDecoderBlock2D`, `UNetMidBlock2D`.
//!
//! Vendored from candle-transformers 0.11.1 `models/stable_diffusion/unet_2d_blocks.rs` (see
//! `LICENSE-candle-transformers`). Changes: the plain and cross-attention variants share one
//! struct (attentions optional); the U-Net's down/up resnets use the configured
//! `norm_num_groups` and `resnet_out_scale_factor` (upstream silently used 32 groups and 1.0
//! in `DownBlock2D`/`UpBlock2D`); per-block resnet and transformer counts; tracing removed.
use super::attention::{AttentionBlock, SpatialTransformer, SpatialTransformerConfig};
use super::resnet::{ResnetBlock2D, ResnetBlock2DConfig};
use candle_core::{D, Module, Result, Tensor};
use candle_nn as nn;

/// diffusers `Downsample2D(use_conv = True)`: 3×3 stride-2 conv; with `padding = 0` the
/// input is first padded by one on the right and bottom (the VAE's asymmetric padding).
#[derive(Debug)]
struct Downsample2D {
    conv: nn::Conv2d,
    padding: usize,
}

impl Downsample2D {
    fn new(vb: nn::VarBuilder, channels: usize, padding: usize) -> Result<Self> {
        let cfg = nn::Conv2dConfig {
            stride: 2,
            padding,
            ..Default::default()
        };
        Ok(Self {
            conv: nn::conv2d(channels, channels, 3, cfg, vb.pp("conv"))?,
            padding,
        })
    }
}

impl Module for Downsample2D {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.padding == 0 {
            let xs = xs
                .pad_with_zeros(D::Minus1, 0, 1)?
                .pad_with_zeros(D::Minus2, 0, 1)?;
            self.conv.forward(&xs)
        } else {
            self.conv.forward(xs)
        }
    }
}

/// diffusers `Upsample2D(use_conv = True)`: nearest-neighbour upsampling (×2, or to the
/// given size, diffusers' `upsample_size`), then a 3×3 conv.
#[derive(Debug)]
struct Upsample2D {
    conv: nn::Conv2d,
}

impl Upsample2D {
    fn new(vb: nn::VarBuilder, channels: usize) -> Result<Self> {
        let cfg = nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv: nn::conv2d(channels, channels, 3, cfg, vb.pp("conv"))?,
        })
    }

    fn forward(&self, xs: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
        let (h, w) = match size {
            Some(hw) => hw,
            None => {
                let (_, _, h, w) = xs.dims4()?;
                (2 * h, 2 * w)
            }
        };
        self.conv.forward(&xs.upsample_nearest2d(h, w)?)
    }
}

/// Parameters shared by the U-Net's down and up blocks.
#[derive(Debug, Clone, Copy)]
pub struct UNetBlockConfig {
    /// Resnets in the block (the up blocks have `layers_per_block + 1`).
    pub num_layers: usize,
    pub resnet_eps: f64,
    pub resnet_groups: usize,
    pub resnet_out_scale_factor: f64,
    pub temb_channels: usize,
    /// `Some` for the cross-attention variant: one spatial transformer after each resnet.
    pub attention: Option<BlockAttention>,
}

/// Attention parameters of a cross-attention block.
#[derive(Debug, Clone, Copy)]
pub struct BlockAttention {
    /// Number of heads; the head width is `out_channels / heads`.
    pub heads: usize,
    pub transformer: SpatialTransformerConfig,
}

fn transformers(
    vb: nn::VarBuilder,
    n: usize,
    channels: usize,
    attn: Option<BlockAttention>,
) -> Result<Option<Vec<SpatialTransformer>>> {
    let Some(a) = attn else { return Ok(None) };
    let vb = vb.pp("attentions");
    (0..n)
        .map(|i| {
            SpatialTransformer::new(
                vb.pp(i),
                channels,
                a.heads,
                channels / a.heads,
                a.transformer,
            )
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// `DownBlock2D` (no attention) or `CrossAttnDownBlock2D`.
#[derive(Debug)]
pub struct UNetDownBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Option<Vec<SpatialTransformer>>,
    downsampler: Option<Downsample2D>,
}

impl UNetDownBlock {
    /// `downsample`: `Some(padding)` adds the stride-2 conv at the end.
    pub fn new(
        vb: nn::VarBuilder,
        in_channels: usize,
        out_channels: usize,
        downsample: Option<usize>,
        cfg: UNetBlockConfig,
    ) -> Result<Self> {
        let rcfg = ResnetBlock2DConfig {
            out_channels: Some(out_channels),
            temb_channels: Some(cfg.temb_channels),
            groups: cfg.resnet_groups,
            eps: cfg.resnet_eps,
            output_scale_factor: cfg.resnet_out_scale_factor,
        };
        let vbr = vb.pp("resnets");
        let resnets = (0..cfg.num_layers)
            .map(|i| {
                let cin = if i == 0 { in_channels } else { out_channels };
                ResnetBlock2D::new(vbr.pp(i), cin, rcfg)
            })
            .collect::<Result<Vec<_>>>()?;
        let attentions = transformers(vb.clone(), cfg.num_layers, out_channels, cfg.attention)?;
        let downsampler = match downsample {
            Some(p) => Some(Downsample2D::new(
                vb.pp("downsamplers").pp(0),
                out_channels,
                p,
            )?),
            None => None,
        };
        Ok(Self {
            resnets,
            attentions,
            downsampler,
        })
    }

    /// Returns the output and the skip states (one per resnet, plus the downsampled output).
    pub fn forward(
        &self,
        xs: &Tensor,
        temb: &Tensor,
        context: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut xs = xs.clone();
        let mut states = Vec::with_capacity(self.resnets.len() + 1);
        for (i, resnet) in self.resnets.iter().enumerate() {
            xs = resnet.forward(&xs, Some(temb))?;
            if let Some(attn) = &self.attentions {
                xs = attn[i].forward(&xs, context)?;
            }
            states.push(xs.clone());
        }
        if let Some(ds) = &self.downsampler {
            xs = ds.forward(&xs)?;
            states.push(xs.clone());
        }
        Ok((xs, states))
    }
}

/// `UpBlock2D` (no attention) or `CrossAttnUpBlock2D`.
#[derive(Debug)]
pub struct UNetUpBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Option<Vec<SpatialTransformer>>,
    upsampler: Option<Upsample2D>,
}

impl UNetUpBlock {
    /// `in_channels`: the channels of the deepest skip this block consumes;
    /// `prev_output_channels`: the channels coming from the block below.
    pub fn new(
        vb: nn::VarBuilder,
        in_channels: usize,
        prev_output_channels: usize,
        out_channels: usize,
        add_upsample: bool,
        cfg: UNetBlockConfig,
    ) -> Result<Self> {
        let rcfg = ResnetBlock2DConfig {
            out_channels: Some(out_channels),
            temb_channels: Some(cfg.temb_channels),
            groups: cfg.resnet_groups,
            eps: cfg.resnet_eps,
            output_scale_factor: cfg.resnet_out_scale_factor,
        };
        let vbr = vb.pp("resnets");
        let resnets = (0..cfg.num_layers)
            .map(|i| {
                let skip = if i == cfg.num_layers - 1 {
                    in_channels
                } else {
                    out_channels
                };
                let cin = if i == 0 {
                    prev_output_channels
                } else {
                    out_channels
                };
                ResnetBlock2D::new(vbr.pp(i), cin + skip, rcfg)
            })
            .collect::<Result<Vec<_>>>()?;
        let attentions = transformers(vb.clone(), cfg.num_layers, out_channels, cfg.attention)?;
        let upsampler = if add_upsample {
            Some(Upsample2D::new(vb.pp("upsamplers").pp(0), out_channels)?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            upsampler,
        })
    }

    pub fn num_resnets(&self) -> usize {
        self.resnets.len()
    }

    /// `skips`: this block's skip states in the order they were produced (the last is
    /// consumed first).
    pub fn forward(
        &self,
        xs: &Tensor,
        skips: &[Tensor],
        temb: &Tensor,
        context: &Tensor,
        upsample_size: Option<(usize, usize)>,
    ) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (i, resnet) in self.resnets.iter().enumerate() {
            xs = Tensor::cat(&[&xs, &skips[skips.len() - i - 1]], 1)?;
            xs = resnet.forward(&xs, Some(temb))?;
            if let Some(attn) = &self.attentions {
                xs = attn[i].forward(&xs, context)?;
            }
        }
        match &self.upsampler {
            Some(us) => us.forward(&xs, upsample_size),
            None => Ok(xs),
        }
    }
}

/// `UNetMidBlock2DCrossAttn`: resnet, then (transformer, resnet) once.
#[derive(Debug)]
pub struct UNetMidBlock2DCrossAttn {
    resnet: ResnetBlock2D,
    attn: SpatialTransformer,
    resnet2: ResnetBlock2D,
}

impl UNetMidBlock2DCrossAttn {
    pub fn new(
        vb: nn::VarBuilder,
        channels: usize,
        resnet: ResnetBlock2DConfig,
        attention: BlockAttention,
    ) -> Result<Self> {
        let vbr = vb.pp("resnets");
        Ok(Self {
            resnet: ResnetBlock2D::new(vbr.pp(0), channels, resnet)?,
            attn: SpatialTransformer::new(
                vb.pp("attentions").pp(0),
                channels,
                attention.heads,
                channels / attention.heads,
                attention.transformer,
            )?,
            resnet2: ResnetBlock2D::new(vbr.pp(1), channels, resnet)?,
        })
    }

    pub fn forward(&self, xs: &Tensor, temb: &Tensor, context: &Tensor) -> Result<Tensor> {
        let xs = self.resnet.forward(xs, Some(temb))?;
        let xs = self.attn.forward(&xs, context)?;
        self.resnet2.forward(&xs, Some(temb))
    }
}

/// The VAE's `DownEncoderBlock2D`: resnets (no time embedding), then an optional
/// downsampler with asymmetric padding.
#[derive(Debug)]
pub struct DownEncoderBlock2D {
    resnets: Vec<ResnetBlock2D>,
    downsampler: Option<Downsample2D>,
}

impl DownEncoderBlock2D {
    pub fn new(
        vb: nn::VarBuilder,
        in_channels: usize,
        out_channels: usize,
        num_layers: usize,
        groups: usize,
        add_downsample: bool,
    ) -> Result<Self> {
        let rcfg = ResnetBlock2DConfig {
            out_channels: Some(out_channels),
            temb_channels: None,
            groups,
            eps: 1e-6,
            output_scale_factor: 1.0,
        };
        let vbr = vb.pp("resnets");
        let resnets = (0..num_layers)
            .map(|i| {
                let cin = if i == 0 { in_channels } else { out_channels };
                ResnetBlock2D::new(vbr.pp(i), cin, rcfg)
            })
            .collect::<Result<Vec<_>>>()?;
        let downsampler = if add_downsample {
            Some(Downsample2D::new(
                vb.pp("downsamplers").pp(0),
                out_channels,
                0,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            downsampler,
        })
    }
}

impl Module for DownEncoderBlock2D {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for r in &self.resnets {
            xs = r.forward(&xs, None)?;
        }
        match &self.downsampler {
            Some(ds) => ds.forward(&xs),
            None => Ok(xs),
        }
    }
}

/// The VAE's `UpDecoderBlock2D`: resnets, then an optional ×2 upsampler.
#[derive(Debug)]
pub struct UpDecoderBlock2D {
    resnets: Vec<ResnetBlock2D>,
    upsampler: Option<Upsample2D>,
}

impl UpDecoderBlock2D {
    pub fn new(
        vb: nn::VarBuilder,
        in_channels: usize,
        out_channels: usize,
        num_layers: usize,
        groups: usize,
        add_upsample: bool,
    ) -> Result<Self> {
        let rcfg = ResnetBlock2DConfig {
            out_channels: Some(out_channels),
            temb_channels: None,
            groups,
            eps: 1e-6,
            output_scale_factor: 1.0,
        };
        let vbr = vb.pp("resnets");
        let resnets = (0..num_layers)
            .map(|i| {
                let cin = if i == 0 { in_channels } else { out_channels };
                ResnetBlock2D::new(vbr.pp(i), cin, rcfg)
            })
            .collect::<Result<Vec<_>>>()?;
        let upsampler = if add_upsample {
            Some(Upsample2D::new(vb.pp("upsamplers").pp(0), out_channels)?)
        } else {
            None
        };
        Ok(Self { resnets, upsampler })
    }
}

impl Module for UpDecoderBlock2D {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for r in &self.resnets {
            xs = r.forward(&xs, None)?;
        }
        match &self.upsampler {
            Some(us) => us.forward(&xs, None),
            None => Ok(xs),
        }
    }
}

/// The VAE's `UNetMidBlock2D`: resnet, then (optionally) single-head attention and a
/// second resnet; group norms eps 1e-6.
#[derive(Debug)]
pub struct VaeMidBlock {
    resnet: ResnetBlock2D,
    attn: Option<AttentionBlock>,
    resnet2: ResnetBlock2D,
}

impl VaeMidBlock {
    pub fn new(
        vb: nn::VarBuilder,
        channels: usize,
        groups: usize,
        add_attention: bool,
    ) -> Result<Self> {
        let rcfg = ResnetBlock2DConfig {
            out_channels: None,
            temb_channels: None,
            groups,
            eps: 1e-6,
            output_scale_factor: 1.0,
        };
        let vbr = vb.pp("resnets");
        let resnet = ResnetBlock2D::new(vbr.pp(0), channels, rcfg)?;
        let attn = if add_attention {
            Some(AttentionBlock::new(
                vb.pp("attentions").pp(0),
                channels,
                groups,
                1e-6,
            )?)
        } else {
            None
        };
        let resnet2 = ResnetBlock2D::new(vbr.pp(1), channels, rcfg)?;
        Ok(Self {
            resnet,
            attn,
            resnet2,
        })
    }
}

impl Module for VaeMidBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.resnet.forward(xs, None)?;
        let xs = match &self.attn {
            Some(a) => a.forward(&xs)?,
            None => xs,
        };
        self.resnet2.forward(&xs, None)
    }
}
