//! diffusers / transformers `config.json` files (field names as they write them) and their
//! translation into the network configs, refusing what SD 1.x / 2.x do not use.
//!
//! Every field is optional in the structs below: a missing key and JSON `null` both mean
//! diffusers' default, which the `resolve` functions fill in. Unknown keys are ignored (as
//! diffusers does); keys that would switch on an architecture we do not implement are
//! refused with [`SdError::Unsupported`] naming the key.
use super::clip::{Activation, ClipTextConfig};
use super::error::{Component, Feature, SdError};
use super::unet::{UNetConfig, UNetLevel};
use super::vae::VaeConfig;
use serde::Deserialize;
use serde_json::Value;

/// SD generation, as told by the U-Net config (it fixes the empty prompt's padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// SD 1.x: scalar `attention_head_dim`, convolutional projections, CLIP-L.
    Sd1,
    /// SD 2.x: per-block `attention_head_dim` list and/or `use_linear_projection`,
    /// OpenCLIP-H.
    Sd2,
}

/// What the U-Net predicts (`scheduler_config.json` `prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionType {
    /// ε (SD 1.x, SD 2.x base).
    Epsilon,
    /// v = √ᾱ ε − √(1−ᾱ) x₀ (SD 2.x 768-v).
    VPrediction,
}

/// An int-or-list config value (`attention_head_dim: 8` or `[5, 10, 20, 20]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn is_many(&self) -> bool {
        matches!(self, Self::Many(_))
    }
    fn expand(&self, n: usize) -> Option<Vec<T>> {
        match self {
            Self::One(v) => Some(vec![v.clone(); n]),
            Self::Many(v) if v.len() == n => Some(v.clone()),
            Self::Many(_) => None,
        }
    }
}

/// `unet/config.json` (diffusers `UNet2DConditionModel`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DiffusersUNetConfig {
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    pub in_channels: Option<usize>,
    pub out_channels: Option<usize>,
    pub center_input_sample: Option<bool>,
    pub flip_sin_to_cos: Option<bool>,
    pub freq_shift: Option<f64>,
    pub down_block_types: Option<Vec<String>>,
    /// `Some(None)`: explicitly `null` (no mid block, unsupported).
    #[serde(deserialize_with = "explicit_null")]
    pub mid_block_type: Option<Option<String>>,
    pub up_block_types: Option<Vec<String>>,
    pub only_cross_attention: Option<OneOrMany<bool>>,
    pub block_out_channels: Option<Vec<usize>>,
    pub layers_per_block: Option<OneOrMany<usize>>,
    pub downsample_padding: Option<usize>,
    pub mid_block_scale_factor: Option<f64>,
    pub act_fn: Option<String>,
    /// `Some(None)`: explicitly `null` (no output norm, unsupported).
    #[serde(deserialize_with = "explicit_null")]
    pub norm_num_groups: Option<Option<usize>>,
    pub norm_eps: Option<f64>,
    pub cross_attention_dim: Option<OneOrMany<usize>>,
    pub transformer_layers_per_block: Option<Value>,
    pub reverse_transformer_layers_per_block: Option<Value>,
    pub encoder_hid_dim: Option<Value>,
    pub encoder_hid_dim_type: Option<String>,
    pub attention_head_dim: Option<OneOrMany<usize>>,
    pub num_attention_heads: Option<Value>,
    pub dual_cross_attention: Option<bool>,
    pub use_linear_projection: Option<bool>,
    pub class_embed_type: Option<String>,
    pub addition_embed_type: Option<String>,
    pub addition_time_embed_dim: Option<Value>,
    pub num_class_embeds: Option<Value>,
    pub upcast_attention: Option<bool>,
    pub resnet_time_scale_shift: Option<String>,
    pub resnet_skip_time_act: Option<bool>,
    pub resnet_out_scale_factor: Option<f64>,
    pub time_embedding_type: Option<String>,
    pub time_embedding_dim: Option<usize>,
    pub time_embedding_act_fn: Option<String>,
    pub timestep_post_act: Option<String>,
    pub time_cond_proj_dim: Option<Value>,
    pub conv_in_kernel: Option<usize>,
    pub conv_out_kernel: Option<usize>,
    pub projection_class_embeddings_input_dim: Option<Value>,
    pub attention_type: Option<String>,
    pub class_embeddings_concat: Option<bool>,
    pub mid_block_only_cross_attention: Option<bool>,
    pub cross_attention_norm: Option<String>,
}

