//! Image quality metrics: PSNR, MS-SSIM, Inception features, FID/KID.
//!
//! Distortion metrics work on 8-bit RGB values (the images a user would see), computed
//! from diffc's planar `[-1, 1]` images with [`crate::image_io::to_u8`].
//! Realism metrics (FID, KID) work on feature vectors; [`inception`] computes the standard
//! 2048-d pool features of the FID Inception-v3 network, [`features`] cuts images into
//! patches and also offers a tiny, weight-free feature map for fast tests.

pub mod features;
pub mod fid;
pub mod inception;
pub mod ms_ssim;
pub mod psnr;

pub use fid::{KidResult, fid, kid};
pub use ms_ssim::ms_ssim;
pub use psnr::psnr;

use crate::image_io::{Image, to_u8};

/// The 8-bit RGB planes (CHW, `f64` values 0..=255) that the distortion metrics compare.
pub(crate) fn planes_u8(img: &Image) -> Vec<f64> {
    img.data.iter().map(|&v| to_u8(v) as f64).collect()
}
