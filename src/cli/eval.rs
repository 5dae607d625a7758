//! `diffc eval`: realism–distortion evaluation of codecs on a folder of images.
//!
//! ```text
//! diffc eval --data DIR --codecs diffc-f,diffc-a,jpeg,webp,avif,jxl --bpp 0.05,0.1,0.2,0.4 \
//!            --out DIR [--shard i/n] [--model NAME] [--limit N] [--patch 128] [--features inception]
//! diffc eval merge --out DIR SHARD_DIR...
//! ```
use crate::eval::{self, EvalConfig, FeatureKind};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Evaluate codecs: rate (real file sizes), PSNR, MS-SSIM, patch FID/KID; plots and report.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum EvalCommand {
    /// Union shard output folders into --out and recompute summary, plots and report.
    Merge(MergeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Merged output folder (may be one of the shards, or already hold merged rows).
    #[arg(long)]
    pub out: PathBuf,
    /// Shard output folders (each written by `diffc eval --shard i/n`).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Folder of .png/.jpg images [default: ~/.cache/diffc/dev24/crop256].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Comma-separated codec specs (`diffc-f[:STEPS][~R][@MODEL]` with R the realism knob,
    /// `diffc-a…`, `hfd`, `hfd-a`, `hfd-mse`, `hfd-mse-dither`) and baselines (`jpeg`, `webp`,
    /// `avif`, `jxl`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "diffc-f,diffc-a,jpeg,webp,avif,jxl"
    )]
    pub codecs: Vec<String>,
    /// Comma-separated target rates in bits per pixel.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2,0.4")]
    pub bpp: Vec<f64>,
    /// Output folder (results.csv, features/, summary.json, *.svg, report.md). Re-running
    /// with the same folder resumes: finished rows are kept.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Evaluate only shard i of n (images whose sorted index ≡ i mod n); merge afterwards.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// Denoiser model for the DiffC codecs (the codec's default if omitted).
    #[arg(long)]
    pub model: Option<String>,
    /// Use only the first N images (sorted by name), before sharding.
    #[arg(long)]
    pub limit: Option<usize>,
    /// FID/KID patch size: non-overlapping P×P patches, each resized to 299×299.
    #[arg(long, default_value_t = 128)]
    pub patch: usize,
    /// Feature network for FID/KID (`tiny` is a weight-free test mode, not a realism metric).
    #[arg(long, value_enum, default_value_t = FeatureKind::Inception)]
    pub features: FeatureKind,
    /// Inception weights (safetensors from eval/inception/convert.py)
    /// [default: $DIFFC_INCEPTION or ~/.cache/diffc/inception.safetensors].
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Keep every decoded picture in OUT/images/CODEC/BPP/NAME.png and write comparison
    /// sheets to OUT/sheets/ [default: on for runs of at most 50 images]. On a finished
    /// run, rows lacking their picture are re-encoded and decoded for it (numbers checked).
    #[arg(long, conflicts_with = "no_images")]
    pub save_images: bool,
    /// Keep no pictures (and write no sheets), whatever the number of images.
    #[arg(long)]
    pub no_images: bool,
    /// Keep only the centred N×N crop of each picture (saves space on large images).
    #[arg(long, value_name = "N")]
    pub image_crop: Option<usize>,
    /// Also score realism against this fixed folder of reference images (unpaired FID/KID;
    /// features computed once, cached in OUT/features/realism-ref/).
    #[arg(long, value_name = "DIR")]
    pub realism_ref: Option<PathBuf>,
    /// Threads for the whole run [default: all cores]. Everything inside (PFR, the networks) runs
    /// in this pool too, so `--jobs 1` means one core, not one image at a time on all cores.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The decoders' pixel limit (as `diffc decode --max-pixels`).
    #[arg(long, value_name = "N", default_value_t = crate::codec::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The dev24 256×256 crops (built by eval/data/fetch_data.py).
pub fn default_data() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/diffc/dev24/crop256")
}

/// Runs `diffc eval` (or `diffc eval merge`).
pub fn run(args: EvalArgs, device: crate::device::DeviceKind) -> Result<()> {
    if let Some(EvalCommand::Merge(m)) = args.command {
        eval::merge(&m.out, &m.shards)?;
        eprintln!(
            "merged {} shard(s) into {}",
            m.shards.len(),
            m.out.display()
        );
        return Ok(());
    }
    let a = args.run;
    let Some(out) = a.out else {
        bail!("diffc eval needs --out DIR")
    };
    let shard = a.shard.as_deref().map(eval::parse_shard).transpose()?;
    let cfg = EvalConfig {
        data: a.data.unwrap_or_else(default_data),
        codecs: a
            .codecs
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        bpp: a.bpp,
        out: out.clone(),
        shard,
        model: a.model,
        limit: a.limit,
        patch: a.patch,
        features: a.features,
        inception_weights: a.inception,
        save_images: if a.save_images {
            Some(true)
        } else if a.no_images {
            Some(false)
        } else {
            None
        },
        image_crop: a.image_crop,
        realism_ref: a.realism_ref,
        jobs: a.jobs,
        max_pixels: a.max_pixels,
        progress: !a.quiet,
        device,
    };
    eval::run(&cfg)?;
    eprintln!(
        "wrote {}/{{results.csv,summary.json,report.md,*.svg,sheets/}}",
        out.display()
    );
    Ok(())
}
