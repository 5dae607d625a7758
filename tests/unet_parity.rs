//! The candle U-Net reproduces the JAX trainer's outputs on the shipped checkpoint.
//!
//! `tests/fixtures/unet_parity.safetensors` is written by
//! `python notebooks/train_unet.py --write-fixture` from `checkpoints/photo-unet-s.safetensors`;
//! regenerate it whenever the checkpoint changes.
use candle_core::{Device, Tensor};
use diffc::denoiser::Denoiser;
use diffc::denoiser::unet::UNetDenoiser;
use diffc::image_io::Shape;
use std::collections::HashMap;
use std::path::PathBuf;

mod common;
use common::parity::{TOL, checkpoint_crc, max_abs_diff, vec};

/// The shipped checkpoint, or `DIFFC_UNET_CHECKPOINT` (with `DIFFC_UNET_FIXTURE`) to check another.
fn checkpoint() -> PathBuf {
    common::parity::path_or_env(
        "DIFFC_UNET_CHECKPOINT",
        "checkpoints/photo-unet-s.safetensors",
    )
}

fn fixture_path() -> PathBuf {
    common::parity::path_or_env(
        "DIFFC_UNET_FIXTURE",
        "tests/fixtures/unet_parity.safetensors",
    )
}

fn fixture() -> HashMap<String, Tensor> {
    common::parity::load(&fixture_path())
}

fn load() -> UNetDenoiser {
    UNetDenoiser::load(&checkpoint(), &Device::Cpu).expect("checkpoint loads")
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
    let f = fixture();
    let v = d.net().forward(&f["z"], &f["logsnr"]).unwrap();
    let (got, want) = (vec(&v), vec(&f["v"]));
    let err = max_abs_diff(&got, &want);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    eprintln!("U-Net parity: max |Δv| = {err:.3e} (max |v| = {scale:.3})");
    assert!(err <= TOL, "max abs error {err} > {TOL}");
}

#[test]
fn adapter_pads_and_matches_jax() {
    let d = load();
    let f = fixture();
    let z = vec(&f["pad_z"]);
    let (c, h, w) = f["pad_z"].dims3().unwrap();
    let l = f["pad_logsnr"].to_vec1::<f32>().unwrap()[0] as f64;
    let got = d.predict_x(&z, Shape::new(c, h, w), l).unwrap();
    let want = vec(&f["pad_x"]);
    let err = max_abs_diff(&got, &want);
    eprintln!("adapter parity ({c}×{h}×{w}): max |Δx̂| = {err:.3e}");
    assert!(err <= TOL, "max abs error {err} > {TOL}");
}

#[test]
fn odd_sizes_work() {
    let d = load();
    assert_eq!(d.name(), "photo-unet-s");
    for &(h, w) in &[(1, 1), (3, 5), (17, 31), (33, 8)] {
        let shape = Shape::new(3, h, w);
        let z: Vec<f32> = (0..shape.len())
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8)
            .collect();
        for &l in &[-8.0, 0.0, 10.0] {
            let x = d.predict_x(&z, shape, l).unwrap();
            assert_eq!(x.len(), shape.len());
            assert!(
                x.iter().all(|v| v.is_finite() && (-1.0..=1.0).contains(v)),
                "{h}×{w} λ={l}"
            );
        }
    }
    // deterministic
    let shape = Shape::new(3, 9, 11);
    let z = vec![0.25f32; shape.len()];
    assert_eq!(
        d.predict_x(&z, shape, 1.0).unwrap(),
        d.predict_x(&z, shape, 1.0).unwrap()
    );
    // wrong channel count or length is an error, not a panic
    assert!(d.predict_x(&z, Shape::new(1, 27, 11), 1.0).is_err());
    assert!(d.predict_x(&z[1..], shape, 1.0).is_err());
}

/// The shipped blend (`checkpoints/photo-unet-s-wiener.json`) loads by name, is listed, has its
/// own fingerprint, and follows its card: the U-Net where the weight is 0, the spectrum model
/// where it is 1.
#[test]
fn shipped_blend_loads_and_follows_its_card() {
    let dev = Device::Cpu;
    assert!(diffc::denoiser::known_models().contains(&"photo-unet-s-wiener".to_string()));
    let b = diffc::denoiser::load("photo-unet-s-wiener", &dev).unwrap();
    let (u, g) = (
        diffc::denoiser::load("photo-unet-s", &dev).unwrap(),
        diffc::denoiser::load("gauss-spectrum", &dev).unwrap(),
    );
    assert_eq!(b.name(), "photo-unet-s-wiener");
    assert!(
        b.fingerprint() as u16 != u.fingerprint() as u16
            && b.fingerprint() as u16 != g.fingerprint() as u16
    );
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::parity::root().join("checkpoints/photo-unet-s-wiener.json"))
            .unwrap(),
    )
    .unwrap();
    let knots: Vec<(f64, f64)> = card["params"]["logsnr"]
        .as_array()
        .unwrap()
        .iter()
        .zip(card["params"]["weight"].as_array().unwrap())
        .map(|(l, w)| (l.as_f64().unwrap(), w[0].as_f64().unwrap()))
        .collect();
    assert!(
        card["params"]["weight"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w.as_array().unwrap().len() == 1),
        "one band"
    );
    let shape = Shape::new(3, 12, 10);
    let z: Vec<f32> = (0..shape.len())
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8)
        .collect();
    for (l, w) in knots {
        let want = match w {
            0.0 => u.predict_x(&z, shape, l).unwrap(),
            1.0 => g.predict_x(&z, shape, l).unwrap(),
            _ => continue,
        };
        assert_eq!(b.predict_x(&z, shape, l).unwrap(), want, "λ = {l}, w = {w}");
    }
}

/// Past 1024 px a side the network runs in blended tiles: same values as one pass where a
/// pixel sees only one tile, finite everywhere, and wrong lengths are errors.
#[test]
fn wide_images_are_denoised_in_tiles() {
    let d = load();
    let shape = Shape::new(3, 8, 1100);
    let z: Vec<f32> = (0..shape.len())
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8)
        .collect();
    let x = d.predict_x(&z, shape, 2.0).unwrap();
    assert_eq!(x.len(), shape.len());
    assert!(x.iter().all(|v| v.is_finite() && (-1.0..=1.0).contains(v)));
    assert!(d.predict_x(&z[1..], shape, 2.0).is_err());
    // the tiles start at columns 0 and 1100 − 1024 = 76: the 76 columns before the second tile
    // are the first tile's alone, so they equal denoising that tile by itself
    let tile = Shape::new(3, 8, 1024);
    let zt: Vec<f32> = (0..3 * 8)
        .flat_map(|r| z[r * 1100..r * 1100 + 1024].to_vec())
        .collect();
    let xt = d.predict_x(&zt, tile, 2.0).unwrap();
    for r in 0..3 * 8 {
        for c in 0..76 {
            assert_eq!(x[r * 1100 + c], xt[r * 1024 + c], "row {r}, col {c}");
        }
    }
}
