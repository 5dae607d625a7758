//! diffc: diffusion-based realism image codecs.
//!
//! Data flows one way: `cli` → `eval` → `codec` → `sampler` → {`denoiser`, `channel`} → leaves
//! (`rng`, `schedule`, `entropy`, `container`, `image_io`, `nn`, `metrics`).

pub mod channel;
pub mod cli;
pub mod codec;
pub mod container;
pub mod denoiser;
pub mod device;
pub mod entropy;
pub mod eval;
pub mod experiment;
pub mod image_io;
pub mod metrics;
pub mod nn;
pub mod rng;
pub mod sampler;
pub mod schedule;
