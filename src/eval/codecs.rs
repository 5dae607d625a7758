//! Codecs by name: what `--codecs` accepts.
//!
//! - `jpeg`, `webp`, `avif`, `jxl`: classic baselines ([`super::baselines`]).
//! - `diffc-f`: DiffC with the probability-flow ODE decoder; `diffc-a`: DiffC with ancestral
//!   (SDE) sampling. `--model` picks the denoiser (the codec's default otherwise).
use super::baselines::Baseline;
use crate::codec::{Codec, DecodeOptions, DecoderKind};
use anyhow::{Result, bail};

pub const KNOWN: &[&str] = &["diffc-f", "diffc-a", "jpeg", "webp", "avif", "jxl"];

/// Builds the codec called `name` and the decode options the harness uses with it.
pub fn make(name: &str, model: Option<&str>) -> Result<(Box<dyn Codec>, DecodeOptions)> {
    if let Some(b) = Baseline::from_name(name) {
        return Ok((Box::new(b), DecodeOptions::default()));
    }
    let decoder = match name {
        "diffc-f" => DecoderKind::Ode,
        "diffc-a" => DecoderKind::Sde,
        _ => bail!("unknown codec `{name}` (known: {})", KNOWN.join(", ")),
    };
    let codec = make_diffc(model)?;
    Ok((codec, DecodeOptions { decoder, steps: None, progress: false }))
}

/// DiffC with the CLI's defaults (seed 0, default parameters) over `model`
/// ([`crate::denoiser::DEFAULT_MODEL`] if `None`), on the CPU.
fn make_diffc(model: Option<&str>) -> Result<Box<dyn Codec>> {
    let name = model.unwrap_or(crate::denoiser::DEFAULT_MODEL);
    let m = crate::denoiser::load(name, &candle_core::Device::Cpu)?;
    Ok(Box::new(crate::codec::diffc::DiffC::new(m)))
}