/// `vae/config.json` (diffusers `AutoencoderKL`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DiffusersVaeConfig {
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    pub in_channels: Option<usize>,
    pub out_channels: Option<usize>,
    pub down_block_types: Option<Vec<String>>,
    pub up_block_types: Option<Vec<String>>,
    pub block_out_channels: Option<Vec<usize>>,
    pub layers_per_block: Option<usize>,
    pub act_fn: Option<String>,
    pub latent_channels: Option<usize>,
    pub norm_num_groups: Option<usize>,
    pub scaling_factor: Option<f64>,
    pub shift_factor: Option<f64>,
    pub latents_mean: Option<Value>,
    pub latents_std: Option<Value>,
    pub use_quant_conv: Option<bool>,
    pub use_post_quant_conv: Option<bool>,
    pub mid_block_add_attention: Option<bool>,
}

/// `text_encoder/config.json` (transformers `CLIPTextConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TransformersClipTextConfig {
    pub architectures: Option<Vec<String>>,
    pub model_type: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub max_position_embeddings: Option<usize>,
    pub hidden_act: Option<String>,
    pub layer_norm_eps: Option<f64>,
}

/// `scheduler/scheduler_config.json` (any diffusers DDPM-family scheduler).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DiffusersSchedulerConfig {
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    pub beta_start: Option<f64>,
    pub beta_end: Option<f64>,
    pub beta_schedule: Option<String>,
    pub num_train_timesteps: Option<usize>,
    pub prediction_type: Option<String>,
    pub trained_betas: Option<Value>,
    pub rescale_betas_zero_snr: Option<bool>,
}

/// The scheduler facts the codec uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub beta_start: f64,
    pub beta_end: f64,
    pub num_train_timesteps: usize,
    pub prediction_type: PredictionType,
}

fn explicit_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn unsupported(component: Component, feature: Feature, detail: impl Into<String>) -> SdError {
    SdError::Unsupported {
        component,
        feature,
        detail: detail.into(),
    }
}

fn config_value(
    component: Component,
    key: &str,
    value: impl std::fmt::Debug,
    want: &str,
) -> SdError {
    unsupported(
        component,
        Feature::Config,
        format!("`{key}` = {value:?} (supported: {want})"),
    )
}

fn require<T: PartialEq + std::fmt::Debug>(
    component: Component,
    key: &str,
    value: Option<T>,
    default: T,
    want: &str,
) -> Result<(), SdError> {
    match value {
        Some(v) if v != default => Err(config_value(component, key, v, want)),
        _ => Ok(()),
    }
}

fn require_null(
    component: Component,
    key: &str,
    value: &Option<impl std::fmt::Debug>,
) -> Result<(), SdError> {
    match value {
        Some(v) => Err(config_value(component, key, v, "null")),
        None => Ok(()),
    }
}

