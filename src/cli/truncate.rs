//! `diffc truncate`.
use crate::codec::RateTarget;
use crate::codec::truncate::{Cut, check_cut, truncate_within};
use crate::image_io::write_atomic;
use anyhow::{Result, bail};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Input DiffC .dfc file (`-` reads stdin).
    pub input: PathBuf,
    /// Output .dfc file (`-` writes stdout).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Largest whole-step prefix whose file is at most B bits per pixel (a file that already
    /// fits is copied unchanged).
    #[arg(long, allow_negative_numbers = true)]
    pub bpp: Option<f64>,
    /// Keep exactly N whole steps (`step:N`; see `diffc info` for the sizes).
    #[arg(long, conflicts_with = "bpp")]
    pub stop: Option<String>,
    /// Refuse files that declare more pixels than this (as `diffc decode --max-pixels`).
    #[arg(long, value_name = "N", default_value_t = crate::codec::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: Args) -> Result<()> {
    let cut = match (a.bpp, &a.stop) {
        (Some(b), _) => Cut::Bpp(b),
        (None, Some(s)) => match super::encode::parse_stop(s)? {
            RateTarget::Step(n) => Cut::Step(n),
            _ => bail!("truncate cuts at whole steps: --stop step:N, got '{s}'"),
        },
        (None, None) => bail!("give a cut: --bpp B or --stop step:N"),
    };
    check_cut(cut)?;
    let bytes = super::read_input(&a.input)?;
    let out = truncate_within(&bytes, cut, a.max_pixels)?;
    write_atomic(&a.output, &out)?;
    if !a.quiet {
        let f = crate::container::File::from_bytes(&out)?;
        let h =
            crate::codec::diffc::DiffcHeader::read(&mut crate::container::Cursor::new(&f.body))?;
        eprintln!(
            "{} → {} bytes = {:.4} bpp, {} steps",
            bytes.len(),
            out.len(),
            out.len() as f64 * 8.0 / (f.width as f64 * f.height as f64),
            h.stop_steps()
        );
    }
    Ok(())
}
