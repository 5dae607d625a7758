//! The denoiser abstraction: given z_t and its log-SNR, predict x.
//!
//! Exact Gaussian models (for proofs and as a training-free prior) and trained networks
//! implement the same trait, so every codec and sampler is model-agnostic.
pub mod blend;
pub mod gaussian;
pub mod pyramid;
pub mod sd;
pub mod tiled;
pub mod unet;

use crate::image_io::Shape;
use anyhow::Result;

/// A model of x given a noisy observation `z = α x + σ ε` with `logsnr = ln(α²/σ²)`.
pub trait Denoiser: Send + Sync {
    /// Short model name as used by `--model` (e.g. `gauss-spectrum`).
    fn name(&self) -> &str;
    /// 32-bit fingerprint of the weights/parameters; files record it so a decoder with a
    /// different model refuses instead of producing garbage.
    fn fingerprint(&self) -> u32;
    /// Predicts x̂ = E[x | z_t] (or the network's estimate) for planar `z` of `shape`.
    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>>;
    /// Var[x | z_t] per pixel, for a model that knows it and whose posterior is diagonal in
    /// the pixel basis (None: unknown). DiffC then proposes the exact reverse step
    /// p(z_s|z_t) = N(a z_t + b x̂, σ_q² + b² Var[x|z_t]) instead of the equal-variance one, which
    /// removes the discretisation gap: the step KLs sum to I(X; Z_t) on any step grid.
    fn posterior_var(&self, _z: &[f32], _shape: Shape, _logsnr: f64) -> Option<Result<Vec<f32>>> {
        None
    }
}

use std::sync::Arc;

/// The model `--model` picks when none is given: the trained U-Net blended with the spectrum
/// model per log-SNR and frequency band (it beats `gauss-spectrum` at every rate on dev24; see
/// eval/results/README.md).
pub const DEFAULT_MODEL: &str = "photo-unet-m2-wiener-bands";

/// Parameters of the training-free spectrum model, fitted to photos (see its model card).
const GAUSS_SPECTRUM_JSON: &str = include_str!("../../checkpoints/gauss-spectrum.json");

/// Loads a model by name (`gauss-spectrum`, a checkpoint or blend card found by
/// [`crate::checkpoints`]) or by the path of a `.safetensors` file.
pub fn load(name: &str, device: &candle_core::Device) -> Result<Arc<dyn Denoiser>> {
    load_nested(name, device, 0)
}

/// How deeply cards may refer to cards (a blend of a blend of a pyramid…), so a cycle of
/// cards is an error rather than a stack overflow.
const MAX_CARD_DEPTH: usize = 4;

fn load_nested(
    name: &str,
    device: &candle_core::Device,
    depth: usize,
) -> Result<Arc<dyn Denoiser>> {
    anyhow::ensure!(
        depth <= MAX_CARD_DEPTH,
        "model '{name}': cards nest more than {MAX_CARD_DEPTH} deep (a cycle?)"
    );
    if name == "gauss-spectrum" {
        return Ok(Arc::new(gauss_spectrum()?));
    }
    if let Some(p) = blend_card(name) {
        let p = p?;
        let (base, prior) = (
            load_nested(&p.base, device, depth + 1)?,
            load_nested(&p.prior, device, depth + 1)?,
        );
        return Ok(Arc::new(blend::Blend::new(name, base, prior, p)?));
    }
    if let Some(p) = card::<pyramid::PyramidParams>(name, "pyramid") {
        let p = p?;
        let low = load_nested(&p.low, device, depth + 1)?;
        return Ok(Arc::new(pyramid::Pyramid::new(name, low, p.factor)?));
    }
    Ok(Arc::new(unet::UNetDenoiser::from_checkpoint(
        &checkpoint(name)?,
        device,
    )?))
}

