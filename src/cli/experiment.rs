//! `diffc experiment`.
use crate::experiment::{gaussian, spectrum_fit};
use anyhow::{Context, Result, bail, ensure};
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
        /// Override the number of files (samples of the batch each).
        #[arg(long)]
        files: Option<usize>,
        /// Override the PFR chunk size (bits) and padding bits.
        #[arg(long)]
        chunk_kl: Option<f64>,
        #[arg(long)]
        padding: Option<u32>,
        /// Files on which PFR truncation is diagnosed (default 1; each costs 8× the candidates).
        #[arg(long)]
        diagnose_files: Option<usize>,
        /// Override the number of encoder steps over [−8, 12] (the stopping points must stay on
        /// the grid: a multiple of 10).
        #[arg(long)]
        steps: Option<usize>,
        /// Proposal: the exact reverse step (`exact`, default) or DDPM's equal-variance one
        /// (`ddpm`, whose discretisation gap needs many steps).
        #[arg(long, value_parser = ["exact", "ddpm"])]
        proposal: Option<String>,
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
    /// The variational bound (bits/dim) of 8-bit images under each model, the trainer's estimator.
    Vlb {
        /// Comma-separated model names.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "gauss-spectrum,photo-unet-s,photo-unet-s-wiener,photo-unet-s-wiener-bands"
        )]
        models: Vec<String>,
        /// Images [default: ~/.cache/diffc/dev24/crop256].
        #[arg(long)]
        data: Option<PathBuf>,
        /// λ samples per image (stratified).
        #[arg(long, default_value_t = 8)]
        k: usize,
        #[arg(long, default_value_t = -10.0, allow_hyphen_values = true)]
        lmin: f64,
        #[arg(long, default_value_t = 13.0)]
        lmax: f64,
        /// Also write the figures here (JSON).
        #[arg(long)]
        out: Option<PathBuf>,
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
        /// Upper edges (cycles/pixel) of radial frequency bands with their own weights, e.g.
        /// 0.0078125,0.015625,0.03125,0.0625,0.125,0.25 (none: one weight per log-SNR).
        #[arg(long, value_delimiter = ',')]
        bands: Vec<f64>,
        /// Round the tiles to the 8-bit grid, as real photos are.
        #[arg(long)]
        quantize: bool,
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
    Ok(paths
        .iter()
        .take(limit)
        .filter_map(|p| crate::image_io::load(p).ok())
        .collect())
}

