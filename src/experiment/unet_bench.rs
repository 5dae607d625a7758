//! Throughput of one U-Net forward pass against candle's matrix multiply, measured in one
//! run (issue 16, item 3): the network's convolution FLOPs (from its config) per second of
//! a 256×256 forward, beside the GFLOP/s of candle matmuls of the shapes the convolutions
//! reduce to (im2col: pixels × (C_in·9) times (C_in·9) × C_out) and of a square one.
use crate::experiment::rcc_bench::{cpu_name, cpu_time, load_average};
use crate::nn::unet::UNet;
use crate::rng::{Purpose, Stream};
use candle_core::{Device, Tensor};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct MatmulBench {
    /// (m, k, n): an m×k times k×n product.
    pub shape: (usize, usize, usize),
    pub what: String,
    pub best_seconds: f64,
    pub gflop_per_second: f64,
    /// CPU seconds of the process per product (mean over the timed ones) and GFLOP per CPU
    /// second: the fair comparison when other jobs share the machine.
    pub cpu_seconds_mean: f64,
    pub gflop_per_cpu_second: f64,
}

#[derive(Debug, Serialize)]
pub struct UnetBench {
    pub cpu: String,
    pub device: String,
    pub threads: usize,
    pub load_average_before: Vec<f64>,
    pub load_average_after: Vec<f64>,
    /// The model asked for and the U-Net checkpoint timed (a blend's base).
    pub model: String,
    pub unet: String,
    pub height: usize,
    pub width: usize,
    /// Convolution FLOPs of one forward ([`crate::nn::unet::Config::forward_flops`]).
    pub forward_gflop: f64,
    /// Wall seconds of each timed forward (after one untimed warm-up), and the best.
    pub forward_seconds: Vec<f64>,
    pub forward_best_seconds: f64,
    /// CPU seconds of the process over all timed forwards ÷ their number.
    pub forward_cpu_seconds_mean: f64,
    pub forward_gflop_per_second: f64,
    pub forward_gflop_per_cpu_second: f64,
    pub matmuls: Vec<MatmulBench>,
    /// Forward GFLOP/s ÷ the best matmul GFLOP/s among the convolution-shaped products, in
    /// wall time and in CPU time.
    pub forward_over_matmul: f64,
    pub forward_over_matmul_cpu: f64,
}

