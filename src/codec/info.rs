//! What `diffc info` shows of a `.dfc` file: its container header, its codec's body header and
//! (DiffC) where it can be cut, read without any model. The CLI and the fuzzer share this code.
use crate::codec::diffc::{DiffcHeader, DiffcParams};
use crate::codec::hfd_mse::{HfdHeader, rate_of_code};
use crate::codec::space::SpaceTag;
use crate::container::{CodecId, Cursor, File};
use crate::error::{Error, FormatError, Result};

/// Describes a `.dfc` file as JSON (keys sorted). DiffC cut points are listed only for files
/// of at most `max_pixels` pixels (as `diffc decode --max-pixels`); a larger file's header is
/// still described. `model` is null unless the file is a latent one (the model is found by
/// fingerprint, which needs the models: the CLI fills it in).
pub fn describe(bytes: &[u8], max_pixels: u64) -> Result<serde_json::Value> {
    let f = File::from_bytes(bytes)?;
    let pixels = f.width as f64 * f.height as f64;
    let mut v = serde_json::json!({
        "codec": f.codec.name(),
        "format_version": crate::container::VERSION,
        "model_fingerprint": format!("{:04x}", f.model_fp),
        "model": serde_json::Value::Null,
        "width": f.width,
        "height": f.height,
        "channels": f.channels,
        "seed": f.seed,
        "custom_params": f.params.is_some(),
        "bytes": bytes.len(),
        "bpp": bytes.len() as f64 * 8.0 / pixels,
    });
    let json = |e: serde_json::Error| Error::Unsupported(format!("json: {e}"));
    let mut c = Cursor::new(&f.body);
    match f.codec {
        CodecId::DiffC => {
            let h = DiffcHeader::read(&mut c)?;
            v["channel"] = serde_json::to_value(h.channel).map_err(json)?;
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
            match crate::codec::truncate::cut_points_within(bytes, max_pixels) {
                Ok(cuts) => {
                    v["cuts"] = cuts
                        .iter()
                        .map(|c| serde_json::json!([c.step, c.bytes, c.bpp]))
                        .collect::<Vec<_>>()
                        .into()
                }
                Err(Error::Format(e @ FormatError::OverLimit { .. })) => {
                    v["cuts"] = serde_json::Value::Null;
                    v["cuts_skipped"] = e.to_string().into();
                }
                Err(e) => return Err(e),
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
            v["quant"] = serde_json::to_value(h.quant).map_err(json)?;
            v["levels_checked"] = h.levels_checked.into();
            if let Some(fp) = h.refiner_fp {
                v["refiner_fingerprint"] = format!("{fp:04x}").into();
            }
        }
    }
    v["payload_bytes"] = c.rest().len().into();
    Ok(v)
}

/// The text `diffc info` prints for a description: one `key: value` line per field.
pub fn to_text(v: &serde_json::Value) -> String {
    let mut s = String::new();
    if let serde_json::Value::Object(m) = v {
        for (k, x) in m {
            s.push_str(&format!("{k:>20}: {x}\n"));
        }
    }
    s
}
