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

/// User + system CPU seconds of this process (Linux `/proc/self/stat`; 0 elsewhere), so the
/// figure means something on a machine shared with other jobs.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(rest) = stat.rsplit(')').next() else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}
