//! `diffc info`.
use crate::codec::diffc::{DiffcHeader, DiffcParams};
use crate::codec::hfd_mse::{HfdHeader, rate_of_code};
use crate::codec::space::SpaceTag;
use crate::container::{CodecId, Cursor, File};
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
    let f = File::from_bytes(&bytes)?;
    let dev = device.open()?;
    let model =
        crate::denoiser::find_by_fingerprint(f.model_fp, &dev).map(|m| m.name().to_string());
    let mut v = serde_json::json!({
        "codec": f.codec.name(),
        "format_version": crate::container::VERSION,
        "model_fingerprint": format!("{:04x}", f.model_fp),
        "model": model,
        "width": f.width,
        "height": f.height,
        "channels": f.channels,
        "seed": f.seed,
        "custom_params": f.params.is_some(),
        "bytes": bytes.len(),
        "bpp": bytes.len() as f64 * 8.0 / (f.width as f64 * f.height as f64),
    });
    let mut c = Cursor::new(&f.body);
    match f.codec {
        CodecId::DiffC => {
            let h = DiffcHeader::read(&mut c)?;
            v["channel"] = serde_json::to_value(h.channel)?;
            v["stop_step"] = h.stop_steps().into();
            let (params, space) = match &f.params {
                Some(b) => {
                    let (p, t) = DiffcParams::read_block(b, h.channel)?;
                    (Some(p), t)
                }
                None => (None, SpaceTag::Pixels),
            };
            if space != SpaceTag::Pixels {
                v["model"] = "a Stable Diffusion folder: decode with --model sd:DIR".into();
            }
            v["space"] = space.to_string().into();
            // where the file can be cut (`diffc truncate`): [step, bytes, bpp] per whole step
            match crate::codec::truncate::cut_points_within(&bytes, a.max_pixels) {
                Ok(cuts) => {
                    v["cuts"] = cuts
                        .iter()
                        .map(|c| serde_json::json!([c.step, c.bytes, c.bpp]))
                        .collect::<Vec<_>>()
                        .into()
                }
                Err(crate::error::Error::Format(
                    e @ crate::error::FormatError::OverLimit { .. },
                )) => {
                    v["cuts"] = serde_json::Value::Null;
                    v["cuts_skipped"] = e.to_string().into();
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(p) = params {
                v["steps"] = p.steps.into();
                v["schedule"] = format!("{:?}", p.schedule).into();
                v["chunk_kl"] = p.pfr.chunk_kl.into();
                v["padding"] = p.pfr.padding.into();
            }
        }
        CodecId::Hfd | CodecId::HfdMse => {
            let h = HfdHeader::read(&mut c, f.codec)?;
            v["rate_code"] = h.rate_code.into();
            v["rate"] = (rate_of_code(h.rate_code) as f64).into();
            v["quant"] = serde_json::to_value(h.quant)?;
            if let Some(fp) = h.refiner_fp {
                v["refiner_fingerprint"] = format!("{fp:04x}").into();
            }
        }
    }
    v["payload_bytes"] = c.rest().len().into();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let serde_json::Value::Object(m) = v {
        for (k, x) in m {
            println!("{k:>20}: {x}");
        }
    }
    Ok(())
}
