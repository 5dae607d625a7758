//! The candle U-Net reproduces the JAX trainer's outputs on the shipped checkpoint.
//!
//! `tests/fixtures/unet_parity.safetensors` is written by
//! `python notebooks/train_unet.py --write-fixture` from `checkpoints/photo-unet-s.safetensors`,
//! and `unet_m_parity.safetensors` by `--name photo-unet-m --out-dir checkpoints --write-fixture
//! --fixture-out tests/fixtures/unet_m_parity.safetensors` (likewise `unet_m2_parity` from
//! `photo-unet-m2`); regenerate one whenever its checkpoint changes.
use candle_core::Device;
use diffc::denoiser::Denoiser;
use diffc::denoiser::unet::UNetDenoiser;
use diffc::image_io::Shape;
use std::path::PathBuf;

use crate::common;
use common::parity::{TOL, checkpoint_crc, max_abs_diff, vec};

/// The shipped U-Nets and their fixtures, or `DIFFC_UNET_CHECKPOINT` with `DIFFC_UNET_FIXTURE`
/// to check another.
fn pairs() -> Vec<(PathBuf, PathBuf)> {
    if std::env::var_os("DIFFC_UNET_CHECKPOINT").is_some() {
        return vec![(
            common::parity::path_or_env("DIFFC_UNET_CHECKPOINT", ""),
            common::parity::path_or_env(
                "DIFFC_UNET_FIXTURE",
                "tests/fixtures/unet_parity.safetensors",
            ),
        )];
    }
    [
        ("photo-unet-s", "unet_parity"),
        ("photo-unet-m", "unet_m_parity"),
        ("photo-unet-m2", "unet_m2_parity"),
    ]
    .iter()
    .map(|(c, f)| {
        let root = common::parity::root();
        (
            root.join(format!("checkpoints/{c}.safetensors")),
            root.join(format!("tests/fixtures/{f}.safetensors")),
        )
    })
    .collect()
}

fn load_from(path: &std::path::Path) -> UNetDenoiser {
    UNetDenoiser::load(path, &Device::Cpu).expect("checkpoint loads")
}

/// photo-unet-s, for the tests of the adapter that do not depend on the weights.
fn load() -> UNetDenoiser {
    load_from(&common::parity::root().join("checkpoints/photo-unet-s.safetensors"))
}

#[test]
fn fixture_matches_checkpoint() {
    for (ckpt, fixture) in pairs() {
        assert_eq!(
            checkpoint_crc(&fixture),
            load_from(&ckpt).fingerprint(),
            "{}: fixture was written from another checkpoint: rerun --write-fixture",
            fixture.display()
        );
    }
}

#[test]
fn network_matches_jax() {
    for (ckpt, fixture) in pairs() {
        let d = load_from(&ckpt);
        let f = common::parity::load(&fixture);
        let v = d.net().forward(&f["z"], &f["logsnr"]).unwrap();
        let (got, want) = (vec(&v), vec(&f["v"]));
        let err = max_abs_diff(&got, &want);
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        eprintln!(
            "{}: U-Net parity: max |Δv| = {err:.3e} (max |v| = {scale:.3})",
            ckpt.display()
        );
        assert!(
            err <= TOL,
            "{}: max abs error {err} > {TOL}",
            ckpt.display()
        );
    }
}

