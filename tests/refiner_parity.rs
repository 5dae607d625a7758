//! HFD's conditional refiner: the candle U-Net with a condition image reproduces the JAX
//! trainer, and the conditional plumbing (`UNet::forward_cond`, `CondDenoiser`) behaves.
//!
//! (The JAX parity tests against the trained refiner come with its checkpoint.)
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use diffc::denoiser::unet::{CondDenoiser, UNetDenoiser};
use diffc::image_io::Shape;
use diffc::nn::unet::{Config, UNet};
use std::path::PathBuf;
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The trainer's warm start: photo-unet-s with zero conv_in columns for the condition is the
/// unconditional network, whatever the condition.
#[test]
fn zero_condition_columns_give_the_unconditional_net() {
    let dev = Device::Cpu;
    let path = root().join("checkpoints/photo-unet-s.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let mut cfg = Config::from_safetensors(&bytes).unwrap();
    let (uncond, _) = UNet::load(&path, &dev).unwrap();
    let mut ts = candle_core::safetensors::load(&path, &dev).unwrap();
    cfg.cond_channels = 3;
    let w = &ts["conv_in.weight"];
    let (o, i, kh, kw) = w.dims4().unwrap();
    assert_eq!(i + 3 * cfg.patch * cfg.patch, cfg.conv_in_channels());
    let zeros = Tensor::zeros((o, cfg.conv_in_channels() - i, kh, kw), DType::F32, &dev).unwrap();
    let w2 = Tensor::cat(&[w, &zeros], 1).unwrap();
    ts.insert("conv_in.weight".into(), w2);
    let cond_net = UNet::new(&cfg, VarBuilder::from_tensors(ts, DType::F32, &dev)).unwrap();
    let z = Tensor::randn(0f32, 1f32, (2, 3, 16, 24), &dev).unwrap();
    let c = Tensor::rand(-1f32, 1f32, (2, 3, 16, 24), &dev).unwrap();
    let l = Tensor::new(&[-3.0f32, 8.0], &dev).unwrap();
    let a = vec(&uncond.forward(&z, &l).unwrap());
    let b = vec(&cond_net.forward_cond(&z, &l, Some(&c)).unwrap());
    let err = max_abs_diff(&a, &b);
    assert!(err <= 1e-5, "zero-column conditional net differs from the unconditional one by {err}");
    // it still insists on a condition
    assert!(cond_net.forward(&z, &l).is_err());
}

#[test]
fn unconditional_model_takes_no_condition() {
    let dev = Device::Cpu;
    let uncond = Arc::new(UNetDenoiser::load(&root().join("checkpoints/photo-unet-s.safetensors"), &dev).unwrap());
    assert_eq!(uncond.cond_channels(), 0);
    let shape = Shape::new(3, 9, 11);
    assert!(CondDenoiser::new(uncond.clone(), vec![0.5; shape.len()], shape).is_err());
    let zt = Tensor::zeros((1, 3, 8, 8), DType::F32, &dev).unwrap();
    let lt = Tensor::new(&[0.0f32], &dev).unwrap();
    assert!(uncond.net().forward_cond(&zt, &lt, Some(&zt)).is_err());
}
