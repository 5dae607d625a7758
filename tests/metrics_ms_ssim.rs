//! MS-SSIM and PSNR pinned against golden values from pytorch-msssim (float64), computed once
//! by eval/fixtures/make_ms_ssim_fixture.py on integer patterns regenerated here bit-exactly
//! (tolerance 1e-9 against the float64-window reference, 1e-6 against the stock package).
use diffc::image_io::{Image, Shape};
use diffc::metrics::{ms_ssim, psnr};

/// Mirror of eval/fixtures/patterns.py (bit-exact integer patterns, planar CHW, 0..=255).
fn h32(x: u32, y: u32, c: u32, seed: u32) -> u32 {
    let mut v = x.wrapping_mul(73856093) ^ y.wrapping_mul(19349663) ^ c.wrapping_mul(83492791) ^ seed.wrapping_mul(2654435761);
    v ^= v >> 13;
    v = v.wrapping_mul(0x5BD1E995);
    v ^= v >> 15;
    v
}

fn pattern(kind: &str, h: usize, w: usize, seed: u32) -> Vec<u8> {
    let mut out = vec![0u8; 3 * h * w];
    for c in 0..3u32 {
        for y in 0..h as u32 {
            for x in 0..w as u32 {
                let base = ((x * (c + 2) + y * 3 + ((x * y) >> 5)) + (h32(x >> 3, y >> 3, c, seed) & 63)) & 255;
                let v = match kind {
                    "base" => base,
                    "noisy" => (base as i64 + (h32(x, y, c, seed + 1) % 61) as i64 - 30).clamp(0, 255) as u32,
                    "quant" => ((base >> 4) << 4) + 8,
                    "blocks" => h32(x >> 3, y >> 3, c, seed) & 255,
                    _ => panic!("unknown pattern {kind}"),
                };
                out[(c as usize * h + y as usize) * w + x as usize] = v as u8;
            }
        }
    }
    out
}

fn to_image(p: &[u8], h: usize, w: usize) -> Image {
    Image { shape: Shape::new(3, h, w), data: p.iter().map(|&v| v as f32 / 127.5 - 1.0).collect() }
}

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
    let g: Golden = serde_json::from_str(include_str!("fixtures/ms_ssim_golden.json")).unwrap();
    assert!(g.cases.len() >= 5);
    for c in &g.cases {
        let a = to_image(&pattern(&c.a, c.h, c.w, c.seed), c.h, c.w);
        let b = to_image(&pattern(&c.b, c.h, c.w, c.seed), c.h, c.w);
        let m = ms_ssim(&a, &b).unwrap().expect("large enough");
        // Both sides float64 (window included); only summation order differs.
        assert!((m - c.ms_ssim).abs() < 1e-9, "{}: MS-SSIM {m} vs golden {}", c.name, c.ms_ssim);
        // The package as shipped builds its window in float32.
        assert!((m - c.ms_ssim_stock).abs() < 1e-6, "{}: MS-SSIM {m} vs stock {}", c.name, c.ms_ssim_stock);
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
    assert_eq!(ms_ssim(&s, &s).unwrap(), None, "smaller side 160 < 161 cannot take 5 scales");
}

#[test]
fn psnr_known_value() {
    // Every value off by exactly 1 → MSE 1 → PSNR = 20·log10(255).
    let a = to_image(&vec![100u8; 3 * 8 * 8], 8, 8);
    let b = to_image(&vec![101u8; 3 * 8 * 8], 8, 8);
    let p = psnr(&a, &b).unwrap();
    assert!((p - 20.0 * 255f64.log10()).abs() < 1e-12, "{p}");
}