/// The U-Net checkpoint that does a model's network work: the model itself, or the base of
/// its blend card (followed through nested cards), e.g. for timing one forward pass.
pub fn base_unet(name: &str) -> Result<crate::checkpoints::Checkpoint> {
    let mut name = name.to_string();
    for _ in 0..=MAX_CARD_DEPTH {
        match blend_card(&name) {
            Some(p) => name = p?.base,
            None => return checkpoint(&name),
        }
    }
    anyhow::bail!("model '{name}': cards nest more than {MAX_CARD_DEPTH} deep (a cycle?)")
}

/// The parameters of a model card (`NAME.json`) of `kind` (`"blend"`, `"pyramid"`), if `bytes`
/// is one.
fn read_card<P: serde::de::DeserializeOwned>(
    bytes: &[u8],
    origin: &str,
    kind: &str,
) -> Option<Result<P>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    (v["kind"] == kind).then(|| {
        serde_json::from_value(v["params"].clone())
            .map_err(|e| anyhow::anyhow!("bad {kind} card {origin}: {e}"))
    })
}

/// The card of `kind` called `name`, if there is one.
fn card<P: serde::de::DeserializeOwned>(name: &str, kind: &str) -> Option<Result<P>> {
    let ck = crate::checkpoints::find(name, "json")?.ok()?;
    read_card(&ck.bytes, &ck.origin(), kind)
}

/// The blend card called `name`, if there is one.
fn blend_card(name: &str) -> Option<Result<blend::BlendParams>> {
    card(name, "blend")
}

/// The weights of a checkpoint given by name or by the path of a `.safetensors` file.
pub fn checkpoint(name: &str) -> Result<crate::checkpoints::Checkpoint> {
    match crate::checkpoints::find(name, "safetensors") {
        Some(r) => r.map_err(|e| anyhow::anyhow!("reading checkpoint '{name}': {e}")),
        None => anyhow::bail!(
            "unknown model '{name}' (known: {})",
            known_models().join(", ")
        ),
    }
}

/// The built-in spectrum model.
pub fn gauss_spectrum() -> Result<gaussian::SpectrumGaussian> {
    let p: gaussian::SpectrumParams = serde_json::from_str(GAUSS_SPECTRUM_JSON)
        .map(|card: serde_json::Value| card["params"].clone())
        .and_then(serde_json::from_value)
        .map_err(|e| anyhow::anyhow!("bad gauss-spectrum card: {e}"))?;
    Ok(gaussian::SpectrumGaussian::new("gauss-spectrum", p))
}

/// Names of every diffusion model this build can load (HFD checkpoints are not listed).
pub fn known_models() -> Vec<String> {
    let mut v = vec!["gauss-spectrum".to_string()];
    for n in crate::checkpoints::names("safetensors") {
        let ck = crate::checkpoints::find(&n, "safetensors");
        if ck.is_some_and(|r| r.is_ok_and(|ck| is_diffusion_model(&ck.bytes))) {
            v.push(n);
        }
    }
    for n in crate::checkpoints::names("json") {
        if blend_card(&n).is_some_and(|r| r.is_ok())
            || card::<pyramid::PyramidParams>(&n, "pyramid").is_some_and(|r| r.is_ok())
        {
            v.push(n);
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Whether a checkpoint is an unconditional diffusion U-Net (not HFD's MSE codec or refiner),
/// judged from its safetensors header alone.
fn is_diffusion_model(bytes: &[u8]) -> bool {
    crate::nn::config_from_metadata::<serde_json::Value>(
        bytes,
        crate::nn::unet::CONFIG_KEY,
        "U-Net",
    )
    .is_ok_and(|c| c["cond_channels"].as_u64().unwrap_or(0) == 0)
}

/// Finds the known model whose 16-bit fingerprint matches a file's.
pub fn find_by_fingerprint(fp: u16, device: &candle_core::Device) -> Option<Arc<dyn Denoiser>> {
    known_models()
        .into_iter()
        .filter_map(|n| load(&n, device).ok())
        .find(|m| m.fingerprint() as u16 == fp)
}
