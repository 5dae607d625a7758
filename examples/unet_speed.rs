//! Times one U-Net forward on a 256×256 RGB input (CPU), or one `predict_x` of any model
//! `diffc` knows by name (e.g. the `photo-unet-s-wiener` blend: both its parts plus the mix).
//!
//! `cargo run --release --example unet_speed [-- CHECKPOINT.safetensors|MODEL [SIZE]]`
use candle_core::{Device, Tensor};
use diffc::nn::unet::UNet;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "checkpoints/photo-unet-s.safetensors".into());
    let size: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let dev = Device::Cpu;
    if !path.ends_with(".safetensors") {
        return time_model(&path, size);
    }
    let (net, _) = UNet::load(std::path::Path::new(&path), &dev)?;
    let z = Tensor::randn(0f32, 1f32, (1, 3, size, size), &dev)?;
    let l = Tensor::new(&[1.5f32], &dev)?;
    let mut times = vec![];
    let mut cpu = vec![];
    for i in 0..6 {
        let (t, c0) = (Instant::now(), cpu_seconds());
        let v = net.forward(&z, &l)?;
        let _ = v.flatten_all()?.to_vec1::<f32>()?;
        let s = t.elapsed().as_secs_f64();
        if i > 0 {
            times.push(s);
            cpu.push(cpu_seconds() - c0);
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let threads = candle_core::utils::get_num_threads();
    println!(
        "{path}: {size}x{size} forward on CPU ({threads} threads): wall median {:.3} s, min {:.3} s; \
         process CPU time median {:.3} s (= {:.3} s of wall on {threads} idle cores)",
        times[times.len() / 2],
        times[0],
        cpu[cpu.len() / 2],
        cpu[cpu.len() / 2] / threads as f64
    );
    Ok(())
}

/// Median wall seconds of `predict_x` (λ = 1.5) for a model loaded by name.
fn time_model(name: &str, size: usize) -> anyhow::Result<()> {
    let m = diffc::denoiser::load(name, &Device::Cpu)?;
    let shape = diffc::image_io::Shape::new(3, size, size);
    let z: Vec<f32> = (0..shape.len())
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8)
        .collect();
    let mut times = vec![];
    for i in 0..6 {
        let t = Instant::now();
        let _ = m.predict_x(&z, shape, 1.5)?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{name}: {size}x{size} predict_x on CPU: wall median {:.3} s, min {:.3} s",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`; 0 elsewhere), so the
/// figure means something on a machine shared with other jobs.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}
