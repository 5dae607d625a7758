//! Seconds of one Stable Diffusion UNet forward (empty prompt) at given latent sizes, on the CPU:
//! `cargo run --release --example sd_speed -- DIR [SIDE...]` (default sides 32 64, i.e. 256²
//! and 512² images). With random weights the output is noise; the cost is the real one.
use candle_core::{DType, Device, Tensor};
use diffc::nn::sd::SdFolder;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: sd_speed DIR [SIDE...]");
    let sides: Vec<usize> = args.map(|s| s.parse().expect("a latent side")).collect();
    let sides = if sides.is_empty() {
        vec![32, 64]
    } else {
        sides
    };
    let t0 = std::time::Instant::now();
    let folder = SdFolder::open(&dir)?;
    let sd = folder.load(&Device::Cpu, DType::F32)?;
    println!(
        "load: {:.1} s ({:?}, {:?}, fingerprint {:016x})",
        t0.elapsed().as_secs_f64(),
        sd.family,
        sd.prediction_type,
        sd.fingerprint
    );
    // the strict loader fails on a missing, misshaped or unused tensor: these all were used
    for (component, tensors, params) in folder.tensor_counts() {
        println!("{component}: {tensors} tensors, {params} parameters, every one used");
    }
    let ctx = sd.encode_empty_prompt()?;
    for s in sides {
        let z = Tensor::zeros((1, 4, s, s), DType::F32, &Device::Cpu)?;
        let t0 = std::time::Instant::now();
        let out = sd.unet.forward(&z, 500.0, &ctx)?;
        let _ = out.sum_all()?.to_scalar::<f32>()?;
        println!(
            "UNet forward at a {s}×{s} latent ({}×{} image): {:.1} s",
            s * 8,
            s * 8,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
