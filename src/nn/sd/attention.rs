//! Attention layers: the U-Net's `Transformer2DModel` (self- and cross-attention, GEGLU
//! feed-forward) and the VAE's single-head spatial self-attention.
//!
//! Vendored from candle-transformers 0.11.1 `models/stable_diffusion/attention.rs` (see
//! `LICENSE-candle-transformers`). Changes: GEGLU uses the exact erf GELU (diffusers'
//! `F.gelu`; upstream used the tanh approximation); the linear `proj_out` is
//! `inner_dim → in_channels` (upstream had the two swapped, harmless only when equal);
//! sliced and flash attention, tracing spans and the SD3 special cases are gone; the VAE
//! attention accepts the legacy `query/key/value/proj_attn` names and 1×1-conv-shaped
//! weights without a failed lookup (so the strict loader sees only real requests).
//! Attention scores and softmax are always computed in f32 (diffusers' `upcast_attention`).
use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn as nn;

/// `proj(x) = [h, g]`, `out = h · gelu_erf(g)`.
#[derive(Debug)]
struct GeGlu {
    proj: nn::Linear,
}

impl GeGlu {
    fn new(vb: nn::VarBuilder, dim_in: usize, dim_out: usize) -> Result<Self> {
        Ok(Self {
            proj: nn::linear(dim_in, dim_out * 2, vb.pp("proj"))?,
        })
    }
}

impl Module for GeGlu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hg = self.proj.forward(xs)?.chunk(2, D::Minus1)?;
        &hg[0] * hg[1].gelu_erf()?
    }
}

/// diffusers `FeedForward(dim, mult = 4, activation_fn = "geglu")`: `net.0` GEGLU, `net.2`
/// linear (`net.1` is dropout, weightless).
#[derive(Debug)]
struct FeedForward {
    project_in: GeGlu,
    linear: nn::Linear,
}

impl FeedForward {
    fn new(vb: nn::VarBuilder, dim: usize, mult: usize) -> Result<Self> {
        let inner = dim * mult;
        let vb = vb.pp("net");
        Ok(Self {
            project_in: GeGlu::new(vb.pp("0"), dim, inner)?,
            linear: nn::linear(inner, dim, vb.pp("2"))?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.linear.forward(&self.project_in.forward(xs)?)
    }
}

/// diffusers `Attention` as used by SD's transformer blocks: q/k/v without bias, `to_out.0`
/// with bias, scale `d_head^-½`.
#[derive(Debug)]
pub struct CrossAttention {
    to_q: nn::Linear,
    to_k: nn::Linear,
    to_v: nn::Linear,
    to_out: nn::Linear,
    heads: usize,
    scale: f64,
}

impl CrossAttention {
    pub fn new(
        vb: nn::VarBuilder,
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        dim_head: usize,
    ) -> Result<Self> {
        let inner = dim_head * heads;
        let context_dim = context_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: nn::linear_no_bias(query_dim, inner, vb.pp("to_q"))?,
            to_k: nn::linear_no_bias(context_dim, inner, vb.pp("to_k"))?,
            to_v: nn::linear_no_bias(context_dim, inner, vb.pp("to_v"))?,
            to_out: nn::linear(inner, query_dim, vb.pp("to_out.0"))?,
            heads,
            scale: 1.0 / (dim_head as f64).sqrt(),
        })
    }

    fn heads_to_batch(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, n, dim) = xs.dims3()?;
        xs.reshape((b, n, self.heads, dim / self.heads))?
            .transpose(1, 2)?
            .reshape((b * self.heads, n, dim / self.heads))
    }

    fn batch_to_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (bh, n, d) = xs.dims3()?;
        xs.reshape((bh / self.heads, self.heads, n, d))?
            .transpose(1, 2)?
            .reshape((bh / self.heads, n, d * self.heads))
    }

    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let in_dtype = xs.dtype();
        let context = context.unwrap_or(xs).contiguous()?;
        let q = self.heads_to_batch(&self.to_q.forward(xs)?)?;
        let k = self.heads_to_batch(&self.to_k.forward(&context)?)?;
        let v = self.heads_to_batch(&self.to_v.forward(&context)?)?;
        let (q, k, v) = (
            q.to_dtype(DType::F32)?,
            k.to_dtype(DType::F32)?,
            v.to_dtype(DType::F32)?,
        );
        let w = (q.matmul(&k.t()?)? * self.scale)?;
        let w = nn::ops::softmax_last_dim(&w)?;
        let out = w.matmul(&v)?.to_dtype(in_dtype)?;
        self.to_out.forward(&self.batch_to_heads(&out)?)
    }
}

