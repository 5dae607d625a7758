//! Helpers shared by the integration tests: integer test patterns for the metric tests (they
//! mirror eval/fixtures/patterns.py, which made the committed reference values, bit for bit)
//! and the corrupt-file checks of the codec tests (`corrupt`).
#![allow(dead_code)]
pub mod corrupt;
pub mod parity;
use diffc::image_io::{Image, Shape};

pub fn h32(x: u32, y: u32, c: u32, seed: u32) -> u32 {
    let mut v = x.wrapping_mul(73856093)
        ^ y.wrapping_mul(19349663)
        ^ c.wrapping_mul(83492791)
        ^ seed.wrapping_mul(2654435761);
    v ^= v >> 13;
    v = v.wrapping_mul(0x5BD1E995);
    v ^= v >> 15;
    v
}

pub fn pattern(kind: &str, h: usize, w: usize, seed: u32) -> Vec<u8> {
    let mut out = vec![0u8; 3 * h * w];
    for c in 0..3u32 {
        for y in 0..h as u32 {
            for x in 0..w as u32 {
                let base = ((x * (c + 2) + y * 3 + ((x * y) >> 5))
                    + (h32(x >> 3, y >> 3, c, seed) & 63))
                    & 255;
                let v = match kind {
                    "base" => base,
                    "noisy" => (base as i64 + (h32(x, y, c, seed + 1) % 61) as i64 - 30)
                        .clamp(0, 255) as u32,
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

pub fn to_image(p: &[u8], h: usize, w: usize) -> Image {
    Image {
        shape: Shape::new(3, h, w),
        data: p.iter().map(|&v| v as f32 / 127.5 - 1.0).collect(),
    }
}
