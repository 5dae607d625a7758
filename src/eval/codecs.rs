//! Codecs by name: what `--codecs` accepts.
//!
//! - `jpeg`, `webp`, `avif`, `jxl`: classic baselines ([`super::baselines`]).
//! - `diffc-f`: DiffC with the probability-flow ODE decoder; `diffc-a`: DiffC with ancestral
//!   (SDE) sampling. `--model` picks the denoiser (the codec's default otherwise); a name like
//!   `diffc-f@photo-unet-s` names it per codec, so one run compares models; `diffc-f:48` sets
//!   the decoder's steps (default: 24 for the ODE, 64 for the SDE).
//! - `hfd-mse`: HFD's MSE transform codec (rounding), `hfd-mse-dither`: the same with the
//!   shared-seed dither (universal quantisation); `hfd`: HFD (its refiner decodes with the flow ODE),
//!   `hfd-a`: HFD decoded with the SDE. Default checkpoints (`hfd-mse`, `hfd-refiner`).
use super::baselines::Baseline;
use crate::codec::{Codec, DecodeOptions, DecoderKind, MAX_DECODE_STEPS};
use anyhow::{Result, bail};

pub const KNOWN: &[&str] = &[
    "diffc-f",
    "diffc-a",
    "hfd-mse",
    "hfd-mse-dither",
    "hfd",
    "hfd-a",
    "jpeg",
    "webp",
    "avif",
    "jxl",
];

/// A codec ready for the harness.
pub struct Made {
    pub codec: Box<dyn Codec>,
    pub opts: DecodeOptions,
    /// Codecs with the same key produce the same bitstream (DiffC-F and DiffC-A share the
    /// encoder and differ only in decoding), so the harness encodes once per image × target.
    pub encoder_key: String,
}

/// Builds the codec called `name` and the decode options the harness uses with it.
pub fn make(name: &str, model: Option<&str>) -> Result<Made> {
    if let Some(b) = Baseline::from_name(name) {
        return Ok(Made {
            codec: Box::new(b),
            opts: DecodeOptions::default(),
            encoder_key: name.to_string(),
        });
    }
    let cpu = candle_core::Device::Cpu;
    match name {
        "hfd-mse" | "hfd-mse-dither" => {
            let mut c = crate::codec::hfd_mse::HfdMse::load(
                crate::codec::hfd_mse::DEFAULT_MSE_MODEL,
                &cpu,
            )?;
            c.floor_at_lowest = true;
            if name == "hfd-mse-dither" {
                c.quant = crate::codec::hfd_mse::Quant::Dither;
            }
            let key = format!("{name}:{:08x}", c.fingerprint());
            return Ok(Made {
                codec: Box::new(c),
                opts: DecodeOptions::default(),
                encoder_key: key,
            });
        }
        "hfd" | "hfd-a" => {
            let mut c = crate::codec::hfd::Hfd::load(None, None, &cpu)?;
            c.mse.floor_at_lowest = true;
            let decoder = if name == "hfd" {
                DecoderKind::Ode
            } else {
                DecoderKind::Sde
            };
            let key = format!("hfd:{:08x}", c.mse.fingerprint());
            return Ok(Made {
                codec: Box::new(c),
                opts: DecodeOptions {
                    decoder,
                    steps: None,
                    progress: false,
                },
                encoder_key: key,
            });
        }
        _ => {}
    }
    let (base, model) = match name.split_once('@') {
        Some((b, m)) => (b, Some(m)),
        None => (name, model),
    };
    let (base, steps) = match base.split_once(':') {
        Some((b, n)) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_DECODE_STEPS).contains(&n) => (b, Some(n)),
            _ => bail!("codec `{name}`: decoder steps after ':' must be in 1..={MAX_DECODE_STEPS}"),
        },
        None => (base, None),
    };
    let decoder = match base {
        "diffc-f" => DecoderKind::Ode,
        "diffc-a" => DecoderKind::Sde,
        _ => bail!(
            "unknown codec `{name}` (known: {}; diffc-f and diffc-a take :STEPS and @MODEL)",
            KNOWN.join(", ")
        ),
    };
    let model = model.unwrap_or(crate::denoiser::DEFAULT_MODEL);
    Ok(Made {
        codec: make_diffc(model)?,
        opts: DecodeOptions {
            decoder,
            steps,
            progress: false,
        },
        encoder_key: format!("diffc:{model}"),
    })
}

/// DiffC with the CLI's defaults (seed 0, default parameters) over `model`
/// on the CPU.
fn make_diffc(model: &str) -> Result<Box<dyn Codec>> {
    let m = crate::denoiser::load(model, &candle_core::Device::Cpu)?;
    Ok(Box::new(crate::codec::diffc::DiffC::new(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffc_names_may_carry_their_model() {
        let f = make("diffc-f@gauss-spectrum", Some("photo-unet-s")).unwrap();
        let a = make("diffc-a@gauss-spectrum", None).unwrap();
        assert_eq!(
            f.encoder_key, "diffc:gauss-spectrum",
            "the @MODEL wins over --model"
        );
        assert_eq!(f.encoder_key, a.encoder_key, "F and A share their encodes");
        assert_eq!(
            (f.opts.decoder, a.opts.decoder),
            (DecoderKind::Ode, DecoderKind::Sde)
        );
        assert_eq!(
            make("diffc-f", Some("gauss-spectrum")).unwrap().encoder_key,
            "diffc:gauss-spectrum"
        );
        assert!(make("diffc-f@no-such-model", None).is_err());
        // `:STEPS` sets the decoder's steps; the encoder (and so the bitstream) is shared
        let a64 = make("diffc-a:64@gauss-spectrum", None).unwrap();
        assert_eq!(a64.opts.steps, Some(64));
        assert_eq!(a64.opts.decoder, DecoderKind::Sde);
        assert_eq!(a64.encoder_key, a.encoder_key);
        assert_eq!(a.opts.steps, None);
        for bad in ["diffc-a:0", "diffc-f:x", "diffc-f:20000@gauss-spectrum"] {
            assert!(make(bad, None).is_err(), "{bad}");
        }
        assert!(make("diffc-x@gauss-spectrum", None).is_err());
    }
}
