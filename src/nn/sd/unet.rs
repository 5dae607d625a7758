//! Stable Diffusion 1.x / 2.x denoiser: diffusers `UNet2DConditionModel` restricted to the
//! blocks SD uses (`CrossAttnDownBlock2D`, `DownBlock2D`, `UNetMidBlock2DCrossAttn`,
//! `UpBlock2D`, `CrossAttnUpBlock2D`), keys as in diffusers' `diffusion_pytorch_model`.
//!
//! Vendored from candle-transformers 0.11.1 `models/stable_diffusion/unet_2d.rs` and
//! `embeddings.rs` (see `LICENSE-candle-transformers`). Changes: the sinusoidal timestep
//! embedding is computed on the host in f32 in PyTorch's operation order and then cast to the
//! model dtype (diffusers' way; upstream computed it in the model dtype, which drifts in f16
//! and rounds t = 999 to 1000 in bf16); per-block layer / transformer / cross-attention
//! counts; plain and cross-attention block types chosen per block and per direction;
//! latent sizes are checked ([`LATENT_MULTIPLE`]); a one-element batch of text embeddings
//! is broadcast over the latent batch; ControlNet residuals, sliced and flash attention are
//! gone.
use super::attention::SpatialTransformerConfig;
use super::blocks::{
    BlockAttention, UNetBlockConfig, UNetDownBlock, UNetMidBlock2DCrossAttn, UNetUpBlock,
};
use super::resnet::ResnetBlock2DConfig;
use candle_core::{Module, Result, Tensor};
use candle_nn as nn;

/// Both latent sides must be multiples of this (SD's three downsamplers); other sizes are
/// refused by [`UNet2DConditionModel::forward`] with [`LatentSizeError`].
pub const LATENT_MULTIPLE: usize = 8;

/// One resolution level of the U-Net, finest first.
#[derive(Debug, Clone, PartialEq)]
pub struct UNetLevel {
    /// `block_out_channels[i]`.
    pub out_channels: usize,
    /// Resnets in the down block (`layers_per_block[i]`); the matching up block has one more.
    pub layers: usize,
    /// Attention heads (diffusers' misnamed `attention_head_dim[i]`); head width is
    /// `out_channels / heads`.
    pub heads: usize,
    /// Transformer blocks per spatial transformer (`transformer_layers_per_block[i]`).
    pub transformer_layers: usize,
    /// `cross_attention_dim[i]`: width of the text embedding.
    pub cross_attention_dim: usize,
    /// The down block is `CrossAttnDownBlock2D` (else `DownBlock2D`).
    pub down_cross_attention: bool,
    /// The up block at this level is `CrossAttnUpBlock2D` (else `UpBlock2D`).
    pub up_cross_attention: bool,
}

/// Architecture of a [`UNet2DConditionModel`] (built from diffusers' `unet/config.json` by
/// the loader, or by hand in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub center_input_sample: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    /// Levels, finest first (at least one).
    pub levels: Vec<UNetLevel>,
    pub downsample_padding: usize,
    pub mid_block_scale_factor: f64,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    pub resnet_out_scale_factor: f64,
    /// SD 2.x: the spatial transformers project with linear layers, not 1×1 convolutions.
    pub use_linear_projection: bool,
    /// Width of the time embedding (diffusers: `time_embedding_dim` or
    /// `4 · block_out_channels[0]`).
    pub time_embed_dim: usize,
    pub conv_in_kernel: usize,
    pub conv_out_kernel: usize,
}

/// The latent's sides are not multiples of [`LATENT_MULTIPLE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "latent size {height}×{width} is not supported: both sides must be multiples of \
     {LATENT_MULTIPLE} (images multiples of {})",
    8 * LATENT_MULTIPLE
)]
pub struct LatentSizeError {
    pub height: usize,
    pub width: usize,
}

/// diffusers `get_timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift)` for one
/// timestep, in f32 with PyTorch's operation order: `e_i = exp((−ln 10⁴ · i) / (dim/2 −
/// shift))`, `a_i = t · e_i`, `[sin a, cos a]` (or `[cos a, sin a]` when flipped), zero-padded
/// to `dim`.
pub fn timestep_embedding(t: f64, dim: usize, flip_sin_to_cos: bool, shift: f64) -> Vec<f32> {
    let half = dim / 2;
    let t = t as f32;
    let neg_ln = -(10000f64.ln()) as f32;
    let denom = (half as f64 - shift) as f32;
    let args: Vec<f32> = (0..half)
        .map(|i| t * ((neg_ln * i as f32) / denom).exp())
        .collect();
    let sin = args.iter().map(|a| a.sin());
    let cos = args.iter().map(|a| a.cos());
    let mut out: Vec<f32> = if flip_sin_to_cos {
        cos.chain(sin).collect()
    } else {
        sin.chain(cos).collect()
    };
    out.resize(dim, 0.0);
    out
}

