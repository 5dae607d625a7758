//! The space a DiffC trajectory runs in. A model defines it: pixels for the pixel-space
//! models, an autoencoder's latents for latent diffusion. Encode = to-space → trajectory →
//! container; decode = container → trajectory → from-space. Shapes travel explicitly: the
//! file holds the image's shape, and the space says which latent shape that image has.
use crate::container::{Cursor, put_varint};
use crate::error::{Error, FormatError, Result};
use crate::image_io::{Image, Shape};
use crate::nn::sd::{Family, PredictionType};

/// What a file records of the space its trajectory ran in, so a decoder whose model works
/// elsewhere refuses the file before any model work. Pixel files carry nothing (the format's
/// default); latent files carry the model family, what its network predicts, 16 more bits of
/// the weights' fingerprint (the container holds the low 16) and the latent's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceTag {
    Pixels,
    SdVae {
        family: Family,
        prediction: PredictionType,
        /// Bits 16..32 of the weights' fingerprint.
        fingerprint_hi: u16,
        latent: Shape,
    },
}

impl SpaceTag {
    /// Appends the tag (nothing for pixels).
    pub fn write(&self, b: &mut Vec<u8>) {
        if let SpaceTag::SdVae {
            family,
            prediction,
            fingerprint_hi,
            latent,
        } = *self
        {
            let fam = match family {
                Family::Sd1 => 0u8,
                Family::Sd2 => 1,
            };
            let pred = match prediction {
                PredictionType::Epsilon => 0u8,
                PredictionType::VPrediction => 1,
            };
            b.push(1 | fam << 4 | pred << 5);
            b.extend_from_slice(&fingerprint_hi.to_le_bytes());
            for v in [latent.c, latent.h, latent.w] {
                put_varint(b, v as u64);
            }
        }
    }

    /// Reads a tag from what follows the parameters (none left: pixels).
    pub fn read(c: &mut Cursor) -> std::result::Result<Self, FormatError> {
        if c.at_end() {
            return Ok(SpaceTag::Pixels);
        }
        let head = c.u8()?;
        if head & 0x0f != 1 || head >> 6 != 0 {
            return Err(FormatError::corrupt(
                "space",
                format!("unknown space tag {head:#04x}"),
            ));
        }
        let family = if head >> 4 & 1 == 0 {
            Family::Sd1
        } else {
            Family::Sd2
        };
        let prediction = if head >> 5 & 1 == 0 {
            PredictionType::Epsilon
        } else {
            PredictionType::VPrediction
        };
        let fp = c.take(2)?;
        let fingerprint_hi = u16::from_le_bytes([fp[0], fp[1]]);
        let mut dim = || -> std::result::Result<usize, FormatError> {
            let v = c.varint()?;
            if !(1..=1 << 16).contains(&v) {
                return Err(FormatError::corrupt(
                    "latent shape",
                    format!("side {v} out of range"),
                ));
            }
            Ok(v as usize)
        };
        let latent = Shape::new(dim()?, dim()?, dim()?);
        Ok(SpaceTag::SdVae {
            family,
            prediction,
            fingerprint_hi,
            latent,
        })
    }
}

impl std::fmt::Display for SpaceTag {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            SpaceTag::Pixels => write!(f, "pixels"),
            SpaceTag::SdVae {
                family,
                prediction,
                fingerprint_hi,
                latent,
            } => write!(
                f,
                "{} latents {}×{}×{} ({}, fingerprint bits 16..32 {fingerprint_hi:04x})",
                match family {
                    Family::Sd1 => "SD 1.x",
                    Family::Sd2 => "SD 2.x",
                },
                latent.c,
                latent.h,
                latent.w,
                match prediction {
                    PredictionType::Epsilon => "ε-prediction",
                    PredictionType::VPrediction => "v-prediction",
                },
            ),
        }
    }
}

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
    /// What a file records of this space for a latent of shape `latent`.
    fn tag(&self, latent: Shape) -> SpaceTag;
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
    fn tag(&self, _latent: Shape) -> SpaceTag {
        SpaceTag::Pixels
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
    fn tag(&self, latent: Shape) -> SpaceTag {
        SpaceTag::SdVae {
            family: self.sd.family,
            prediction: self.sd.prediction_type,
            fingerprint_hi: (self.sd.fingerprint >> 16) as u16,
            latent,
        }
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
