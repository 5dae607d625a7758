//! Patch-wise denoising for images too large for one network pass.
//!
//! The sampler keeps working on the whole latent; each denoiser call is split into
//! overlapping tiles whose predictions are blended with weights that ramp linearly across
//! the overlap, so neighbouring tiles agree at every step and no seam accumulates.
use crate::image_io::Shape;
use anyhow::Result;

/// Networks denoise images with a side above this in overlapping tiles of this size, so
/// memory stays bounded whatever the photo (a 1024×1024 U-Net pass needs a few hundred MB).
pub const TILE: usize = 1024;
/// Pixels shared by neighbouring tiles, blended linearly.
pub const OVERLAP: usize = 128;

/// Tile placement along one axis: starts of tiles of `tile` with at least `overlap` shared.
fn starts(n: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if n <= tile {
        return vec![0];
    }
    let stride = tile - overlap;
    let count = (n - overlap).div_ceil(stride);
    // spread the tiles evenly so the last one ends exactly at n
    (0..count).map(|i| i * (n - tile) / (count - 1)).collect()
}

/// Blend weight at position `i` of a tile of `len` that overlaps neighbours on the flagged sides.
fn ramp(i: usize, len: usize, overlap: usize, lo: bool, hi: bool) -> f32 {
    let mut w = 1.0f32;
    if lo && i < overlap {
        w = w.min((i as f32 + 0.5) / overlap as f32);
    }
    if hi && len - 1 - i < overlap {
        w = w.min(((len - 1 - i) as f32 + 0.5) / overlap as f32);
    }
    w
}

/// Calls `predict(z_tile, tile_shape, y0, x0)` on overlapping `tile`×`tile` tiles of the
/// planar `z` and blends the results. With the whole image in one tile it is one call.
pub fn predict_tiled(
    z: &[f32],
    shape: Shape,
    tile: usize,
    overlap: usize,
    predict: impl Fn(&[f32], Shape, usize, usize) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    let Shape { c, h, w } = shape;
    assert!(
        overlap * 2 <= tile && tile > 0,
        "bad tiling {tile}/{overlap}"
    );
    if h <= tile && w <= tile {
        return predict(z, shape, 0, 0);
    }
    anyhow::ensure!(
        z.len() == shape.len(),
        "latent of {} values for a {c}×{h}×{w} image",
        z.len()
    );
    let (ys, xs) = (starts(h, tile, overlap), starts(w, tile, overlap));
    let mut acc = vec![0f32; z.len()];
    let mut wsum = vec![0f32; h * w];
    for (iy, &y0) in ys.iter().enumerate() {
        let th = tile.min(h);
        for (ix, &x0) in xs.iter().enumerate() {
            let tw = tile.min(w);
            let ts = Shape::new(c, th, tw);
            let out = predict(&crop(z, shape, ts, y0, x0), ts, y0, x0)?;
            let (lo_y, hi_y) = (iy > 0, iy + 1 < ys.len());
            let (lo_x, hi_x) = (ix > 0, ix + 1 < xs.len());
            for y in 0..th {
                let wy = ramp(y, th, overlap, lo_y, hi_y);
                for x in 0..tw {
                    let wt = wy * ramp(x, tw, overlap, lo_x, hi_x);
                    wsum[(y0 + y) * w + x0 + x] += wt;
                    for ch in 0..c {
                        acc[(ch * h + y0 + y) * w + x0 + x] += wt * out[(ch * th + y) * tw + x];
                    }
                }
            }
        }
    }
    for ch in 0..c {
        for (a, &s) in acc[ch * h * w..(ch + 1) * h * w].iter_mut().zip(&wsum) {
            *a /= s;
        }
    }
    Ok(acc)
}

/// Slices channel-planar `v` (c×h×w) to the tile at (y0, x0) of `ts`'s size.
pub fn crop(v: &[f32], shape: Shape, ts: Shape, y0: usize, x0: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(ts.len());
    for ch in 0..shape.c {
        for y in y0..y0 + ts.h {
            out.extend_from_slice(&v[(ch * shape.h + y) * shape.w + x0..][..ts.w]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_with_the_overlap() {
        for (n, t, o) in [(100, 64, 16), (64, 64, 16), (65, 64, 16), (1000, 256, 32)] {
            let s = starts(n, t, o);
            assert_eq!(*s.last().unwrap() + t.min(n), n);
            for p in s.windows(2) {
                assert!(p[0] + t >= p[1] + o, "{n}/{t}/{o}: {s:?}");
            }
        }
    }

    /// A pointwise "denoiser" is reproduced exactly by the blend (weights sum to one), and
    /// one tile covering everything is a single call.
    #[test]
    fn blending_a_pointwise_map_is_exact() {
        let shape = Shape::new(2, 37, 53);
        let z: Vec<f32> = (0..shape.len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let f =
            |v: &[f32], _: Shape, _: usize, _: usize| Ok(v.iter().map(|x| 2.0 * x + 1.0).collect());
        let tiled = predict_tiled(&z, shape, 16, 4, f).unwrap();
        let whole = predict_tiled(&z, shape, 64, 4, f).unwrap();
        for (a, b) in tiled.iter().zip(&whole) {
            assert!((a - b).abs() < 1e-5);
        }
        let ts = Shape::new(2, 5, 7);
        let c = crop(&z, shape, ts, 3, 4);
        assert_eq!(c[0], z[3 * 53 + 4]);
        assert_eq!(c[35], z[37 * 53 + 3 * 53 + 4]);
    }
}
