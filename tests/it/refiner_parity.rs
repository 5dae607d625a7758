//! HFD's conditional refiner: the candle U-Net with a condition image reproduces the JAX
//! trainer, and the conditional plumbing (`UNet::forward_cond`, `CondDenoiser`) behaves.
//!
//! `tests/fixtures/refiner_parity.safetensors` is written by
//! `python notebooks/train_unet.py --name hfd-refiner --write-fixture` from
//! `checkpoints/hfd-refiner.safetensors`; regenerate it whenever the checkpoint changes.
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use diffc::denoiser::Denoiser;
use diffc::denoiser::unet::{CondDenoiser, UNetDenoiser};
use diffc::image_io::Shape;
use diffc::nn::unet::{Config, UNet};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::common;
use common::parity::{TOL, checkpoint_crc, max_abs_diff, root, vec};

/// The shipped checkpoint, or `DIFFC_REFINER_CHECKPOINT` (with `DIFFC_REFINER_FIXTURE`) to check another.
fn checkpoint() -> PathBuf {
    common::parity::path_or_env(
        "DIFFC_REFINER_CHECKPOINT",
        "checkpoints/hfd-refiner.safetensors",
    )
}

fn fixture_path() -> PathBuf {
    common::parity::path_or_env(
        "DIFFC_REFINER_FIXTURE",
        "tests/fixtures/refiner_parity.safetensors",
    )
}

fn fixture() -> HashMap<String, Tensor> {
    common::parity::load(&fixture_path())
}

fn load() -> Arc<UNetDenoiser> {
    Arc::new(UNetDenoiser::load(&checkpoint(), &Device::Cpu).expect("refiner checkpoint loads"))
}

#[test]
fn fixture_matches_checkpoint() {
    assert_eq!(
        checkpoint_crc(&fixture_path()),
        load().fingerprint(),
        "fixture was written from another checkpoint: rerun --write-fixture"
    );
}

#[test]
fn network_matches_jax() {
    let d = load();
    assert_eq!(d.cond_channels(), 3);
    let f = fixture();
    let v = d
        .net()
        .forward_cond(&f["z"], &f["logsnr"], Some(&f["c"]))
        .unwrap();
    let (got, want) = (vec(&v), vec(&f["v"]));
    let err = max_abs_diff(&got, &want);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    eprintln!("refiner parity: max |Δv| = {err:.3e} (max |v| = {scale:.3})");
    assert!(err <= TOL, "max abs error {err} > {TOL}");
}

#[test]
fn cond_denoiser_pads_and_matches_jax() {
    let f = fixture();
    let z = vec(&f["pad_z"]);
    let (c, h, w) = f["pad_z"].dims3().unwrap();
    let shape = Shape::new(c, h, w);
    let l = f["pad_logsnr"].to_vec1::<f32>().unwrap()[0] as f64;
    let d = CondDenoiser::new(load(), vec(&f["pad_c"]), shape).unwrap();
    let got = d.predict_x(&z, shape, l).unwrap();
    let err = max_abs_diff(&got, &vec(&f["pad_x"]));
    eprintln!("CondDenoiser parity ({c}×{h}×{w}): max |Δx̂| = {err:.3e}");
    assert!(err <= TOL, "max abs error {err} > {TOL}");
    assert_eq!(d.fingerprint(), d.base().fingerprint());
    assert_eq!(
        got,
        d.base().predict_x_cond(&z, d.cond(), shape, l).unwrap()
    );
    assert!(d.logsnr_min() < d.logsnr_max());
}

#[test]
fn conditioning_is_checked() {
    let base = load();
    let shape = Shape::new(3, 9, 11);
    let z = vec![0.25f32; shape.len()];
    let cond = vec![0.5f32; shape.len()];
    // a conditional model does not denoise without its condition
    assert!(base.predict_x(&z, shape, 1.0).is_err());
    let d = CondDenoiser::new(base.clone(), cond.clone(), shape).unwrap();
    let x = d.predict_x(&z, shape, 1.0).unwrap();
    assert!(x.iter().all(|v| v.is_finite() && (-1.0..=1.0).contains(v)));
    assert_eq!(x, d.predict_x(&z, shape, 1.0).unwrap(), "deterministic");
    // another shape than the bound one, a short condition, bad values: errors, not panics
    assert!(
        d.predict_x(&z[..3 * 9 * 10], Shape::new(3, 9, 10), 1.0)
            .is_err()
    );
    assert!(d.predict_x(&z[1..], shape, 1.0).is_err());
    assert!(CondDenoiser::new(base.clone(), cond[1..].to_vec(), shape).is_err());
    assert!(CondDenoiser::new(base.clone(), vec![255.0; shape.len()], shape).is_err());
    assert!(CondDenoiser::new(base.clone(), cond.clone(), Shape::new(1, 9, 11)).is_err());
    // the raw network: condition required, and of the right shape
    let zt = Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let lt = Tensor::new(&[0.0f32], &Device::Cpu).unwrap();
    assert!(base.net().forward(&zt, &lt).is_err());
    let bad = Tensor::zeros((1, 2, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(base.net().forward_cond(&zt, &lt, Some(&bad)).is_err());
    // an unconditional model takes no condition
    let uncond = Arc::new(
        UNetDenoiser::load(
            &root().join("checkpoints/photo-unet-s.safetensors"),
            &Device::Cpu,
        )
        .unwrap(),
    );
    assert!(CondDenoiser::new(uncond.clone(), cond.clone(), shape).is_err());
    assert!(uncond.predict_x_cond(&z, &cond, shape, 1.0).is_err());
    assert!(uncond.net().forward_cond(&zt, &lt, Some(&zt)).is_err());
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
    assert!(
        err <= 1e-5,
        "zero-column conditional net differs from the unconditional one by {err}"
    );
    // it still insists on a condition
    assert!(cond_net.forward(&z, &l).is_err());
}
