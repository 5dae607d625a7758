//! The denoiser abstraction: given z_t and its log-SNR, predict x.
//!
//! Exact Gaussian models (for proofs and as a training-free prior) and trained networks
//! implement the same trait, so every codec and sampler is model-agnostic.
pub mod blend;
pub mod gaussian;
pub mod param;
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

use std::path::PathBuf;
use std::sync::Arc;

/// The model `--model` picks when none is given: the trained U-Net blended with the spectrum
/// model per log-SNR and frequency band (it beats `gauss-spectrum` at every rate on dev24; see
/// the README).
pub const DEFAULT_MODEL: &str = "photo-unet-s-wiener-bands";

/// Parameters of the training-free spectrum model, fitted to photos (see its model card).
const GAUSS_SPECTRUM_JSON: &str = include_str!("../../checkpoints/gauss-spectrum.json");

/// Where trained checkpoints are looked up: `$DIFFC_CHECKPOINTS`, then the crate's `checkpoints/`.
pub fn checkpoint_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(d) = std::env::var("DIFFC_CHECKPOINTS") {
        v.push(PathBuf::from(d));
    }
    v.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checkpoints"));
    v
}

/// Loads a model by name (`gauss-spectrum`, a checkpoint name in `checkpoints/`) or by the
/// path of a `.safetensors` file.
pub fn load(name: &str, device: &candle_core::Device) -> Result<Arc<dyn Denoiser>> {
    if name == "gauss-spectrum" {
        return Ok(Arc::new(gauss_spectrum()?));
    }
    if let Some(p) = blend_card(name) {
        return load_blend(name, &p, device);
    }
    load_checkpoint(&checkpoint_path(name)?, device)
}

/// The parameters of a blend model card (`NAME.json` with `"kind": "blend"`), if `path` is one.
fn read_blend_card(path: &std::path::Path) -> Option<Result<blend::BlendParams>> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    (v["kind"] == "blend").then(|| {
        serde_json::from_value(v["params"].clone())
            .map_err(|e| anyhow::anyhow!("bad blend card {}: {e}", path.display()))
    })
}

/// Where the blend card called `name` is, if there is one.
fn blend_card(name: &str) -> Option<PathBuf> {
    checkpoint_dirs()
        .into_iter()
        .map(|d| d.join(format!("{name}.json")))
        .find(|p| read_blend_card(p).is_some())
}

fn load_blend(
    name: &str,
    path: &std::path::Path,
    device: &candle_core::Device,
) -> Result<Arc<dyn Denoiser>> {
    let params = read_blend_card(path).expect("a blend card")?;
    anyhow::ensure!(
        blend_card(&params.base).is_none() && blend_card(&params.prior).is_none(),
        "blend {name}: its parts must not be blends"
    );
    let (base, prior) = (load(&params.base, device)?, load(&params.prior, device)?);
    Ok(Arc::new(blend::Blend::new(name, base, prior, params)?))
}

/// The file of a checkpoint given by name (looked up in [`checkpoint_dirs`]) or by path.
pub fn checkpoint_path(name: &str) -> Result<PathBuf> {
    let path = PathBuf::from(name);
    if path.extension().is_some_and(|e| e == "safetensors") && path.exists() {
        return Ok(path);
    }
    checkpoint_dirs()
        .into_iter()
        .map(|d| d.join(format!("{name}.safetensors")))
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown model '{name}' (known: {})",
                known_models().join(", ")
            )
        })
}

fn load_checkpoint(
    path: &std::path::Path,
    device: &candle_core::Device,
) -> Result<Arc<dyn Denoiser>> {
    Ok(Arc::new(unet::UNetDenoiser::load(path, device)?))
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
    for d in checkpoint_dirs() {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                let model = (p.extension().is_some_and(|x| x == "safetensors")
                    && is_diffusion_model(&p))
                    || (p.extension().is_some_and(|x| x == "json")
                        && read_blend_card(&p).is_some_and(|r| r.is_ok()));
                if model {
                    if let Some(s) = p.file_stem() {
                        v.push(s.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Whether a checkpoint is an unconditional diffusion U-Net (not HFD's MSE codec or refiner),
/// judged from its safetensors header alone.
fn is_diffusion_model(path: &std::path::Path) -> bool {
    use std::io::Read;
    let header = (|| -> std::io::Result<serde_json::Value> {
        let mut f = std::fs::File::open(path)?;
        let mut n = [0u8; 8];
        f.read_exact(&mut n)?;
        let n = u64::from_le_bytes(n).min(1 << 24) as usize;
        let mut h = vec![0u8; n];
        f.read_exact(&mut h)?;
        Ok(serde_json::from_slice(&h).unwrap_or_default())
    })();
    let Ok(h) = header else { return false };
    let Some(cfg) = h["__metadata__"][crate::nn::unet::CONFIG_KEY].as_str() else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(cfg)
        .is_ok_and(|c| c["cond_channels"].as_u64().unwrap_or(0) == 0)
}

/// Finds the known model whose 16-bit fingerprint matches a file's.
pub fn find_by_fingerprint(fp: u16, device: &candle_core::Device) -> Option<Arc<dyn Denoiser>> {
    known_models()
        .into_iter()
        .filter_map(|n| load(&n, device).ok())
        .find(|m| m.fingerprint() as u16 == fp)
}