/// SD's noise-prediction U-Net. Output: ε (or v, per the scheduler) with the input's shape.
#[derive(Debug)]
pub struct UNet2DConditionModel {
    conv_in: nn::Conv2d,
    time_linear_1: nn::Linear,
    time_linear_2: nn::Linear,
    down_blocks: Vec<UNetDownBlock>,
    mid_block: UNetMidBlock2DCrossAttn,
    up_blocks: Vec<UNetUpBlock>,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2d,
    config: UNetConfig,
}

impl UNet2DConditionModel {
    pub fn new(vb: nn::VarBuilder, cfg: &UNetConfig) -> Result<Self> {
        let n = cfg.levels.len();
        if n == 0 {
            candle_core::bail!("UNet config has no levels");
        }
        for l in &cfg.levels {
            if l.heads == 0 || l.out_channels.checked_rem(l.heads) != Some(0) {
                candle_core::bail!(
                    "UNet level with {} channels cannot have {} attention heads",
                    l.out_channels,
                    l.heads
                );
            }
        }
        let c0 = cfg.levels[0].out_channels;
        let conv_in = nn::conv2d(
            cfg.in_channels,
            c0,
            cfg.conv_in_kernel,
            nn::Conv2dConfig {
                padding: (cfg.conv_in_kernel - 1) / 2,
                ..Default::default()
            },
            vb.pp("conv_in"),
        )?;
        let vbt = vb.pp("time_embedding");
        let time_linear_1 = nn::linear(c0, cfg.time_embed_dim, vbt.pp("linear_1"))?;
        let time_linear_2 = nn::linear(cfg.time_embed_dim, cfg.time_embed_dim, vbt.pp("linear_2"))?;

        let attention = |l: &UNetLevel, on: bool| {
            on.then_some(BlockAttention {
                heads: l.heads,
                transformer: SpatialTransformerConfig {
                    depth: l.transformer_layers,
                    num_groups: cfg.norm_num_groups,
                    context_dim: l.cross_attention_dim,
                    use_linear_projection: cfg.use_linear_projection,
                },
            })
        };
        let block_cfg = |layers: usize, attention: Option<BlockAttention>| UNetBlockConfig {
            num_layers: layers,
            resnet_eps: cfg.norm_eps,
            resnet_groups: cfg.norm_num_groups,
            resnet_out_scale_factor: cfg.resnet_out_scale_factor,
            temb_channels: cfg.time_embed_dim,
            attention,
        };

        let vbd = vb.pp("down_blocks");
        let mut down_blocks = Vec::with_capacity(n);
        for (i, l) in cfg.levels.iter().enumerate() {
            let cin = if i == 0 {
                c0
            } else {
                cfg.levels[i - 1].out_channels
            };
            let downsample = (i + 1 < n).then_some(cfg.downsample_padding);
            let bc = block_cfg(l.layers, attention(l, l.down_cross_attention));
            down_blocks.push(UNetDownBlock::new(
                vbd.pp(i),
                cin,
                l.out_channels,
                downsample,
                bc,
            )?);
        }

        let last = &cfg.levels[n - 1];
        let mid_block = UNetMidBlock2DCrossAttn::new(
            vb.pp("mid_block"),
            last.out_channels,
            ResnetBlock2DConfig {
                out_channels: None,
                temb_channels: Some(cfg.time_embed_dim),
                groups: cfg.norm_num_groups,
                eps: cfg.norm_eps,
                output_scale_factor: cfg.mid_block_scale_factor,
            },
            attention(last, true).expect("attention requested"),
        )?;

        let vbu = vb.pp("up_blocks");
        let mut up_blocks = Vec::with_capacity(n);
        for i in 0..n {
            let level = &cfg.levels[n - 1 - i];
            let prev_out = if i == 0 {
                last.out_channels
            } else {
                cfg.levels[n - i].out_channels
            };
            let skip_in = cfg.levels[n - 1 - (i + 1).min(n - 1)].out_channels;
            let bc = block_cfg(level.layers + 1, attention(level, level.up_cross_attention));
            up_blocks.push(UNetUpBlock::new(
                vbu.pp(i),
                skip_in,
                prev_out,
                level.out_channels,
                i + 1 < n,
                bc,
            )?);
        }

        let conv_norm_out = nn::group_norm(
            cfg.norm_num_groups,
            c0,
            cfg.norm_eps,
            vb.pp("conv_norm_out"),
        )?;
        let conv_out = nn::conv2d(
            c0,
            cfg.out_channels,
            cfg.conv_out_kernel,
            nn::Conv2dConfig {
                padding: (cfg.conv_out_kernel - 1) / 2,
                ..Default::default()
            },
            vb.pp("conv_out"),
        )?;
        Ok(Self {
            conv_in,
            time_linear_1,
            time_linear_2,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out,
            conv_out,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Checks a latent size before a (possibly long) forward pass.
    pub fn check_latent_size(
        height: usize,
        width: usize,
    ) -> std::result::Result<(), LatentSizeError> {
        if height == 0
            || width == 0
            || height.checked_rem(LATENT_MULTIPLE) != Some(0)
            || width.checked_rem(LATENT_MULTIPLE) != Some(0)
        {
            return Err(LatentSizeError { height, width });
        }
        Ok(())
    }

    /// `sample`: (B, C, H, W) latents; `timestep`: the diffusers timestep (0..=999 for SD,
    /// fractional allowed); `encoder_hidden_states`: (B or 1, 77, D) text embeddings.
    /// A bad latent size is a `candle_core::Error::Msg` carrying [`LatentSizeError`]'s text.
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: f64,
        encoder_hidden_states: &Tensor,
    ) -> Result<Tensor> {
        let (b, _, h, w) = sample.dims4()?;
        Self::check_latent_size(h, w).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let context = match encoder_hidden_states.dims3()? {
            (1, s, d) if b > 1 => encoder_hidden_states
                .broadcast_as((b, s, d))?
                .contiguous()?,
            _ => encoder_hidden_states.clone(),
        };
        let n = self.config.levels.len();
        let up_factor = 1usize << (n - 1);
        let forward_upsample_size =
            h.checked_rem(up_factor) != Some(0) || w.checked_rem(up_factor) != Some(0);

        let xs = if self.config.center_input_sample {
            ((sample * 2.0)? - 1.0)?
        } else {
            sample.clone()
        };

        // 1. time: f32 sinusoids on the host, cast to the model dtype (diffusers).
        let c0 = self.config.levels[0].out_channels;
        let t_emb = timestep_embedding(
            timestep,
            c0,
            self.config.flip_sin_to_cos,
            self.config.freq_shift,
        );
        let t_emb = Tensor::from_vec(t_emb, (1, c0), sample.device())?
            .to_dtype(sample.dtype())?
            .broadcast_as((b, c0))?
            .contiguous()?;
        let emb = self.time_linear_1.forward(&t_emb)?;
        let emb = self.time_linear_2.forward(&nn::ops::silu(&emb)?)?;

        // 2. down
        let xs = self.conv_in.forward(&xs)?;
        let mut skips = vec![xs.clone()];
        let mut xs = xs;
        for block in &self.down_blocks {
            let (out, states) = block.forward(&xs, &emb, &context)?;
            skips.extend(states);
            xs = out;
        }

        // 3. mid
        let mut xs = self.mid_block.forward(&xs, &emb, &context)?;

        // 4. up (diffusers forwards the skip's size when the latent is not a multiple of the
        // total upsampling factor, so odd intermediate sizes round-trip)
        for (i, block) in self.up_blocks.iter().enumerate() {
            let block_skips = skips.split_off(skips.len() - block.num_resnets());
            let upsample_size = if i + 1 < n && forward_upsample_size {
                let (_, _, sh, sw) = skips.last().expect("skip left").dims4()?;
                Some((sh, sw))
            } else {
                None
            };
            xs = block.forward(&xs, &block_skips, &emb, &context, upsample_size)?;
        }

        // 5. out
        let xs = nn::ops::silu(&self.conv_norm_out.forward(&xs)?)?;
        self.conv_out.forward(&xs)
    }
}

#[cfg(test)]
mod tests {
    use super::timestep_embedding;

    #[test]
    fn timestep_embedding_is_the_f32_sinusoid() {
        for t in [0.0, 1.0, 200.0, 999.0] {
            let e = timestep_embedding(t, 10, true, 0.0);
            assert_eq!(e.len(), 10);
            for i in 0..5 {
                let a = t * (-(10000f64.ln()) * i as f64 / 5.0).exp();
                // f32 phases: |error| ≲ t · 2⁻²⁴ rad.
                let tol = 1e-6 + t * 1.2e-7;
                assert!((e[i] as f64 - a.cos()).abs() < tol, "t {t} cos {i}");
                assert!((e[5 + i] as f64 - a.sin()).abs() < tol, "t {t} sin {i}");
            }
        }
        let odd = timestep_embedding(3.0, 7, false, 1.0);
        assert_eq!(odd.len(), 7);
        assert_eq!(odd[6], 0.0);
        assert_eq!(odd[0], (3.0f32).sin());
    }
}
