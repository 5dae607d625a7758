//! `diffc experiment`.
use crate::experiment::{gaussian, spectrum_fit};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Rate and distortion of DiffC-A/F on Gaussian data against closed-form theory.
    Gaussian {
        #[arg(long)]
        out: PathBuf,
        /// A small, fast configuration (CI).
        #[arg(long)]
        quick: bool,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Fit the gauss-spectrum model to a folder of photos; writes its model card.
    FitSpectrum {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 256)]
        tile: usize,
        #[arg(long, default_value_t = 2)]
        down: usize,
    },
    /// Fit a blend model x̂ = x̂_base + w(λ)(x̂_prior − x̂_base) on photos; writes its card.
    FitBlend {
        /// Name of the blend (the card is OUT; put it in checkpoints/ as NAME.json).
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "photo-unet-s")]
        base: String,
        #[arg(long, default_value = "gauss-spectrum")]
        prior: String,
        /// Training photos (never the evaluation images).
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 256)]
        tile: usize,
        #[arg(long, default_value_t = 3)]
        down: usize,
        /// Use at most this many photos (sorted by name).
        #[arg(long, default_value_t = 24)]
        limit: usize,
        #[arg(short, long)]
        quiet: bool,
    },
}

/// The PNG/JPEG photos of `dir` (sorted by name, at most `limit`; unreadable ones skipped).
fn load_photos(dir: &std::path::Path, limit: usize) -> Result<Vec<crate::image_io::Image>> {
    let paths = crate::eval::list_images(dir)?;
    if paths.is_empty() {
        bail!("no PNG/JPEG images in {}", dir.display());
    }
    Ok(paths.iter().take(limit).filter_map(|p| crate::image_io::load(p).ok()).collect())
}

pub fn run(c: Cmd) -> Result<()> {
    match c {
        Cmd::Gaussian { out, quick, quiet } => {
            let cfg = if quick { gaussian::Config::quick() } else { gaussian::Config::full() };
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let r = gaussian::run(&cfg, !quiet)?;
            crate::image_io::write_atomic(&out.join("gaussian.json"), serde_json::to_string_pretty(&r)?.as_bytes())?;
            gaussian::plot(&r, &out.join("gaussian.svg"))?;
            eprintln!("wrote {} and gaussian.svg ({:.0} s)", out.join("gaussian.json").display(), r.seconds);
            Ok(())
        }
        Cmd::FitSpectrum { data, out, tile, down } => {
            let imgs = load_photos(&data, usize::MAX)?;
            let p = spectrum_fit::fit(&imgs, tile, down)?;
            let card = serde_json::json!({
                "model": "gauss-spectrum",
                "kind": "exact Gaussian (Wiener) prior: orthonormal opponent colour transform + 2-D orthonormal DCT, power spectrum A/(f^2+f0^2)^(gamma/2) + floor",
                "fitted_on": format!("{} images from {} (centre {tile}x{tile} crops after {down}x box downsampling)", imgs.len(), data.display()),
                "command": format!("diffc experiment fit-spectrum --data {} --out {} --tile {tile} --down {down}", data.display(), out.display()),
                "params": p,
            });
            crate::image_io::write_atomic(&out, serde_json::to_string_pretty(&card)?.as_bytes())?;
            eprintln!("fitted on {} images → {}", imgs.len(), out.display());
            Ok(())
        }
        Cmd::FitBlend { name, base, prior, data, out, tile, down, limit, quiet } => {
            use crate::denoiser::blend;
            use crate::image_io::{Image, Shape};
            let photos = load_photos(&data, limit)?;
            let tiles: Vec<Image> = photos
                .iter()
                .filter_map(|p| spectrum_fit::centre_tile(p, tile, down))
                .map(|t| Image { shape: Shape::new(3, tile, tile), data: t.into_iter().map(|v| v as f32).collect() })
                .collect();
            if tiles.is_empty() {
                bail!("no photo in {} is large enough for a {tile}×{tile} tile after {down}× downsampling", data.display());
            }
            let dev = candle_core::Device::Cpu;
            let (b, p) = (crate::denoiser::load(&base, &dev)?, crate::denoiser::load(&prior, &dev)?);
            let knots: Vec<f64> = (-10..=14).map(|l| l as f64).collect();
            let (weight, mse) = blend::fit(&*b, &*p, &tiles, &knots, !quiet)?;
            let params = blend::BlendParams { base: base.clone(), prior: prior.clone(), logsnr: knots.clone(), weight };
            params.check()?;
            let card = serde_json::json!({
                "name": name,
                "kind": "blend",
                "description": format!("x̂ = x̂_{base} + w(λ)·(x̂_{prior} − x̂_{base}), w fitted per log-SNR by least squares"),
                "fitted_on": format!("{} tiles: the centre {tile}x{tile} crop of the first {} photos of {} after {down}x box downsampling", tiles.len(), photos.len(), data.display()),
                "command": format!("diffc experiment fit-blend --name {name} --base {base} --prior {prior} --data {} --out {} --tile {tile} --down {down} --limit {limit}", data.display(), out.display()),
                "fit_mse_per_knot": knots.iter().zip(&mse).map(|(l, m)| serde_json::json!({"logsnr": l, "base": m[0], "prior": m[1], "blend": m[2]})).collect::<Vec<_>>(),
                "params": params,
            });
            crate::image_io::write_atomic(&out, serde_json::to_string_pretty(&card)?.as_bytes())?;
            eprintln!("fitted on {} tiles → {}", tiles.len(), out.display());
            Ok(())
        }
    }
}
