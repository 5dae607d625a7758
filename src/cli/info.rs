//! `diffc info`.
use crate::device::DeviceKind;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A .dfc file (`-` reads stdin).
    pub input: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// List the models this build knows instead.
    #[arg(long)]
    pub models: bool,
    /// List the codec spec names instead.
    #[arg(long)]
    pub codecs: bool,
    /// DiffC: list the cut points only of files of at most this many pixels (as `diffc decode
    /// --max-pixels`); the header of a larger file is still shown.
    #[arg(long, value_name = "N", default_value_t = crate::codec::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

pub fn run(a: Args, device: DeviceKind) -> Result<()> {
    if a.codecs {
        for c in crate::codec::registry::BASES {
            println!("{c}");
        }
        return Ok(());
    }
    if a.models {
        for m in crate::denoiser::known_models() {
            println!("{m}");
        }
        return Ok(());
    }
    let Some(input) = a.input else {
        anyhow::bail!("give a .dfc file (or --models)")
    };
    let bytes = super::read_input(&input)?;
    let mut v = crate::codec::info::describe(&bytes, a.max_pixels)?;
    if v["model"].is_null() {
        // a pixel-space file: the known model with the file's fingerprint, if any
        let fp = crate::container::File::from_bytes(&bytes)?.model_fp;
        let dev = device.open()?;
        v["model"] = crate::denoiser::find_by_fingerprint(fp, &dev)
            .map(|m| m.name().to_string())
            .into();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", crate::codec::info::to_text(&v));
    }
    Ok(())
}
