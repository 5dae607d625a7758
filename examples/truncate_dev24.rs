//! Truncated against directly encoded DiffC files on photos (eval/results/truncate): per image,
//! one encoder trajectory gives the files at 0.05, 0.1 and 0.4 bpp (`encode_targets`, each
//! byte-identical to a lone `diffc encode --bpp B`); the 0.4 bpp file is cut to 0.05 and 0.1 bpp
//! by `truncate` (no model), and both versions are decoded by DiffC-F (24 ODE steps). The
//! direct files are also decoded at realism R ∈ {0, 0.25, 0.5, 0.75, 1}.
//!
//! `cargo run --release --example truncate_dev24 -- DIR N OUT_DIR` (first N images of DIR,
//! default model); writes OUT_DIR/results.csv and the .dfc files.
//!
//! Master mode, `… DIR N OUT_DIR MASTER_STEPS DIRECT_CSV`: the 0.4 bpp file is encoded on a
//! finer trajectory of MASTER_STEPS steps (192 = every eighth of the default 24, the grid on
//! which a default file's last step may stop), cut to 0.05 and 0.1 bpp, decoded, and compared
//! with the default files' rows of DIRECT_CSV (a `diffc eval` results.csv of `diffc-f@MODEL`;
//! deterministic, so they are the files a direct encode writes). Writes OUT_DIR/master.csv.
use diffc::codec::diffc::DiffC;
use diffc::codec::truncate::{Cut, truncate};
use diffc::codec::{Codec, DecodeOptions, realism_blend};
use std::io::Write;
use std::path::Path;

const REALISM: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (dir, n, out) = (Path::new(&a[1]), a[2].parse::<usize>()?, Path::new(&a[3]));
    if a.len() > 5 {
        return master(dir, n, out, a[4].parse()?, Path::new(&a[5]));
    }
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

/// Master mode (see the module doc).
fn master(dir: &Path, n: usize, out: &Path, steps: usize, direct_csv: &Path) -> anyhow::Result<()> {
    use std::time::Instant;
    std::fs::create_dir_all(out.join("files"))?;
    let model = diffc::denoiser::load(diffc::denoiser::DEFAULT_MODEL, &candle_core::Device::Cpu)?;
    let mut codec = DiffC::new(model);
    codec.params.steps = steps;
    let spec = format!("diffc-f@{}", diffc::denoiser::DEFAULT_MODEL);
    let direct: Vec<diffc::eval::Row> = diffc::eval::read_rows(direct_csv)?
        .into_iter()
        .filter(|r| r.codec == spec)
        .collect();
    let done: Vec<String> = std::fs::read_to_string(out.join("master.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect();
    let new = done.is_empty();
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("master.csv"))?;
    if new {
        writeln!(
            csv,
            "image,target_bpp,direct_bytes,psnr_direct,trunc_bytes,trunc_stop_steps,psnr_trunc,master_steps,master_bytes,master_enc_s,trunc_dec_s"
        )?;
    }
    let stop_of = |b: &[u8]| -> anyhow::Result<f64> {
        let f = diffc::container::File::from_bytes(b)?;
        let h =
            diffc::codec::diffc::DiffcHeader::read(&mut diffc::container::Cursor::new(&f.body))?;
        Ok(h.stop_steps())
    };
    for path in diffc::eval::list_images(dir)?.iter().take(n) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if done.contains(&name) {
            continue;
        }
        let stem = name.trim_end_matches(".png");
        let img = diffc::image_io::load(path)?;
        let t0 = Instant::now();
        let big = codec.encode(&img, diffc::codec::RateTarget::Bpp(0.4))?;
        let enc_s = t0.elapsed().as_secs_f64();
        std::fs::write(
            out.join(format!("files/{stem}-0.4-master{steps}.dfc")),
            &big,
        )?;
        let mut lines = String::new();
        for t in [0.05, 0.1] {
            let d = direct
                .iter()
                .find(|r| r.image == name && r.target_bpp == t)
                .ok_or_else(|| anyhow::anyhow!("{name} @ {t}: no direct row"))?;
            let cut = truncate(&big, Cut::Bpp(t))?;
            std::fs::write(out.join(format!("files/{stem}-{t}-trunc{steps}.dfc")), &cut)?;
            let t1 = Instant::now();
            let mut dec = codec.decode(&cut, &DecodeOptions::default())?;
            let dec_s = t1.elapsed().as_secs_f64();
            dec.quantize_u8();
            let psnr = diffc::metrics::psnr(&img, &dec)?;
            lines += &format!(
                "{name},{t},{},{:.4},{},{},{psnr:.4},{steps},{},{enc_s:.1},{dec_s:.1}\n",
                d.bytes,
                d.psnr,
                cut.len(),
                stop_of(&cut)?,
                big.len()
            );
            eprintln!(
                "{name} {t}: direct {} B {:.2} dB, truncated {} B {psnr:.2} dB",
                d.bytes,
                d.psnr,
                cut.len()
            );
        }
        csv.write_all(lines.as_bytes())?;
        csv.flush()?;
    }
    Ok(())
}
