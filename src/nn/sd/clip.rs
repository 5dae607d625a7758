//! SD's text encoder: transformers `CLIPTextModel` (CLIP-L for SD 1.x, OpenCLIP-H truncated
//! to 23 layers for SD 2.x); `forward` returns `last_hidden_state` (after the final layer
//! norm), which is what SD's pipelines feed the U-Net.
//!
//! Vendored from candle-transformers 0.11.1 `models/stable_diffusion/clip.rs` (see
//! `LICENSE-candle-transformers`). Changes: `hidden_act = "gelu"` is the exact erf GELU
//! (transformers' `GELUActivation`; upstream's SD 2.1 config used the tanh approximation),
//! `gelu_new` / `gelu_pytorch_tanh` are the tanh form, `quick_gelu` unchanged; position
//! embeddings are taken for the actual sequence length (upstream required exactly
//! `max_position_embeddings` tokens); `layer_norm_eps` configurable; keys are relative to
//! the `text_model.` prefix (the loader strips it when present); the saved
//! `embeddings.position_ids` buffer, if present, is consumed and checked.
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn as nn;

/// Activation of the CLIP MLP (transformers `hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `quick_gelu`: `x · σ(1.702 x)` (CLIP-L, SD 1.x).
    QuickGelu,
    /// `gelu`: exact `x · Φ(x)` (OpenCLIP-H, SD 2.x).
    GeluErf,
    /// `gelu_new` / `gelu_pytorch_tanh`: tanh approximation.
    GeluTanh,
}

impl Activation {
    /// Parses transformers' `hidden_act`.
    pub fn from_hidden_act(s: &str) -> Option<Self> {
        match s {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            _ => None,
        }
    }
}

impl Module for Activation {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::QuickGelu => xs * nn::ops::sigmoid(&(xs * 1.702f64)?)?,
            Self::GeluErf => xs.gelu_erf(),
            Self::GeluTanh => xs.gelu(),
        }
    }
}

/// Architecture of a [`ClipTextModel`] (transformers `CLIPTextConfig` field names).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

#[derive(Debug)]
struct Embeddings {
    token_embedding: nn::Embedding,
    position_embedding: nn::Embedding,
}

impl Embeddings {
    fn new(vb: nn::VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        let token_embedding = nn::embedding(c.vocab_size, c.hidden_size, vb.pp("token_embedding"))?;
        let position_embedding = nn::embedding(
            c.max_position_embeddings,
            c.hidden_size,
            vb.pp("position_embedding"),
        )?;
        // Older transformers saved the `position_ids` buffer (arange); consume and check it.
        if vb.contains_tensor("position_ids") {
            let ids = vb
                .get((1, c.max_position_embeddings), "position_ids")?
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            if ids.iter().enumerate().any(|(i, &v)| v != i as f64) {
                candle_core::bail!("text encoder `embeddings.position_ids` is not 0..n");
            }
        }
        Ok(Self {
            token_embedding,
            position_embedding,
        })
    }

    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let pos = Tensor::arange(0u32, seq as u32, ids.device())?.unsqueeze(0)?;
        self.token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.forward(&pos)?)
    }
}

#[derive(Debug)]
struct Attention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(vb: nn::VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            q_proj: nn::linear(d, d, vb.pp("q_proj"))?,
            k_proj: nn::linear(d, d, vb.pp("k_proj"))?,
            v_proj: nn::linear(d, d, vb.pp("v_proj"))?,
            out_proj: nn::linear(d, d, vb.pp("out_proj"))?,
            heads: c.num_attention_heads,
            head_dim: d / c.num_attention_heads,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let in_dtype = xs.dtype();
        let (b, n, d) = xs.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, n, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?
                .to_dtype(DType::F32)
        };
        let q = split(self.q_proj.forward(xs)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let w = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let w = nn::ops::softmax_last_dim(&w)?;
        let out = w
            .matmul(&v)?
            .to_dtype(in_dtype)?
            .transpose(1, 2)?
            .reshape((b, n, d))?;
        self.out_proj.forward(&out)
    }
}

#[derive(Debug)]
struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    act: Activation,
    layer_norm2: nn::LayerNorm,
}

impl EncoderLayer {
    fn new(vb: nn::VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            self_attn: Attention::new(vb.pp("self_attn"), c)?,
            layer_norm1: nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            fc1: nn::linear(d, c.intermediate_size, vb.pp("mlp.fc1"))?,
            fc2: nn::linear(c.intermediate_size, d, vb.pp("mlp.fc2"))?,
            act: c.hidden_act,
            layer_norm2: nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm2"))?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = self
            .self_attn
            .forward(&self.layer_norm1.forward(xs)?, mask)?;
        let xs = (h + xs)?;
        let h = self.layer_norm2.forward(&xs)?;
        let h = self
            .fc2
            .forward(&self.act.forward(&self.fc1.forward(&h)?)?)?;
        h + xs
    }
}

/// transformers `CLIPTextModel` (keys below `text_model.`).
#[derive(Debug)]
pub struct ClipTextModel {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    final_layer_norm: nn::LayerNorm,
    config: ClipTextConfig,
}

impl ClipTextModel {
    pub fn new(vb: nn::VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        if c.num_attention_heads == 0 || c.hidden_size.checked_rem(c.num_attention_heads) != Some(0)
        {
            candle_core::bail!(
                "text encoder hidden_size {} is not a multiple of {} heads",
                c.hidden_size,
                c.num_attention_heads
            );
        }
        let embeddings = Embeddings::new(vb.pp("embeddings"), c)?;
        let vbl = vb.pp("encoder").pp("layers");
        let layers = (0..c.num_hidden_layers)
            .map(|i| EncoderLayer::new(vbl.pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm =
            nn::layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("final_layer_norm"))?;
        Ok(Self {
            embeddings,
            layers,
            final_layer_norm,
            config: c.clone(),
        })
    }

    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.embeddings.token_embedding.embeddings().device()
    }

    fn causal_mask(n: usize, device: &Device) -> Result<Tensor> {
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if j > i { f32::MIN } else { 0.0 }))
            .collect();
        Tensor::from_vec(mask, (n, n), device)
    }

    /// `input_ids`: (B, N) token ids (u32 or i64), N ≤ `max_position_embeddings`.
    /// Returns `last_hidden_state` (B, N, hidden_size).
    pub fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (_, n) = input_ids.dims2()?;
        if n > self.config.max_position_embeddings {
            candle_core::bail!(
                "{n} tokens exceed the text encoder's {} positions",
                self.config.max_position_embeddings
            );
        }
        let mut xs = self.embeddings.forward(input_ids)?;
        let mask = Self::causal_mask(n, xs.device())?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask)?;
        }
        self.final_layer_norm.forward(&xs)
    }
}

impl Module for ClipTextModel {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ClipTextModel::forward(self, xs)
    }
}