/// Times `reps` forwards of `model`'s U-Net at `h`×`w` on `device`, and the matmuls.
pub fn run(
    model: &str,
    h: usize,
    w: usize,
    reps: usize,
    device: &Device,
) -> anyhow::Result<UnetBench> {
    let load_average_before = load_average();
    let ck = crate::denoiser::base_unet(model)?;
    let net = UNet::from_bytes(&ck.bytes, &ck.origin(), device)?;
    let cfg = net.config().clone();
    let m = cfg.multiple();
    anyhow::ensure!(
        h.is_multiple_of(m) && w.is_multiple_of(m),
        "{h}×{w} is not a multiple of {m}"
    );
    let mut s = Stream::new(0, Purpose::Experiment, 16, 3, 0);
    let mut z = vec![0f32; 3 * h * w];
    s.fill_normal(&mut z);
    let x = Tensor::from_vec(z, (1, 3, h, w), device)?;
    let logsnr = Tensor::from_vec(vec![0f32], 1, device)?;
    let fwd = || -> anyhow::Result<f64> {
        let t = std::time::Instant::now();
        let v = net.forward(&x, &logsnr)?;
        // the values on the host: the work is done
        let _ = v.flatten_all()?.to_vec1::<f32>()?;
        Ok(t.elapsed().as_secs_f64())
    };
    fwd()?;
    let cpu0 = cpu_time();
    let forward_seconds = (0..reps)
        .map(|_| fwd())
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let forward_cpu_seconds_mean = (cpu_time() - cpu0) / reps as f64;
    let forward_best_seconds = forward_seconds
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let flops = cfg.forward_flops(h, w) as f64;
    // the convolutions as products: the level-0 and level-1 resblock convolutions (the bulk
    // of the FLOPs) and the coarsest level's, then a square one
    let px = |l: usize| ((h / cfg.patch) >> l) * ((w / cfg.patch) >> l);
    let mut shapes: Vec<((usize, usize, usize), String)> = (0..cfg.channels.len())
        .map(|l| {
            let c = cfg.channels[l];
            (
                (px(l), 9 * c, c),
                format!("level {l} resblock 3x3 conv as im2col matmul"),
            )
        })
        .collect();
    shapes.push(((1024, 1024, 1024), "square".to_string()));
    let mut matmuls = Vec::new();
    for ((mm, k, n), what) in shapes {
        let mut v = vec![0f32; mm * k];
        s.fill_normal(&mut v);
        let a = Tensor::from_vec(v, (mm, k), device)?;
        let mut v = vec![0f32; k * n];
        s.fill_normal(&mut v);
        let b = Tensor::from_vec(v, (k, n), device)?;
        let mut best = f64::INFINITY;
        let tries = reps.max(3) + 1;
        let cpu0 = cpu_time();
        for _ in 0..tries {
            let t = std::time::Instant::now();
            let c = a.matmul(&b)?;
            let _ = c.flatten_all()?.to_vec1::<f32>()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        matmuls.push(MatmulBench {
            shape: (mm, k, n),
            what,
            best_seconds: best,
            gflop_per_second: 2.0 * (mm * k * n) as f64 / best / 1e9,
            cpu_seconds_mean: (cpu_time() - cpu0) / tries as f64,
            gflop_per_cpu_second: 2.0 * (mm * k * n) as f64 * tries as f64
                / (cpu_time() - cpu0)
                / 1e9,
        });
    }
    let forward_gflop_per_second = flops / forward_best_seconds / 1e9;
    let conv_best = |f: fn(&MatmulBench) -> f64| {
        matmuls
            .iter()
            .filter(|m| m.what != "square")
            .map(f)
            .fold(0.0, f64::max)
    };
    let forward_gflop_per_cpu_second = flops / forward_cpu_seconds_mean / 1e9;
    Ok(UnetBench {
        cpu: cpu_name(),
        device: format!("{device:?}"),
        threads: rayon::current_num_threads(),
        load_average_before,
        load_average_after: load_average(),
        model: model.to_string(),
        unet: ck.name.clone(),
        height: h,
        width: w,
        forward_gflop: flops / 1e9,
        forward_seconds,
        forward_best_seconds,
        forward_cpu_seconds_mean,
        forward_gflop_per_second,
        forward_gflop_per_cpu_second,
        forward_over_matmul: forward_gflop_per_second / conv_best(|m| m.gflop_per_second),
        forward_over_matmul_cpu: forward_gflop_per_cpu_second
            / conv_best(|m| m.gflop_per_cpu_second),
        matmuls,
    })
}

#[cfg(test)]
mod tests {
    use crate::nn::unet::Config;

    /// The FLOP count of photo-unet-m2's config is its card's 200,448 per pixel (13.1 GFLOP
    /// at 256×256).
    #[test]
    fn forward_flops_match_the_card() {
        let cfg: Config = serde_json::from_value(serde_json::json!({
            "arch": "diffc-unet-v1", "in_channels": 3, "patch": 2, "input_fourier": true,
            "fourier_gate_logsnr": 6.0, "grid_skip": true, "channels": [64, 96, 128],
            "num_res_blocks": [1, 2, 2], "groups": 8, "emb_dim": 128, "num_freqs": 16,
            "gn_eps": 1e-5, "prediction": "v", "logsnr_min": -10.0, "logsnr_max": 13.0,
            "cond_channels": 0
        }))
        .unwrap();
        assert_eq!(cfg.forward_flops(256, 256), 200_448 * 256 * 256);
    }
}
