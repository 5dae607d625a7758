//! Codecs by name: what `--codecs` accepts. The learned codecs are codec specs built by
//! [`crate::codec::registry`] (`diffc-f[:STEPS][@MODEL]`, `diffc-a…`, `hfd`, `hfd-a`, `hfd-mse`,
//! `hfd-mse-dither`); `jpeg`, `webp`, `avif`, `jxl` are the classic baselines
//! ([`super::baselines`]). `--model` picks DiffC's denoiser where a spec names none.
use super::baselines::Baseline;
use crate::codec::registry::{self, CodecSpec, Options};
use crate::codec::{Codec, DecodeOptions};
use crate::container::CodecId;
use anyhow::Result;

/// A codec ready for the harness.
pub struct Made {
    pub codec: Box<dyn Codec>,
    pub opts: DecodeOptions,
    /// Codecs with the same key produce the same bitstream (DiffC-F and DiffC-A share the
    /// encoder and differ only in decoding), so the harness encodes once per image × target.
    pub encoder_key: String,
    /// Codecs with the same key decode a file to the same two ends of the realism knob and
    /// differ only in R (`diffc-f~0.5`, `diffc-f`), so the harness decodes once per file and
    /// blends ([`crate::codec::Codec::decode_realisms`]).
    pub decoder_key: String,
}

/// Builds the codec called `name` on `device` and the decode options the harness uses with it.
pub fn make(name: &str, model: Option<&str>, device: &candle_core::Device) -> Result<Made> {
    if let Some(b) = Baseline::from_name(name) {
        return Ok(Made {
            codec: Box::new(b),
            opts: DecodeOptions::default(),
            encoder_key: name.to_string(),
            decoder_key: name.to_string(),
        });
    }
    let mut spec: CodecSpec = name.parse()?;
    if spec.id == CodecId::DiffC && spec.model.is_none() {
        spec.model = model.map(str::to_string);
    }
    let opts = Options {
        floor_at_lowest: true,
        ..Options::default()
    };
    let built = registry::build(&spec, &opts, device)?;
    let decoder_key = format!(
        "{}|{}",
        built.encoder_key,
        CodecSpec {
            realism: None,
            ..spec
        }
    );
    Ok(Made {
        codec: Box::new(built.codec),
        opts: built.decode,
        encoder_key: built.encoder_key,
        decoder_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffc_names_may_carry_their_model() {
        let cpu = candle_core::Device::Cpu;
        let f = make("diffc-f@gauss-spectrum", Some("photo-unet-s"), &cpu).unwrap();
        assert_eq!(
            f.encoder_key, "diffc:gauss-spectrum",
            "the @MODEL wins over --model"
        );
        assert_eq!(
            make("diffc-f", Some("gauss-spectrum"), &cpu)
                .unwrap()
                .encoder_key,
            "diffc:gauss-spectrum"
        );
        assert!(make("diffc-x@gauss-spectrum", None, &cpu).is_err());
        assert_eq!(make("jpeg", None, &cpu).unwrap().encoder_key, "jpeg");
        let key = |n: &str| make(n, None, &cpu).unwrap().decoder_key;
        assert_eq!(
            key("diffc-f~0.5@gauss-spectrum"),
            key("diffc-f@gauss-spectrum"),
            "R is blended after one decode"
        );
        assert_ne!(key("diffc-a@gauss-spectrum"), key("diffc-f@gauss-spectrum"));
        assert_ne!(
            key("diffc-f:12@gauss-spectrum"),
            key("diffc-f@gauss-spectrum")
        );
    }
}
