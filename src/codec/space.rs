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
