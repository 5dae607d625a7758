//! Loading the JAX parity fixtures that the trainers write next to a checkpoint.
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// Largest tolerated difference between candle and JAX outputs.
pub const TOL: f32 = 1e-4;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$env`, else `default` under the crate root: lets a test check another checkpoint/fixture.
pub fn path_or_env(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(default))
}

pub fn load(fixture: &PathBuf) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture, &Device::Cpu).expect("fixture")
}

/// The CRC-32 of the checkpoint the fixture was written from (its metadata).
pub fn checkpoint_crc(fixture: &PathBuf) -> u32 {
    let bytes = std::fs::read(fixture).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().as_ref().unwrap()["checkpoint_crc32"]
        .parse()
        .unwrap()
}

pub fn vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
