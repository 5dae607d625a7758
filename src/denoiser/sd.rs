//! Stable Diffusion's UNet as a [`Denoiser`] over its VAE latents (latent DiffC), with the
//! empty prompt and no guidance (Vonderfecht & Liu's zero-shot setting).
//!
//! Our log-SNR λ maps onto SD's discrete schedule through its ᾱ table (f64, ours): the UNet is
//! called at the fractional timestep t where λ(ᾱ_t) = λ, interpolated linearly in λ between the
//! table's entries (its embedding is a smooth function of t), and x̂ is formed with the exact
//! α, σ of λ (`crate::diffusion`), from ε or v as the scheduler config says.
use super::Denoiser;
use crate::diffusion::alpha_sigma;
use crate::image_io::Shape;
use crate::nn::sd::{PredictionType, StableDiffusion};
use anyhow::{Result, ensure};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// λ_t = ln(ᾱ_t / (1 − ᾱ_t)) of every table entry (decreasing in t).
pub fn table_logsnr(alphas_cumprod: &[f64]) -> Vec<f64> {
    alphas_cumprod
        .iter()
        .map(|&a| libm::log(a) - libm::log1p(-a))
        .collect()
}

/// The fractional timestep whose table log-SNR is `logsnr`, clamped to the table's range.
pub fn timestep_for_logsnr(table: &[f64], logsnr: f64) -> f64 {
    let n = table.len();
    if logsnr >= table[0] {
        return 0.0;
    }
    if logsnr <= table[n - 1] {
        return (n - 1) as f64;
    }
    // first t with table[t] < logsnr (table decreasing)
    let hi = table.partition_point(|&l| l >= logsnr);
    let (l0, l1) = (table[hi - 1], table[hi]);
    (hi - 1) as f64 + (l0 - logsnr) / (l0 - l1)
}

/// SD's UNet with the cached empty-prompt embedding.
pub struct SdDenoiser {
    sd: Arc<StableDiffusion>,
    context: Tensor,
    table: Vec<f64>,
    name: String,
    device: Device,
}

impl SdDenoiser {
    pub fn new(sd: Arc<StableDiffusion>, name: &str, device: &Device) -> Result<Self> {
        let context = sd.encode_empty_prompt()?;
        Ok(SdDenoiser {
            table: table_logsnr(&sd.alphas_cumprod),
            sd,
            context,
            name: name.to_string(),
            device: device.clone(),
        })
    }

    /// The log-SNR range SD's schedule covers: (λ at t = 999, λ at t = 0).
    pub fn logsnr_range(&self) -> (f64, f64) {
        (self.table[self.table.len() - 1], self.table[0])
    }
}

impl Denoiser for SdDenoiser {
    fn name(&self) -> &str {
        &self.name
    }
    fn fingerprint(&self) -> u32 {
        self.sd.fingerprint as u32
    }
    fn predict_x(&self, z: &[f32], shape: Shape, logsnr: f64) -> Result<Vec<f32>> {
        ensure!(
            shape.c == 4 && z.len() == shape.len(),
            "SD latents are 4×h×w, got {shape:?}"
        );
        let t = timestep_for_logsnr(&self.table, logsnr);
        let zt = Tensor::from_slice(z, (1, 4, shape.h, shape.w), &self.device)?;
        let dtype = self.context.dtype();
        let out = self
            .sd
            .unet
            .forward(&zt.to_dtype(dtype)?, t, &self.context)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let (a, s) = alpha_sigma(logsnr);
        Ok(z.iter()
            .zip(&out)
            .map(|(&z, &o)| {
                let (z, o) = (z as f64, o as f64);
                (match self.sd.prediction_type {
                    PredictionType::Epsilon => (z - s * o) / a,
                    PredictionType::VPrediction => a * z - s * o,
                }) as f32
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timesteps_invert_the_table() {
        let abar = crate::nn::sd::maths::scaled_linear_alphas_cumprod(0.00085, 0.012, 1000);
        let table = table_logsnr(&abar);
        for t in [0usize, 1, 199, 500, 998, 999] {
            assert!((timestep_for_logsnr(&table, table[t]) - t as f64).abs() < 1e-9);
        }
        let mid = 0.5 * (table[10] + table[11]);
        assert!((timestep_for_logsnr(&table, mid) - 10.5).abs() < 1e-9);
        assert_eq!(timestep_for_logsnr(&table, 100.0), 0.0);
        assert_eq!(timestep_for_logsnr(&table, -100.0), 999.0);
    }
}
