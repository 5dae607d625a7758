//! The space a DiffC trajectory runs in. A model defines it: pixels for the pixel-space
//! models, an autoencoder's latents for latent diffusion. Encode = to-space → trajectory →
//! container; decode = container → trajectory → from-space. Shapes travel explicitly: the
//! file holds the image's shape, and the space says which latent shape that image has.
use crate::error::{Error, Result};
use crate::image_io::{Image, Shape};

pub trait Space: Send + Sync {
    /// Short name (`pixels`, …).
    fn name(&self) -> &str;
    /// Shape of the representation of an image of shape `image` (an error if the space
    /// cannot hold such an image).
    fn latent_shape(&self, image: Shape) -> Result<Shape>;
    /// The image's representation, planar, of [`Space::latent_shape`].
    fn to_latent(&self, img: &Image) -> Result<Vec<f32>>;
    /// The image of shape `image` that a representation `z` of shape `latent` stands for.
    fn to_image(&self, z: Vec<f32>, latent: Shape, image: Shape) -> Result<Image>;
}

/// Pixel space: planar RGB in [−1, 1]; decoding clamps to that range.
pub struct Pixels;

impl Space for Pixels {
    fn name(&self) -> &str {
        "pixels"
    }
    fn latent_shape(&self, image: Shape) -> Result<Shape> {
        if image.c != 3 {
            return Err(Error::Unsupported(format!(
                "DiffC codes 3-channel images, not {}",
                image.c
            )));
        }
        Ok(image)
    }
    fn to_latent(&self, img: &Image) -> Result<Vec<f32>> {
        self.latent_shape(img.shape)?;
        Ok(img.data.clone())
    }
    fn to_image(&self, mut z: Vec<f32>, latent: Shape, image: Shape) -> Result<Image> {
        debug_assert_eq!(latent, image);
        for v in &mut z {
            *v = v.clamp(-1.0, 1.0);
        }
        Ok(Image {
            shape: image,
            data: z,
        })
    }
}

/// Stable Diffusion's VAE latents: 4 × (h/8) × (w/8) of the image padded by reflection to a
/// multiple of 64 pixels (so the UNet's three downsamplings divide the latent), scaled by the
/// VAE's scaling factor; the encoder takes the posterior mean. Decoding crops the padding.
pub struct VaeLatents {
    pub sd: std::sync::Arc<crate::nn::sd::StableDiffusion>,
    pub device: candle_core::Device,
    /// The networks' float type.
    pub dtype: candle_core::DType,
}

/// Pixel multiple of SD latents here (8 for the VAE × 8 for the UNet).
pub const SD_PIXEL_MULTIPLE: usize = 64;
/// Largest image the SD space takes (pixels): the VAE is not tiled, so its activations grow
/// with the image (a 1024² decode at full size needs several GB); larger images are refused.
pub const SD_MAX_PIXELS: usize = 1024 * 1024;

impl VaeLatents {
    fn padded(image: Shape) -> (usize, usize) {
        let m = SD_PIXEL_MULTIPLE;
        (image.h.div_ceil(m) * m, image.w.div_ceil(m) * m)
    }
}

/// Index of `i` reflected into 0..n (…2 1 0 1 2…), for padding.
fn reflect(i: usize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let p = 2 * (n - 1);
    let r = i % p;
    if r < n { r } else { p - r }
}

impl Space for VaeLatents {
    fn name(&self) -> &str {
        "sd-vae"
    }
    fn latent_shape(&self, image: Shape) -> Result<Shape> {
        if image.c != 3 {
            return Err(Error::Unsupported(format!(
                "Stable Diffusion codes 3-channel images, not {}",
                image.c
            )));
        }
        if image.pixels() > SD_MAX_PIXELS {
            return Err(Error::Unsupported(format!(
                "{}×{} is larger than the Stable Diffusion path takes ({SD_MAX_PIXELS} pixels; \
                 its VAE is not tiled): crop or downscale the image",
                image.w, image.h
            )));
        }
        let (hp, wp) = Self::padded(image);
        Ok(Shape::new(4, hp / 8, wp / 8))
    }
    fn to_latent(&self, img: &Image) -> Result<Vec<f32>> {
        let latent = self.latent_shape(img.shape)?;
        let Shape { h, w, .. } = img.shape;
        let (hp, wp) = Self::padded(img.shape);
        let mut x = vec![0f32; 3 * hp * wp];
        for c in 0..3 {
            for y in 0..hp {
                let src = &img.data[(c * h + reflect(y, h)) * w..][..w];
                for (xx, d) in x[(c * hp + y) * wp..][..wp].iter_mut().enumerate() {
                    *d = src[reflect(xx, w)];
                }
            }
        }
        let t =
            candle_core::Tensor::from_vec(x, (1, 3, hp, wp), &self.device)?.to_dtype(self.dtype)?;
        let mean = self.sd.vae.encode(&t)?;
        let z = (mean.to_dtype(candle_core::DType::F32)? * self.sd.vae_scaling_factor)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        debug_assert_eq!(z.len(), latent.len());
        Ok(z)
    }
    fn to_image(&self, z: Vec<f32>, latent: Shape, image: Shape) -> Result<Image> {
        let t = candle_core::Tensor::from_vec(z, (1, 4, latent.h, latent.w), &self.device)?;
        let t = (t / self.sd.vae_scaling_factor)?.to_dtype(self.dtype)?;
        let x = self
            .sd
            .vae
            .decode(&t)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let (hp, wp) = (latent.h * 8, latent.w * 8);
        let mut out = Image::zeros(image);
        for c in 0..3 {
            for y in 0..image.h {
                let src = &x[(c * hp + y) * wp..][..image.w];
                let dst = &mut out.data[(c * image.h + y) * image.w..][..image.w];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s.clamp(-1.0, 1.0);
                }
            }
        }
        Ok(out)
    }
}