/// diffusers `BasicTransformerBlock` (layer norms, eps 1e-5): self-attention, cross-attention,
/// GEGLU feed-forward, each pre-normed and residual.
#[derive(Debug)]
struct BasicTransformerBlock {
    attn1: CrossAttention,
    ff: FeedForward,
    attn2: CrossAttention,
    norm1: nn::LayerNorm,
    norm2: nn::LayerNorm,
    norm3: nn::LayerNorm,
}

impl BasicTransformerBlock {
    fn new(
        vb: nn::VarBuilder,
        dim: usize,
        heads: usize,
        d_head: usize,
        context_dim: usize,
    ) -> Result<Self> {
        Ok(Self {
            attn1: CrossAttention::new(vb.pp("attn1"), dim, None, heads, d_head)?,
            ff: FeedForward::new(vb.pp("ff"), dim, 4)?,
            attn2: CrossAttention::new(vb.pp("attn2"), dim, Some(context_dim), heads, d_head)?,
            norm1: nn::layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            norm2: nn::layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            norm3: nn::layer_norm(dim, 1e-5, vb.pp("norm3"))?,
        })
    }

    fn forward(&self, xs: &Tensor, context: &Tensor) -> Result<Tensor> {
        let xs = (self.attn1.forward(&self.norm1.forward(xs)?, None)? + xs)?;
        let xs = (self
            .attn2
            .forward(&self.norm2.forward(&xs)?, Some(context))?
            + xs)?;
        self.ff.forward(&self.norm3.forward(&xs)?)? + xs
    }
}

/// Configuration of a [`SpatialTransformer`].
#[derive(Debug, Clone, Copy)]
pub struct SpatialTransformerConfig {
    /// Number of transformer blocks (diffusers `transformer_layers_per_block`).
    pub depth: usize,
    /// Groups of the input group norm (eps 1e-6).
    pub num_groups: usize,
    /// Width of the text embedding the cross-attention reads.
    pub context_dim: usize,
    /// `proj_in`/`proj_out` are linear layers (SD 2.x) rather than 1×1 convolutions.
    pub use_linear_projection: bool,
}

#[derive(Debug)]
enum Proj {
    Conv2d(nn::Conv2d),
    Linear(nn::Linear),
}

/// diffusers `Transformer2DModel` with continuous input (a.k.a. spatial transformer).
#[derive(Debug)]
pub struct SpatialTransformer {
    norm: nn::GroupNorm,
    proj_in: Proj,
    blocks: Vec<BasicTransformerBlock>,
    proj_out: Proj,
}

