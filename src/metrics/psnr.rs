//! Peak signal-to-noise ratio on 8-bit RGB.
use crate::image_io::Image;
use anyhow::{Result, bail};

/// Mean squared error over all channels and pixels, on the 8-bit grid (0..=255).
pub fn mse_u8(a: &Image, b: &Image) -> Result<f64> {
    if a.shape != b.shape {
        bail!("PSNR: shapes differ ({:?} vs {:?})", a.shape, b.shape);
    }
    if a.data.is_empty() {
        bail!("PSNR: empty image");
    }
    let pa = super::planes_u8(a);
    let pb = super::planes_u8(b);
    let se: f64 = pa.iter().zip(&pb).map(|(x, y)| (x - y) * (x - y)).sum();
    Ok(se / pa.len() as f64)
}

/// PSNR in dB with peak 255, over all RGB values (one MSE for the three channels).
/// Identical images give `f64::INFINITY`.
pub fn psnr(a: &Image, b: &Image) -> Result<f64> {
    let mse = mse_u8(a, b)?;
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    })
}