#[test]
fn adapter_pads_and_matches_jax() {
    for (ckpt, fixture) in pairs() {
        let d = load_from(&ckpt);
        let f = common::parity::load(&fixture);
        let z = vec(&f["pad_z"]);
        let (c, h, w) = f["pad_z"].dims3().unwrap();
        let l = f["pad_logsnr"].to_vec1::<f32>().unwrap()[0] as f64;
        let got = d.predict_x(&z, Shape::new(c, h, w), l).unwrap();
        let want = vec(&f["pad_x"]);
        let err = max_abs_diff(&got, &want);
        eprintln!(
            "{}: adapter parity ({c}×{h}×{w}): max |Δx̂| = {err:.3e}",
            ckpt.display()
        );
        assert!(
            err <= TOL,
            "{}: max abs error {err} > {TOL}",
            ckpt.display()
        );
    }
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

/// The shipped blends (`checkpoints/photo-unet-{s,m,m2}-wiener*.json`) load by name, are listed, have
/// their own fingerprints, and follow their cards: at every knot, x̂_U-Net plus each DCT band of
/// (x̂_Wiener − x̂_U-Net) scaled by the card's weight for it, computed here independently.
#[test]
fn shipped_blends_load_and_follow_their_cards() {
    use diffc::denoiser::blend::BlendParams;
    use diffc::denoiser::gaussian::dct2d;
    let dev = Device::Cpu;
    let g = diffc::denoiser::load("gauss-spectrum", &dev).unwrap();
    let bases: Vec<_> = ["photo-unet-s", "photo-unet-m", "photo-unet-m2"]
        .iter()
        .map(|n| diffc::denoiser::load(n, &dev).unwrap())
        .collect();
    let shape = Shape::new(3, 12, 10);
    let (h, w) = (shape.h, shape.w);
    let z: Vec<f32> = (0..shape.len())
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8)
        .collect();
    let mut fingerprints = vec![g.fingerprint()];
    fingerprints.extend(bases.iter().map(|u| u.fingerprint()));
    for (base, name, bands) in [
        (0, "photo-unet-s-wiener", 1),
        (0, "photo-unet-s-wiener-bands", 7),
        (1, "photo-unet-m-wiener-bands", 7),
        (2, "photo-unet-m2-wiener-bands", 7),
    ] {
        let u = &bases[base];
        assert!(diffc::denoiser::known_models().contains(&name.to_string()));
        let b = diffc::denoiser::load(name, &dev).unwrap();
        assert_eq!(b.name(), name);
        assert!(
            fingerprints
                .iter()
                .all(|f| *f as u16 != b.fingerprint() as u16),
            "{name}: fingerprint"
        );
        fingerprints.push(b.fingerprint());
        let card: serde_json::Value = serde_json::from_slice(
            &std::fs::read(common::parity::root().join(format!("checkpoints/{name}.json")))
                .unwrap(),
        )
        .unwrap();
        let p: BlendParams = serde_json::from_value(card["params"].clone()).unwrap();
        assert!(
            p.weight.iter().all(|ws| ws.len() == bands),
            "{name}: {bands} band(s)"
        );
        for (l, ws) in p.logsnr.iter().zip(&p.weight) {
            let (xu, xg) = (
                u.predict_x(&z, shape, *l).unwrap(),
                g.predict_x(&z, shape, *l).unwrap(),
            );
            let mut want = Vec::new();
            for c in 0..3 {
                let r = c * h * w..(c + 1) * h * w;
                let mut d: Vec<f64> = xg[r.clone()]
                    .iter()
                    .zip(&xu[r.clone()])
                    .map(|(&g, &u)| g as f64 - u as f64)
                    .collect();
                dct2d(&mut d, h, w, false);
                for (i, v) in d.iter_mut().enumerate() {
                    *v *= ws[p.band(i / w, i % w, h, w)];
                }
                dct2d(&mut d, h, w, true);
                want.extend(xu[r].iter().zip(&d).map(|(&u, &d)| u as f64 + d));
            }
            let got = b.predict_x(&z, shape, *l).unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-5, "{name}, λ = {l}: max error {err}");
        }
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

/// The fused CPU kernels (the default) agree with candle's ops (the reference path) on every
/// shipped checkpoint, on the fixture's input and on a larger one.
#[test]
fn fast_kernels_match_reference_forward() {
    for (ckpt, fixture) in pairs() {
        let mut net = load_from(&ckpt).net().clone();
        assert!(net.fast_kernels(), "fast kernels are the default");
        let f = common::parity::load(&fixture);
        let n = 3 * 64 * 96;
        let z: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 1.2)
            .collect();
        let z = candle_core::Tensor::from_vec(z, (1, 3, 64, 96), &Device::Cpu).unwrap();
        let l = candle_core::Tensor::new(&[-2.5f32], &Device::Cpu).unwrap();
        for (z, l) in [(&f["z"], &f["logsnr"]), (&z, &l)] {
            net.set_fast_kernels(true);
            let fast = vec(&net.forward(z, l).unwrap());
            net.set_fast_kernels(false);
            let reference = vec(&net.forward(z, l).unwrap());
            let err = max_abs_diff(&fast, &reference);
            let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
            eprintln!(
                "{}: fast vs reference {:?}: max |Δv| = {err:.3e}",
                ckpt.display(),
                z.dims()
            );
            assert!(err <= 1e-4 * scale, "{}: {err}", ckpt.display());
        }
    }
}

/// Encoder and decoder must compute the same bits: the fast forward is identical on 1 and 2
/// threads.
#[test]
fn fast_forward_is_identical_on_1_and_2_threads() {
    let root = common::parity::root();
    let d = load_from(&root.join("checkpoints/photo-unet-m2.safetensors"));
    let n = 3 * 128 * 128;
    let z: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.9)
        .collect();
    let z = candle_core::Tensor::from_vec(z, (1, 3, 128, 128), &Device::Cpu).unwrap();
    let l = candle_core::Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let v = vec(&pool.install(|| d.net().forward(&z, &l).unwrap()));
        v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
    };
    assert!(run(1) == run(2), "forward differs between 1 and 2 threads");
}
