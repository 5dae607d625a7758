//! MS-SSIM and PSNR pinned against golden values from pytorch-msssim (float64), computed once
//! by eval/fixtures/make_ms_ssim_fixture.py on integer patterns regenerated here bit-exactly
//! (tolerance 1e-9 against the float64-window reference, 1e-6 against the stock package).
use diffc::metrics::{ms_ssim, psnr};

/// Mirror of eval/fixtures/patterns.py (bit-exact integer patterns, planar CHW, 0..=255).
use crate::common;
use common::{pattern, to_image};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    h: usize,
    w: usize,
    seed: u32,
    a: String,
    b: String,
    ms_ssim: f64,
    ms_ssim_stock: f64,
    psnr: Option<f64>,
}

#[derive(serde::Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

#[test]
fn ms_ssim_matches_pytorch_msssim() {
    let g: Golden = serde_json::from_str(include_str!("../fixtures/ms_ssim_golden.json")).unwrap();
    assert!(g.cases.len() >= 5);
    for c in &g.cases {
        let a = to_image(&pattern(&c.a, c.h, c.w, c.seed), c.h, c.w);
        let b = to_image(&pattern(&c.b, c.h, c.w, c.seed), c.h, c.w);
        let m = ms_ssim(&a, &b).unwrap().expect("large enough");
        // Both sides float64 (window included); only summation order differs.
        assert!(
            (m - c.ms_ssim).abs() < 1e-9,
            "{}: MS-SSIM {m} vs golden {}",
            c.name,
            c.ms_ssim
        );
        // The package as shipped builds its window in float32.
        assert!(
            (m - c.ms_ssim_stock).abs() < 1e-6,
            "{}: MS-SSIM {m} vs stock {}",
            c.name,
            c.ms_ssim_stock
        );
        let p = psnr(&a, &b).unwrap();
        match c.psnr {
            Some(gp) => assert!((p - gp).abs() < 1e-9, "{}: PSNR {p} vs {gp}", c.name),
            None => assert!(p.is_infinite()),
        }
    }
}

#[test]
fn ms_ssim_symmetric_and_small_images_refused() {
    let a = to_image(&pattern("base", 176, 176, 9), 176, 176);
    let b = to_image(&pattern("noisy", 176, 176, 9), 176, 176);
    let ab = ms_ssim(&a, &b).unwrap().unwrap();
    let ba = ms_ssim(&b, &a).unwrap().unwrap();
    assert!((ab - ba).abs() < 1e-12);
    let s = to_image(&pattern("base", 160, 300, 9), 160, 300);
    assert_eq!(
        ms_ssim(&s, &s).unwrap(),
        None,
        "smaller side 160 < 161 cannot take 5 scales"
    );
}

#[test]
fn psnr_known_value() {
    // Every value off by exactly 1 → MSE 1 → PSNR = 20·log10(255).
    let a = to_image(&[100u8; 3 * 8 * 8], 8, 8);
    let b = to_image(&[101u8; 3 * 8 * 8], 8, 8);
    let p = psnr(&a, &b).unwrap();
    assert!((p - 20.0 * 255f64.log10()).abs() < 1e-12, "{p}");
}
