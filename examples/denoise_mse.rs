//! Denoising MSE per log-SNR for several models on a folder of images: where a prior is weak.
//!
//! `cargo run --release --example denoise_mse -- DIR N MODEL[,MODEL...]`
use diffc::diffusion::diffuse;
use diffc::rng::{Purpose, Stream};
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let dir = Path::new(&a[1]);
    let n: usize = a[2].parse()?;
    let models: Vec<_> = a[3]
        .split(',')
        .map(|m| diffc::denoiser::load(m, &candle_core::Device::Cpu))
        .collect::<Result<_, _>>()?;
    let images = diffc::eval::list_images(dir)?;
    let lambdas = [-8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0];
    println!("logsnr {}", a[3].replace(',', " "));
    for &l in &lambdas {
        let mut mse = vec![0f64; models.len()];
        for (k, p) in images.iter().take(n).enumerate() {
            let img = diffc::image_io::load(p)?;
            let mut e = vec![0f32; img.data.len()];
            Stream::new(k as u64, Purpose::Experiment, 0, 0, 0).fill_normal(&mut e);
            let z = diffuse(&img.data, &e, l);
            for (j, m) in models.iter().enumerate() {
                let xh = m.predict_x(&z, img.shape, l)?;
                mse[j] += xh
                    .iter()
                    .zip(&img.data)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
                    / xh.len() as f64
                    / n as f64;
            }
        }
        println!(
            "{l:6.1} {}",
            mse.iter()
                .map(|m| format!("{m:.5}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