/// Translates `unet/config.json`; also returns the family it implies.
pub fn resolve_unet(c: &DiffusersUNetConfig) -> Result<(UNetConfig, Family), SdError> {
    const U: Component = Component::Unet;
    if let Some(name) = c
        .class_name
        .as_ref()
        .filter(|n| *n != "UNet2DConditionModel")
    {
        return Err(config_value(U, "_class_name", name, "UNet2DConditionModel"));
    }
    // Named refusals first: the most informative message wins.
    let sdxl: Vec<&str> = [
        ("addition_embed_type", c.addition_embed_type.is_some()),
        (
            "addition_time_embed_dim",
            c.addition_time_embed_dim.is_some(),
        ),
        (
            "projection_class_embeddings_input_dim",
            c.projection_class_embeddings_input_dim.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if !sdxl.is_empty() {
        return Err(unsupported(
            U,
            Feature::Sdxl,
            format!("{} set; only SD 1.x / 2.x are supported", sdxl.join(", ")),
        ));
    }
    if c.class_embed_type.is_some() || c.num_class_embeds.is_some() {
        return Err(unsupported(
            U,
            Feature::ClassEmbeddings,
            format!(
                "class_embed_type = {:?}, num_class_embeds = {:?}",
                c.class_embed_type, c.num_class_embeds
            ),
        ));
    }
    let in_channels = c.in_channels.unwrap_or(4);
    let out_channels = c.out_channels.unwrap_or(4);
    if in_channels == 9 {
        return Err(unsupported(
            U,
            Feature::Inpainting,
            "in_channels = 9 (latent + mask + masked image); the codec needs a plain denoiser",
        ));
    }
    if in_channels != out_channels {
        return Err(config_value(
            U,
            "in_channels",
            in_channels,
            "equal to out_channels",
        ));
    }
    require(U, "act_fn", c.act_fn.as_deref(), "silu", "silu")?;
    require(
        U,
        "dual_cross_attention",
        c.dual_cross_attention,
        false,
        "false",
    )?;
    require(
        U,
        "resnet_time_scale_shift",
        c.resnet_time_scale_shift.as_deref(),
        "default",
        "default",
    )?;
    require(
        U,
        "resnet_skip_time_act",
        c.resnet_skip_time_act,
        false,
        "false",
    )?;
    require(
        U,
        "time_embedding_type",
        c.time_embedding_type.as_deref(),
        "positional",
        "positional",
    )?;
    require(
        U,
        "attention_type",
        c.attention_type.as_deref(),
        "default",
        "default",
    )?;
    require(
        U,
        "class_embeddings_concat",
        c.class_embeddings_concat,
        false,
        "false",
    )?;
    require(
        U,
        "mid_block_only_cross_attention",
        c.mid_block_only_cross_attention,
        false,
        "false",
    )?;
    require_null(U, "encoder_hid_dim", &c.encoder_hid_dim)?;
    require_null(U, "encoder_hid_dim_type", &c.encoder_hid_dim_type)?;
    require_null(U, "num_attention_heads", &c.num_attention_heads)?;
    require_null(U, "time_embedding_act_fn", &c.time_embedding_act_fn)?;
    require_null(U, "timestep_post_act", &c.timestep_post_act)?;
    require_null(U, "time_cond_proj_dim", &c.time_cond_proj_dim)?;
    require_null(U, "cross_attention_norm", &c.cross_attention_norm)?;
    require_null(
        U,
        "reverse_transformer_layers_per_block",
        &c.reverse_transformer_layers_per_block,
    )?;
    if let Some(Some(t)) = c
        .mid_block_type
        .as_ref()
        .filter(|t| t.as_deref() != Some("UNetMidBlock2DCrossAttn"))
    {
        return Err(config_value(
            U,
            "mid_block_type",
            t,
            "UNetMidBlock2DCrossAttn",
        ));
    }
    if let Some(None) = c.mid_block_type {
        return Err(config_value(
            U,
            "mid_block_type",
            "null",
            "UNetMidBlock2DCrossAttn",
        ));
    }
    let norm_num_groups = match c.norm_num_groups {
        Some(None) => return Err(config_value(U, "norm_num_groups", "null", "an integer")),
        Some(Some(g)) => g,
        None => 32,
    };

    let block_out_channels = c
        .block_out_channels
        .clone()
        .unwrap_or_else(|| vec![320, 640, 1280, 1280]);
    let n = block_out_channels.len();
    if n == 0 {
        return Err(config_value(
            U,
            "block_out_channels",
            "[]",
            "a non-empty list",
        ));
    }
    let default_down = [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ];
    let default_up = [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ];
    let down_types = c
        .down_block_types
        .clone()
        .unwrap_or_else(|| default_down.iter().map(|s| s.to_string()).collect());
    let up_types = c
        .up_block_types
        .clone()
        .unwrap_or_else(|| default_up.iter().map(|s| s.to_string()).collect());
    if down_types.len() != n || up_types.len() != n {
        return Err(config_value(
            U,
            "down_block_types / up_block_types",
            (down_types.len(), up_types.len()),
            "one per block_out_channels entry",
        ));
    }
    let down_cross = down_types
        .iter()
        .map(|t| match t.as_str() {
            "CrossAttnDownBlock2D" => Ok(true),
            "DownBlock2D" => Ok(false),
            _ => Err(config_value(
                U,
                "down_block_types",
                t,
                "CrossAttnDownBlock2D, DownBlock2D",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // up_block_types[i] is the up block at level n − 1 − i.
    let up_cross = up_types
        .iter()
        .rev()
        .map(|t| match t.as_str() {
            "CrossAttnUpBlock2D" => Ok(true),
            "UpBlock2D" => Ok(false),
            _ => Err(config_value(
                U,
                "up_block_types",
                t,
                "CrossAttnUpBlock2D, UpBlock2D",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;

    let per_block = |key: &str, v: &Option<OneOrMany<usize>>, default: usize| {
        v.clone()
            .unwrap_or(OneOrMany::One(default))
            .expand(n)
            .ok_or_else(|| config_value(U, key, v, "an integer or one per block"))
    };
    let layers = per_block("layers_per_block", &c.layers_per_block, 2)?;
    let heads_cfg = c.attention_head_dim.clone().unwrap_or(OneOrMany::One(8));
    let heads = per_block("attention_head_dim", &c.attention_head_dim, 8)?;
    let cross_dims = per_block("cross_attention_dim", &c.cross_attention_dim, 1280)?;
    let transformer_layers = match &c.transformer_layers_per_block {
        None => vec![1; n],
        Some(v) => serde_json::from_value::<OneOrMany<usize>>(v.clone())
            .ok()
            .and_then(|o| o.expand(n))
            .ok_or_else(|| {
                config_value(
                    U,
                    "transformer_layers_per_block",
                    v,
                    "an integer or one per block",
                )
            })?,
    };
    match &c.only_cross_attention {
        Some(o) if o.expand(n).is_none_or(|v| v.iter().any(|&b| b)) => {
            return Err(config_value(U, "only_cross_attention", o, "false"));
        }
        _ => {}
    }
    for (i, (&ch, &h)) in block_out_channels.iter().zip(&heads).enumerate() {
        if h == 0 || ch.checked_rem(h) != Some(0) || ch.checked_rem(norm_num_groups) != Some(0) {
            return Err(config_value(
                U,
                "block_out_channels / attention_head_dim / norm_num_groups",
                (i, ch, h, norm_num_groups),
                "channels divisible by the heads and the groups",
            ));
        }
    }
    for (key, k) in [
        ("conv_in_kernel", c.conv_in_kernel),
        ("conv_out_kernel", c.conv_out_kernel),
    ] {
        if let Some(k) = k.filter(|k| k % 2 != 1) {
            return Err(config_value(U, key, k, "an odd kernel size"));
        }
    }
    let use_linear_projection = c.use_linear_projection.unwrap_or(false);
    let levels = (0..n)
        .map(|i| UNetLevel {
            out_channels: block_out_channels[i],
            layers: layers[i],
            heads: heads[i],
            transformer_layers: transformer_layers[i],
            cross_attention_dim: cross_dims[i],
            down_cross_attention: down_cross[i],
            up_cross_attention: up_cross[i],
        })
        .collect();
    let cfg = UNetConfig {
        in_channels,
        out_channels,
        center_input_sample: c.center_input_sample.unwrap_or(false),
        flip_sin_to_cos: c.flip_sin_to_cos.unwrap_or(true),
        freq_shift: c.freq_shift.unwrap_or(0.0),
        levels,
        downsample_padding: c.downsample_padding.unwrap_or(1),
        mid_block_scale_factor: c.mid_block_scale_factor.unwrap_or(1.0),
        norm_num_groups,
        norm_eps: c.norm_eps.unwrap_or(1e-5),
        resnet_out_scale_factor: c.resnet_out_scale_factor.unwrap_or(1.0),
        use_linear_projection,
        time_embed_dim: c.time_embedding_dim.unwrap_or(4 * block_out_channels[0]),
        conv_in_kernel: c.conv_in_kernel.unwrap_or(3),
        conv_out_kernel: c.conv_out_kernel.unwrap_or(3),
    };
    let family = if use_linear_projection || heads_cfg.is_many() {
        Family::Sd2
    } else {
        Family::Sd1
    };
    Ok((cfg, family))
}

/// Translates `vae/config.json`; also returns `scaling_factor` (default 0.18215).
pub fn resolve_vae(c: &DiffusersVaeConfig) -> Result<(VaeConfig, f64), SdError> {
    const V: Component = Component::Vae;
    if let Some(name) = c.class_name.as_ref().filter(|n| *n != "AutoencoderKL") {
        return Err(config_value(V, "_class_name", name, "AutoencoderKL"));
    }
    require(V, "act_fn", c.act_fn.as_deref(), "silu", "silu")?;
    require_null(V, "shift_factor", &c.shift_factor)?;
    require_null(V, "latents_mean", &c.latents_mean)?;
    require_null(V, "latents_std", &c.latents_std)?;
    let block_out_channels = c.block_out_channels.clone().unwrap_or_else(|| vec![64]);
    let n = block_out_channels.len();
    if n == 0 {
        return Err(config_value(
            V,
            "block_out_channels",
            "[]",
            "a non-empty list",
        ));
    }
    for (key, types, want) in [
        (
            "down_block_types",
            &c.down_block_types,
            "DownEncoderBlock2D",
        ),
        ("up_block_types", &c.up_block_types, "UpDecoderBlock2D"),
    ] {
        let ok = match types {
            None => n == 1,
            Some(t) => t.len() == n && t.iter().all(|s| s == want),
        };
        if !ok {
            return Err(config_value(
                V,
                key,
                types,
                &format!("{want}, one per block"),
            ));
        }
    }
    let norm_num_groups = c.norm_num_groups.unwrap_or(32);
    if block_out_channels
        .iter()
        .any(|&ch| ch.checked_rem(norm_num_groups) != Some(0))
    {
        return Err(config_value(
            V,
            "norm_num_groups",
            norm_num_groups,
            "dividing every block's channels",
        ));
    }
    let cfg = VaeConfig {
        in_channels: c.in_channels.unwrap_or(3),
        out_channels: c.out_channels.unwrap_or(3),
        block_out_channels,
        layers_per_block: c.layers_per_block.unwrap_or(1),
        latent_channels: c.latent_channels.unwrap_or(4),
        norm_num_groups,
        use_quant_conv: c.use_quant_conv.unwrap_or(true),
        use_post_quant_conv: c.use_post_quant_conv.unwrap_or(true),
        mid_block_add_attention: c.mid_block_add_attention.unwrap_or(true),
    };
    Ok((cfg, c.scaling_factor.unwrap_or(0.18215)))
}

/// Translates `text_encoder/config.json` (transformers' `CLIPTextConfig` defaults).
pub fn resolve_clip(c: &TransformersClipTextConfig) -> Result<ClipTextConfig, SdError> {
    const T: Component = Component::TextEncoder;
    if let Some(a) = c
        .architectures
        .as_ref()
        .filter(|a| a.iter().any(|s| s != "CLIPTextModel"))
    {
        return Err(config_value(T, "architectures", a, "[\"CLIPTextModel\"]"));
    }
    if let Some(m) = c.model_type.as_ref().filter(|m| *m != "clip_text_model") {
        return Err(config_value(T, "model_type", m, "clip_text_model"));
    }
    let act = c.hidden_act.as_deref().unwrap_or("quick_gelu");
    let hidden_act = Activation::from_hidden_act(act).ok_or_else(|| {
        config_value(
            T,
            "hidden_act",
            act,
            "quick_gelu, gelu, gelu_new, gelu_pytorch_tanh",
        )
    })?;
    let cfg = ClipTextConfig {
        vocab_size: c.vocab_size.unwrap_or(49408),
        hidden_size: c.hidden_size.unwrap_or(512),
        intermediate_size: c.intermediate_size.unwrap_or(2048),
        num_hidden_layers: c.num_hidden_layers.unwrap_or(12),
        num_attention_heads: c.num_attention_heads.unwrap_or(8),
        max_position_embeddings: c.max_position_embeddings.unwrap_or(77),
        hidden_act,
        layer_norm_eps: c.layer_norm_eps.unwrap_or(1e-5),
    };
    if cfg.num_attention_heads == 0
        || cfg.hidden_size.checked_rem(cfg.num_attention_heads) != Some(0)
    {
        return Err(config_value(
            T,
            "hidden_size / num_attention_heads",
            (cfg.hidden_size, cfg.num_attention_heads),
            "hidden_size divisible by the heads",
        ));
    }
    Ok(cfg)
}

/// Translates `scheduler/scheduler_config.json`: scaled-linear betas only, ε or v.
pub fn resolve_scheduler(c: &DiffusersSchedulerConfig) -> Result<SchedulerConfig, SdError> {
    const S: Component = Component::Scheduler;
    let schedule = c.beta_schedule.as_deref().unwrap_or("linear");
    if schedule != "scaled_linear" {
        return Err(config_value(S, "beta_schedule", schedule, "scaled_linear"));
    }
    require_null(S, "trained_betas", &c.trained_betas)?;
    require(
        S,
        "rescale_betas_zero_snr",
        c.rescale_betas_zero_snr,
        false,
        "false",
    )?;
    let prediction_type = match c.prediction_type.as_deref().unwrap_or("epsilon") {
        "epsilon" => PredictionType::Epsilon,
        "v_prediction" => PredictionType::VPrediction,
        other => {
            return Err(config_value(
                S,
                "prediction_type",
                other,
                "epsilon, v_prediction",
            ));
        }
    };
    let cfg = SchedulerConfig {
        beta_start: c.beta_start.unwrap_or(0.0001),
        beta_end: c.beta_end.unwrap_or(0.02),
        num_train_timesteps: c.num_train_timesteps.unwrap_or(1000),
        prediction_type,
    };
    let ok = cfg.beta_start > 0.0 && cfg.beta_end >= cfg.beta_start && cfg.beta_end < 1.0;
    if !ok || cfg.num_train_timesteps < 2 {
        return Err(config_value(
            S,
            "beta_start / beta_end / num_train_timesteps",
            (cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps),
            "0 < beta_start ≤ beta_end < 1, at least 2 steps",
        ));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: &str = r#""down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D",
        "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]"#;

    fn unet(extra: &str) -> (UNetConfig, Family) {
        let json = format!(
            r#"{{"_class_name": "UNet2DConditionModel", "act_fn": "silu",
            "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false,
            {DOWN}, "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0,
            "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
            "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, {extra}}}"#
        );
        resolve_unet(&serde_json::from_str(&json).unwrap()).unwrap()
    }

    #[test]
    fn published_sd15_and_sd21_unet_configs() {
        let (c, f) =
            unet(r#""attention_head_dim": 8, "cross_attention_dim": 768, "sample_size": 64"#);
        assert_eq!(f, Family::Sd1);
        assert!(!c.use_linear_projection);
        assert_eq!(c.time_embed_dim, 1280);
        let widths: Vec<usize> = c.levels.iter().map(|l| l.out_channels / l.heads).collect();
        assert_eq!(widths, [40, 80, 160, 160]);
        let cross: Vec<(bool, bool)> = c
            .levels
            .iter()
            .map(|l| (l.down_cross_attention, l.up_cross_attention))
            .collect();
        assert_eq!(
            cross,
            [(true, true), (true, true), (true, true), (false, false)]
        );

        let (c, f) = unet(
            r#""attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024,
            "dual_cross_attention": false, "num_class_embeds": null,
            "only_cross_attention": false, "upcast_attention": true,
            "use_linear_projection": true, "sample_size": 96"#,
        );
        assert_eq!(f, Family::Sd2);
        assert!(c.use_linear_projection);
        assert!(c.levels.iter().all(|l| l.out_channels / l.heads == 64));
        assert!(c.levels.iter().all(|l| l.cross_attention_dim == 1024));
    }

    #[test]
    fn published_vae_text_and_scheduler_configs() {
        let vae: DiffusersVaeConfig = serde_json::from_str(
            r#"{"_class_name": "AutoencoderKL", "act_fn": "silu",
            "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D",
                "DownEncoderBlock2D", "DownEncoderBlock2D"],
            "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
            "norm_num_groups": 32, "out_channels": 3, "sample_size": 512,
            "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D",
                "UpDecoderBlock2D"]}"#,
        )
        .unwrap();
        let (v, scale) = resolve_vae(&vae).unwrap();
        assert_eq!(
            (v.layers_per_block, v.latent_channels, scale),
            (2, 4, 0.18215)
        );
        let text: TransformersClipTextConfig = serde_json::from_str(
            r#"{"architectures": ["CLIPTextModel"], "hidden_act": "gelu", "hidden_size": 1024,
            "intermediate_size": 4096, "max_position_embeddings": 77, "model_type":
            "clip_text_model", "num_attention_heads": 16, "num_hidden_layers": 23,
            "projection_dim": 512, "torch_dtype": "float32", "vocab_size": 49408}"#,
        )
        .unwrap();
        let t = resolve_clip(&text).unwrap();
        assert_eq!(
            (t.hidden_act, t.num_hidden_layers),
            (Activation::GeluErf, 23)
        );
        let sched: DiffusersSchedulerConfig = serde_json::from_str(
            r#"{"_class_name": "PNDMScheduler", "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
            "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
            "trained_betas": null, "clip_sample": false}"#,
        )
        .unwrap();
        let s = resolve_scheduler(&sched).unwrap();
        assert_eq!(s.prediction_type, PredictionType::Epsilon);
    }
}
