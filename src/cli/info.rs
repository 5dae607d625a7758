//! `diffc info`.
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
}

pub fn run(a: Args, device: DeviceKind) -> Result<()> {
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
    if f.codec == CodecId::DiffC {
        let mut c = Cursor::new(&f.body);
        let head = c.varint()?;
        let fr = crate::codec::diffc::FRACTIONS as u64;
        let stop = (head / 3 / fr) as usize;
        let frac = head / 3 % fr;
        v["channel"] =
            serde_json::to_value(crate::channel::ChannelKind::from_u8((head % 3) as u8)?)?;
        v["stop_step"] = (stop as f64 + frac as f64 / fr as f64).into();
        v["payload_bytes"] = c.rest().len().into();
    }
    if matches!(f.codec, CodecId::Hfd | CodecId::HfdMse) {
        let mut c = Cursor::new(&f.body);
        let code = c.varint()?;
        v["rate_code"] = code.into();
        v["rate"] = (crate::codec::hfd_mse::rate_of_code(code) as f64).into();
        v["quant"] = match c.u8()? {
            0 => "round",
            1 => "dither",
            _ => "unknown",
        }
        .into();
        if f.codec == CodecId::Hfd {
            v["refiner_fingerprint"] =
                format!("{:04x}", u16::from_le_bytes([c.u8()?, c.u8()?])).into();
        }
        v["payload_bytes"] = c.rest().len().into();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let serde_json::Value::Object(m) = v {
        for (k, x) in m {
            println!("{k:>20}: {x}");
        }
    }
    Ok(())
}
