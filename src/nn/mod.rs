//! candle networks (U-Net, hyperprior, Stable Diffusion). Leaves: they import nothing else of ours.
pub mod cpu_kernels;
pub mod hyperprior;
pub mod sd;
pub mod unet;

/// Reads an architecture config stored as JSON under `key` in a safetensors file's metadata,
/// so every checkpoint is self-describing.
pub fn config_from_metadata<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    key: &str,
    what: &str,
) -> anyhow::Result<T> {
    use anyhow::Context;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("not a safetensors file: {e}"))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .with_context(|| format!("checkpoint has no `{key}` metadata"))?;
    serde_json::from_str(json).with_context(|| format!("bad {what} config metadata"))
}
