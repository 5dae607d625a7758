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
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&data)
                .with_context(|| format!("reading {}", data.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg" || e == "jpeg"))
                .collect();
            paths.sort();
            if paths.is_empty() {
                bail!("no PNG/JPEG images in {}", data.display());
            }
            let imgs: Vec<_> = paths.iter().filter_map(|p| crate::image_io::load(p).ok()).collect();
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
    }
}