pub fn run(c: Cmd, device: crate::device::DeviceKind) -> Result<()> {
    // every experiment runs models (the Gaussian ones on the CPU in f64, the networks on
    // `device`): an unavailable device is an error before any work
    let dev = device.open()?;
    match c {
        Cmd::Gaussian {
            out,
            quick,
            files,
            chunk_kl,
            padding,
            steps,
            proposal,
            diagnose_files,
            quiet,
        } => {
            let mut cfg = if quick {
                gaussian::Config::quick()
            } else {
                gaussian::Config::full()
            };
            if let Some(f) = files {
                ensure!(f > 0, "--files must be positive");
                cfg.files = f;
                cfg.diagnose_files = cfg.diagnose_files.min(f);
            }
            if let Some(c) = chunk_kl {
                ensure!(c > 0.0 && c <= 20.0, "--chunk-kl must be in (0, 20]");
                cfg.chunk_kl = c;
            }
            if let Some(p) = padding {
                ensure!(p <= 8, "--padding must be ≤ 8");
                cfg.padding = p;
            }
            if let Some(n) = diagnose_files {
                cfg.diagnose_files = n;
            }
            cfg.diagnose_files = cfg.diagnose_files.min(cfg.files);
            if let Some(n) = steps {
                ensure!((1..=4096).contains(&n), "--steps must be in 1..=4096");
                cfg.steps = n;
                cfg.stops()?;
            }
            if let Some(p) = proposal {
                cfg.exact_proposal = p == "exact";
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let r = gaussian::run(&cfg, !quiet)?;
            crate::image_io::write_atomic(
                &out.join("gaussian.json"),
                serde_json::to_string_pretty(&r)?.as_bytes(),
            )?;
            gaussian::plot(&r, &out.join("gaussian.svg"))?;
            eprintln!(
                "wrote {} and gaussian.svg ({:.0} s)",
                out.join("gaussian.json").display(),
                r.seconds
            );
            Ok(())
        }
        Cmd::FitSpectrum {
            data,
            out,
            tile,
            down,
        } => {
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
        Cmd::Vlb {
            models,
            data,
            k,
            lmin,
            lmax,
            out,
        } => {
            let dir = data.unwrap_or_else(crate::cli::eval::default_data);
            let imgs = load_photos(&dir, usize::MAX)?;
            let mut rows = serde_json::Map::new();
            for m in &models {
                let model = crate::denoiser::load(m, &dev)?;
                let t = std::time::Instant::now();
                let v = crate::experiment::vlb::vlb(&*model, &imgs, lmin, lmax, k, 0)?;
                println!(
                    "{m}: {:.4} bits/dim (diffusion {:.4}, prior {:.4}, recon {:.4}; {} images, K = {k}, {:.0} s)",
                    v.bpd,
                    v.diffusion_bpd,
                    v.prior_bpd,
                    v.recon_bpd,
                    v.images,
                    t.elapsed().as_secs_f64()
                );
                rows.insert(m.clone(), serde_json::to_value(&v)?);
            }
            if let Some(out) = out {
                let doc = serde_json::json!({
                    "data": dir.display().to_string(), "lmin": lmin, "lmax": lmax, "k": k, "models": rows,
                    "png_bpd_note": "compare with the PNG bits/dim of the same images in the model cards",
                });
                crate::image_io::write_atomic(
                    &out,
                    serde_json::to_string_pretty(&doc)?.as_bytes(),
                )?;
            }
            Ok(())
        }
        Cmd::FitBlend {
            name,
            base,
            prior,
            data,
            out,
            tile,
            down,
            limit,
            bands,
            quantize,
            quiet,
        } => {
            use crate::denoiser::blend;
            use crate::image_io::{Image, Shape};
            let photos = load_photos(&data, limit)?;
            let tiles: Vec<Image> = photos
                .iter()
                .filter_map(|p| spectrum_fit::centre_tile(p, tile, down))
                .map(|t| {
                    let mut im = Image {
                        shape: Shape::new(3, tile, tile),
                        data: t.into_iter().map(|v| v as f32).collect(),
                    };
                    if quantize {
                        im.quantize_u8();
                    }
                    im
                })
                .collect();
            if tiles.is_empty() {
                bail!(
                    "no photo in {} is large enough for a {tile}×{tile} tile after {down}× downsampling",
                    data.display()
                );
            }
            let (b, p) = (
                crate::denoiser::load(&base, &dev)?,
                crate::denoiser::load(&prior, &dev)?,
            );
            let knots: Vec<f64> = (-10..=14).map(|l| l as f64).collect();
            let (weight, mse) = blend::fit(&*b, &*p, &tiles, &knots, &bands, !quiet)?;
            let params = blend::BlendParams {
                base: base.clone(),
                prior: prior.clone(),
                logsnr: knots.clone(),
                bands: bands.clone(),
                weight,
            };
            params.check()?;
            let card = serde_json::json!({
                "name": name,
                "kind": "blend",
                "description": if bands.is_empty() {
                    format!("x̂ = x̂_{base} + w(λ)·(x̂_{prior} − x̂_{base}), w fitted per log-SNR by least squares")
                } else {
                    format!("x̂ = x̂_{base} + W_λ(x̂_{prior} − x̂_{base}), W_λ a weight per radial DCT frequency band, fitted per log-SNR and band by least squares")
                },
                "fitted_on": format!("{} tiles: the centre {tile}x{tile} crop of the first {} photos of {} after {down}x box downsampling{}", tiles.len(), photos.len(), data.display(), if quantize { ", rounded to 8 bits" } else { "" }),
                "command": format!(
                    "diffc experiment fit-blend --name {name} --base {base} --prior {prior} --data {} --out {} --tile {tile} --down {down} --limit {limit}{}{}",
                    data.display(),
                    out.display(),
                    if bands.is_empty() { String::new() } else { format!(" --bands {}", bands.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")) },
                    if quantize { " --quantize" } else { "" }
                ),
                "fit_mse_per_knot": knots.iter().zip(&mse).map(|(l, m)| serde_json::json!({"logsnr": l, "base": m[0], "prior": m[1], "blend": m[2]})).collect::<Vec<_>>(),
                "params": params,
            });
            crate::image_io::write_atomic(&out, serde_json::to_string_pretty(&card)?.as_bytes())?;
            eprintln!("fitted on {} tiles → {}", tiles.len(), out.display());
            Ok(())
        }
    }
}
