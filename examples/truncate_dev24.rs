//! Truncated against directly encoded DiffC files on photos (eval/results/truncate): per image,
//! one encoder trajectory gives the files at 0.05, 0.1 and 0.4 bpp (`encode_targets`, each
//! byte-identical to a lone `diffc encode --bpp B`); the 0.4 bpp file is cut to 0.05 and 0.1 bpp
//! by `truncate` (no model), and both versions are decoded by DiffC-F (24 ODE steps). The
//! direct files are also decoded at realism R ∈ {0, 0.25, 0.5, 0.75, 1}.
//!
//! `cargo run --release --example truncate_dev24 -- DIR N OUT_DIR` (first N images of DIR,
//! default model); writes OUT_DIR/results.csv and the .dfc files.
use diffc::codec::diffc::DiffC;
use diffc::codec::truncate::{Cut, truncate};
use diffc::codec::{Codec, DecodeOptions, realism_blend};
use std::io::Write;
use std::path::Path;

const REALISM: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (dir, n, out) = (Path::new(&a[1]), a[2].parse::<usize>()?, Path::new(&a[3]));
    std::fs::create_dir_all(out.join("files"))?;
    let model = diffc::denoiser::load(diffc::denoiser::DEFAULT_MODEL, &candle_core::Device::Cpu)?;
    let codec = DiffC::new(model);
    let images = diffc::eval::list_images(dir)?;
    let mut csv = std::fs::File::create(out.join("results.csv"))?;
    write!(
        csv,
        "image,target_bpp,direct_bytes,direct_stop,trunc_bytes,trunc_stop,identical,psnr_direct,psnr_trunc,enc_s_0.4"
    )?;
    for r in REALISM {
        write!(csv, ",psnr_r{r}")?;
    }
    writeln!(csv)?;
    let stop_of = |b: &[u8]| -> anyhow::Result<f64> {
        let f = diffc::container::File::from_bytes(b)?;
        let h =
            diffc::codec::diffc::DiffcHeader::read(&mut diffc::container::Cursor::new(&f.body))?;
        Ok(h.stop_steps())
    };
    let opts = |realism| DecodeOptions {
        realism,
        ..DecodeOptions::default()
    };
    for path in images.iter().take(n) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let stem = name.trim_end_matches(".png");
        let img = diffc::image_io::load(path)?;
        let files = codec.encode_targets(&img, &[0.05, 0.1, 0.4])?;
        let big = &files[2].0;
        std::fs::write(out.join(format!("files/{stem}-0.4.dfc")), big)?;
        for (ti, t) in [0.05, 0.1].into_iter().enumerate() {
            let direct = &files[ti].0;
            let cut = truncate(big, Cut::Bpp(t))?;
            std::fs::write(out.join(format!("files/{stem}-{t}-direct.dfc")), direct)?;
            std::fs::write(out.join(format!("files/{stem}-{t}-trunc.dfc")), &cut)?;
            let lat = codec.decode_latent(direct)?;
            let x1 = codec.reconstruct(&lat.z, lat.logsnr, lat.latent, &opts(None), lat.seed)?;
            let xhat =
                codec.reconstruct(&lat.z, lat.logsnr, lat.latent, &opts(Some(0.0)), lat.seed)?;
            let psnr_of = |x: Vec<f32>| -> anyhow::Result<f64> {
                let im = codec.space.to_image(x, lat.latent, lat.image)?;
                diffc::metrics::psnr(&im, &img)
            };
            let psnr_direct = psnr_of(x1.clone())?;
            let psnr_trunc = if &cut == direct {
                psnr_direct
            } else {
                diffc::metrics::psnr(&codec.decode(&cut, &opts(None))?, &img)?
            };
            write!(
                csv,
                "{name},{t},{},{},{},{},{},{psnr_direct:.4},{psnr_trunc:.4},{:.1}",
                direct.len(),
                stop_of(direct)?,
                cut.len(),
                stop_of(&cut)?,
                &cut == direct,
                files[2].1
            )?;
            for r in REALISM {
                write!(csv, ",{:.4}", psnr_of(realism_blend(&xhat, &x1, r))?)?;
            }
            writeln!(csv)?;
            csv.flush()?;
            eprintln!(
                "{name} {t}: direct {} B, truncated {} B",
                direct.len(),
                cut.len()
            );
        }
    }
    Ok(())
}