impl SpatialTransformer {
    pub fn new(
        vb: nn::VarBuilder,
        in_channels: usize,
        heads: usize,
        d_head: usize,
        cfg: SpatialTransformerConfig,
    ) -> Result<Self> {
        let inner = heads * d_head;
        let norm = nn::group_norm(cfg.num_groups, in_channels, 1e-6, vb.pp("norm"))?;
        let (proj_in, proj_out) = if cfg.use_linear_projection {
            (
                Proj::Linear(nn::linear(in_channels, inner, vb.pp("proj_in"))?),
                Proj::Linear(nn::linear(inner, in_channels, vb.pp("proj_out"))?),
            )
        } else {
            let c = Default::default();
            (
                Proj::Conv2d(nn::conv2d(in_channels, inner, 1, c, vb.pp("proj_in"))?),
                Proj::Conv2d(nn::conv2d(inner, in_channels, 1, c, vb.pp("proj_out"))?),
            )
        };
        let vb_tb = vb.pp("transformer_blocks");
        let blocks = (0..cfg.depth)
            .map(|i| BasicTransformerBlock::new(vb_tb.pp(i), inner, heads, d_head, cfg.context_dim))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm,
            proj_in,
            blocks,
            proj_out,
        })
    }

    pub fn forward(&self, xs: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let residual = xs;
        let xs = self.norm.forward(xs)?;
        // (b, c, h, w) → (b, h·w, c)
        let to_seq = |t: &Tensor| -> Result<Tensor> {
            let ch = t.dim(1)?;
            t.permute((0, 2, 3, 1))?.reshape((b, h * w, ch))
        };
        let mut xs = match &self.proj_in {
            Proj::Conv2d(p) => to_seq(&p.forward(&xs)?)?,
            Proj::Linear(p) => p.forward(&to_seq(&xs)?)?,
        };
        for block in &self.blocks {
            xs = block.forward(&xs, context)?;
        }
        let inner = xs.dim(2)?;
        let to_img = |t: &Tensor, ch: usize| -> Result<Tensor> {
            t.reshape((b, h, w, ch))?.permute((0, 3, 1, 2))
        };
        let xs = match &self.proj_out {
            Proj::Conv2d(p) => p.forward(&to_img(&xs, inner)?.contiguous()?)?,
            Proj::Linear(p) => to_img(&p.forward(&xs)?, c)?,
        };
        xs + residual
    }
}

/// Loads a `channels × channels` linear layer stored either as a matrix or as a 1×1 conv.
fn square_linear(channels: usize, vb: nn::VarBuilder) -> Result<nn::Linear> {
    let conv_shaped = vb.contains_tensor("weight") && vb.get_unchecked("weight")?.rank() == 4;
    let weight = if conv_shaped {
        vb.get((channels, channels, 1, 1), "weight")?
            .reshape((channels, channels))?
    } else {
        vb.get((channels, channels), "weight")?
    };
    let bias = vb.get(channels, "bias")?;
    Ok(nn::Linear::new(weight, Some(bias)))
}

/// The VAE's single-head self-attention over all pixels (diffusers `Attention` built with
/// `_from_deprecated_attn_block`, `heads = channels / attention_head_dim = 1`), residual.
#[derive(Debug)]
pub struct AttentionBlock {
    group_norm: nn::GroupNorm,
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    proj_attn: nn::Linear,
    channels: usize,
}

impl AttentionBlock {
    pub fn new(vb: nn::VarBuilder, channels: usize, groups: usize, eps: f64) -> Result<Self> {
        let group_norm = nn::group_norm(groups, channels, eps, vb.pp("group_norm"))?;
        let legacy = vb.contains_tensor("query.weight");
        let (q, k, v, o) = if legacy {
            ("query", "key", "value", "proj_attn")
        } else {
            ("to_q", "to_k", "to_v", "to_out.0")
        };
        Ok(Self {
            group_norm,
            query: square_linear(channels, vb.pp(q))?,
            key: square_linear(channels, vb.pp(k))?,
            value: square_linear(channels, vb.pp(v))?,
            proj_attn: square_linear(channels, vb.pp(o))?,
            channels,
        })
    }
}

impl Module for AttentionBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let in_dtype = xs.dtype();
        let residual = xs;
        let (b, c, h, w) = xs.dims4()?;
        let seq = self
            .group_norm
            .forward(xs)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.query.forward(&seq)?.to_dtype(DType::F32)?;
        let k = self.key.forward(&seq)?.to_dtype(DType::F32)?;
        let v = self.value.forward(&seq)?.to_dtype(DType::F32)?;
        let scale = 1.0 / (self.channels as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let probs = nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?.to_dtype(in_dtype)?;
        let out = self
            .proj_attn
            .forward(&out)?
            .transpose(1, 2)?
            .reshape((b, c, h, w))?;
        out + residual
    }
}
