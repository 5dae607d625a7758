//! Times one U-Net forward on a 256×256 RGB input (CPU unless `--cuda`).
//!
//! `cargo run --release --example unet_speed [-- CHECKPOINT [SIZE]]`
use candle_core::{Device, Tensor};
use diffc::nn::unet::UNet;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| "checkpoints/photo-unet-s.safetensors".into());
    let size: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let dev = Device::Cpu;
    let (net, _) = UNet::load(std::path::Path::new(&path), &dev)?;
    let z = Tensor::randn(0f32, 1f32, (1, 3, size, size), &dev)?;
    let l = Tensor::new(&[1.5f32], &dev)?;
    let mut times = vec![];
    for i in 0..6 {
        let t = Instant::now();
        let v = net.forward(&z, &l)?;
        let _ = v.flatten_all()?.to_vec1::<f32>()?;
        let s = t.elapsed().as_secs_f64();
        if i > 0 {
            times.push(s);
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{path}: {size}x{size} forward on CPU ({} threads): median {:.3} s, min {:.3} s",
        candle_core::utils::get_num_threads(),
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
