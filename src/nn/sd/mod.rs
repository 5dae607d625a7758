//! Stable Diffusion 1.x / 2.x networks (U-Net, VAE, CLIP text encoder) and a strict loader
//! for diffusers folders, proven equal to diffusers / transformers on tiny random-weight
//! fixtures (`tests/sd_parity.rs`, tolerances stated there).
//!
//! A leaf: imports nothing of ours. Entry points: [`StableDiffusion::load`] (or
//! [`SdFolder::open`] to check a folder and get its [`SdFolder::fingerprint`] without
//! loading weights), the networks' `forward`/`encode`/`decode`, [`empty_prompt_ids`], and
//! the f64 maths in [`maths`].
//!
//! # Provenance and licence
//!
//! The network code is a trimmed, modified copy of candle-transformers 0.11.1
//! `src/models/stable_diffusion/` (`unet_2d.rs`, `unet_2d_blocks.rs`, `attention.rs`,
//! `resnet.rs`, `embeddings.rs`, `vae.rs`, `clip.rs`), © the candle developers, dual
//! licensed MIT OR Apache-2.0 (the same terms as this crate); the notice is kept in
//! `src/nn/sd/LICENSE-candle-transformers`. Each file's doc lists what was changed; in
//! short, to match diffusers / transformers exactly: the VAE exposes the posterior mean (no
//! sampling, no RNG anywhere), the timestep embedding is computed in f32 then cast, GELU is
//! the erf form in GEGLU and in CLIP with `hidden_act = "gelu"`, the U-Net's plain resnet
//! blocks honour `norm_num_groups`, the linear `proj_out` has the right orientation, CLIP
//! takes position embeddings for the real sequence length; latent sizes are checked.
pub mod attention;
pub mod blocks;
pub mod clip;
pub mod config;
pub mod error;
pub mod loader;
pub mod maths;
pub mod resnet;
pub mod unet;
pub mod vae;

pub use clip::{Activation, ClipTextConfig, ClipTextModel};
pub use config::{Family, PredictionType, SchedulerConfig};
pub use error::{Component, Feature, SdError};
pub use loader::{
    BOS_TOKEN, EOS_TOKEN, PROMPT_TOKENS, SdFolder, SdPipelineWeights, StableDiffusion,
    empty_prompt_ids,
};
pub use unet::{LATENT_MULTIPLE, LatentSizeError, UNet2DConditionModel, UNetConfig, UNetLevel};
pub use vae::{AutoencoderKL, VaeConfig};
