//! The one place that turns a codec spec (`diffc-f:48@MODEL`, `hfd`, `hfd-mse-dither`, …) or a
//! file's [`CodecId`] into a codec. `diffc encode`, `diffc decode` and the eval harness all
//! build their codecs here, so spec names, file ids and codec names are one vocabulary.
//!
//! Spec grammar: `BASE[:STEPS][~REALISM][@MODEL]`.
//! - BASE: `diffc` (= `diffc-f`), `diffc-f` (DiffC decoded by the flow ODE), `diffc-a` (by the
//!   SDE); `hfd` (HFD, refiner by the flow ODE), `hfd-a` (by the SDE); `hfd-mse` (HFD's MSE
//!   codec alone, rounding), `hfd-mse-dither` (with the shared-seed dither).
//! - STEPS: the decoder's denoising steps (DiffC and HFD; default per decoder).
//! - REALISM: the decoder's realism knob R in [0, 1] (DiffC and HFD; default 1): R = 0 the
//!   posterior mean (HFD: X̂_MSE), 1 the decoder's sample ([`super::realism_blend`]).
//! - MODEL: DiffC's diffusion model, or HFD's MSE-codec checkpoint.
use super::diffc::{DiffC, DiffcParams};
use super::hfd::Hfd;
use super::hfd_mse::{DEFAULT_MSE_MODEL, HfdMse, Quant};
use super::{Codec, DecodeOptions, DecoderKind, MAX_DECODE_STEPS, RateTarget};
use crate::channel::ChannelKind;
use crate::container::CodecId;
use crate::error::{Error, FormatError, ParamError, Result};
use crate::image_io::Image;
use crate::sampler::OdeSolver;
use candle_core::Device;
use std::str::FromStr;

/// Every codec base name a spec may start with.
pub const BASES: &[&str] = &[
    "diffc",
    "diffc-f",
    "diffc-a",
    "hfd",
    "hfd-a",
    "hfd-mse",
    "hfd-mse-dither",
];

/// A parsed codec spec.
#[derive(Clone, Debug, PartialEq)]
pub struct CodecSpec {
    /// Which codec writes (and reads) the files.
    pub id: CodecId,
    /// The decoder's reconstruction (DiffC and HFD).
    pub decoder: DecoderKind,
    /// Decoder steps (`None`: the codec's default for the decoder).
    pub steps: Option<usize>,
    /// DiffC's diffusion model or HFD's MSE codec (`None`: the default, or the model whose
    /// fingerprint the file names).
    pub model: Option<String>,
    /// HFD's test-time quantisation.
    pub quant: Quant,
    /// The decoder's realism knob (`None`: 1).
    pub realism: Option<f64>,
}

impl CodecSpec {
    /// The spec of a codec id with its defaults.
    pub fn of(id: CodecId) -> Self {
        CodecSpec {
            id,
            decoder: DecoderKind::Ode,
            steps: None,
            model: None,
            quant: Quant::Round,
            realism: None,
        }
    }

    /// The base name this spec prints with.
    pub fn base(&self) -> &'static str {
        match (self.id, self.decoder, self.quant) {
            (CodecId::DiffC, DecoderKind::Ode, _) => "diffc-f",
            (CodecId::DiffC, DecoderKind::Sde, _) => "diffc-a",
            (CodecId::Hfd, DecoderKind::Ode, _) => "hfd",
            (CodecId::Hfd, DecoderKind::Sde, _) => "hfd-a",
            (CodecId::HfdMse, _, Quant::Round) => "hfd-mse",
            (CodecId::HfdMse, _, Quant::Dither) => "hfd-mse-dither",
        }
    }
}

impl FromStr for CodecSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (rest, model) = match s.split_once('@') {
            Some((b, m)) if !m.is_empty() => (b, Some(m.to_string())),
            Some(_) => {
                return Err(Error::Unsupported(format!(
                    "codec `{s}`: empty model after '@'"
                )));
            }
            None => (s, None),
        };
        let (rest, realism) = match rest.split_once('~') {
            Some((b, r)) => match r.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => (b, Some(v)),
                _ => {
                    return Err(ParamError::new(
                        "the realism after '~'",
                        "a number in [0, 1]",
                        format!("'{r}' in codec `{s}`"),
                    )
                    .into());
                }
            },
            None => (rest, None),
        };
        let (base, steps) = match rest.split_once(':') {
            Some((b, n)) => match n.parse::<usize>() {
                Ok(n) if (1..=MAX_DECODE_STEPS).contains(&n) => (b, Some(n)),
                _ => {
                    return Err(ParamError::new(
                        "decoder steps after ':'",
                        "in 1..=10000",
                        format!("'{n}' in codec `{s}`"),
                    )
                    .into());
                }
            },
            None => (rest, None),
        };
        let (id, decoder, quant) = match base {
            "diffc" | "diffc-f" => (CodecId::DiffC, DecoderKind::Ode, Quant::Round),
            "diffc-a" => (CodecId::DiffC, DecoderKind::Sde, Quant::Round),
            "hfd" => (CodecId::Hfd, DecoderKind::Ode, Quant::Round),
            "hfd-a" => (CodecId::Hfd, DecoderKind::Sde, Quant::Round),
            "hfd-mse" => (CodecId::HfdMse, DecoderKind::Ode, Quant::Round),
            "hfd-mse-dither" => (CodecId::HfdMse, DecoderKind::Ode, Quant::Dither),
            _ => {
                return Err(Error::Unsupported(format!(
                    "unknown codec `{s}` (known: {}; DiffC and HFD take :STEPS, all take @MODEL)",
                    BASES.join(", ")
                )));
            }
        };
        if id == CodecId::HfdMse && steps.is_some() {
            return Err(Error::Unsupported(format!(
                "codec `{s}`: the MSE codec has no decoder steps"
            )));
        }
        if id == CodecId::HfdMse && realism.is_some() {
            return Err(Error::Unsupported(format!(
                "codec `{s}`: the MSE codec has one output (X̂_MSE, hfd's realism 0)"
            )));
        }
        Ok(CodecSpec {
            id,
            decoder,
            steps,
            model,
            quant,
            realism,
        })
    }
}

impl std::fmt::Display for CodecSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.base())?;
        if let Some(n) = self.steps {
            write!(f, ":{n}")?;
        }
        if let Some(r) = self.realism {
            write!(f, "~{r}")?;
        }
        if let Some(m) = &self.model {
            write!(f, "@{m}")?;
        }
        Ok(())
    }
}

/// Settings beside the spec (the CLI's flags; the harness uses the defaults).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seed of all shared randomness (encoders; decoders read it from the file).
    pub seed: u64,
    /// A file's 16-bit model fingerprint: picks the known model when the spec names none, and
    /// refuses other Stable Diffusion weights before they are loaded.
    pub fingerprint: Option<u16>,
    /// HFD's refiner checkpoint (default `hfd-refiner`).
    pub refiner: Option<String>,
    /// DiffC: count truncated PFR chunks (8× slower PFR).
    pub diagnose_pfr: bool,
    pub ode_solver: OdeSolver,
    /// HFD: where refinement starts (`None`: matched to the file's rate).
    pub start_logsnr: Option<f64>,
    /// Float type of the Stable Diffusion networks (`None`: f32).
    pub sd_dtype: Option<candle_core::DType>,
    /// HFD's MSE codec: a budget below its lowest rate gives the lowest-rate file instead of an
    /// error (the harness records the missed target).
    pub floor_at_lowest: bool,
    pub progress: bool,
}

impl Options {
    /// Sets what these options steer on a DiffC codec.
    fn apply(&self, c: &mut DiffC) {
        c.seed = self.seed;
        c.diagnose = self.diagnose_pfr;
        c.progress = self.progress;
        c.ode_solver = self.ode_solver;
    }
}

/// A codec built from a spec: one type over every codec, so callers can still reach a
/// codec's own reports (DiffC's step records).
pub enum AnyCodec {
    DiffC(DiffC),
    Hfd(Hfd),
    HfdMse(HfdMse),
}

impl AnyCodec {
    fn inner(&self) -> &dyn Codec {
        match self {
            AnyCodec::DiffC(c) => c,
            AnyCodec::Hfd(c) => c,
            AnyCodec::HfdMse(c) => c,
        }
    }
}

impl Codec for AnyCodec {
    fn name(&self) -> &str {
        self.inner().name()
    }
    fn encode(&self, img: &Image, target: RateTarget) -> Result<Vec<u8>> {
        self.inner().encode(img, target)
    }
    fn encode_targets(&self, img: &Image, targets: &[f64]) -> Result<Vec<(Vec<u8>, f64)>> {
        self.inner().encode_targets(img, targets)
    }
    fn decode(&self, bytes: &[u8], opts: &DecodeOptions) -> Result<Image> {
        self.inner().decode(bytes, opts)
    }
    fn decode_realisms(
        &self,
        bytes: &[u8],
        opts: &DecodeOptions,
        rs: &[f64],
    ) -> Result<Vec<Image>> {
        self.inner().decode_realisms(bytes, opts, rs)
    }
}

/// A codec ready to use, with the decode options its spec implies.
pub struct Built {
    pub codec: AnyCodec,
    pub decode: DecodeOptions,
    /// Codecs with the same key write the same bitstream (DiffC-F and DiffC-A share the
    /// encoder and differ only in decoding), so the harness encodes once per image × target.
    pub encoder_key: String,
}

/// Builds the codec `spec` names, on `device`.
pub fn build(spec: &CodecSpec, opts: &Options, device: &Device) -> Result<Built> {
    let decode = DecodeOptions {
        decoder: spec.decoder,
        steps: spec.steps,
        progress: opts.progress,
        realism: spec.realism,
        ..DecodeOptions::default()
    };
    let mse = |name: Option<&str>| -> Result<HfdMse> {
        let mut c = HfdMse::load(name.unwrap_or(DEFAULT_MSE_MODEL), device)?;
        c.seed = opts.seed;
        c.quant = spec.quant;
        c.floor_at_lowest = opts.floor_at_lowest;
        Ok(c)
    };
    let (codec, encoder_key) = match spec.id {
        CodecId::DiffC if spec.model.as_deref().is_some_and(|m| m.starts_with("sd:")) => {
            let dir = &spec.model.as_deref().unwrap_or_default()[3..];
            let mut c = latent_diffc(
                dir,
                opts.sd_dtype.unwrap_or(candle_core::DType::F32),
                opts.fingerprint,
                device,
            )?;
            opts.apply(&mut c);
            let key = format!("diffc:{}", c.model.name());
            (AnyCodec::DiffC(c), key)
        }
        CodecId::DiffC => {
            let model = match (&spec.model, opts.fingerprint) {
                (Some(m), _) => crate::denoiser::load(m, device)?,
                (None, Some(fp)) => {
                    crate::denoiser::find_by_fingerprint(fp, device).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "no known model has fingerprint {fp:04x} (the file's); pass --model \
                             (a Stable Diffusion file needs the same --model sd:DIR as its encoder)"
                        ))
                    })?
                }
                (None, None) => crate::denoiser::load(crate::denoiser::DEFAULT_MODEL, device)?,
            };
            let key = format!("diffc:{}", model.name());
            let mut c = DiffC::new(model);
            opts.apply(&mut c);
            (AnyCodec::DiffC(c), key)
        }
        CodecId::HfdMse => {
            let c = mse(spec.model.as_deref())?;
            let key = format!("{}:{:08x}", spec.base(), c.fingerprint());
            (AnyCodec::HfdMse(c), key)
        }
        CodecId::Hfd => {
            let mut c = Hfd::load(spec.model.as_deref(), opts.refiner.as_deref(), device)?;
            c.mse.seed = opts.seed;
            c.mse.quant = spec.quant;
            c.mse.floor_at_lowest = opts.floor_at_lowest;
            c.ode_solver = opts.ode_solver;
            if let Some(l) = opts.start_logsnr {
                if !l.is_finite() {
                    return Err(ParamError::new("the start log-SNR", "a number", l).into());
                }
                c.start_logsnr = Some(l);
            }
            let key = format!("hfd:{:08x}", c.mse.fingerprint());
            (AnyCodec::Hfd(c), key)
        }
    };
    Ok(Built {
        codec,
        decode,
        encoder_key,
    })
}

/// PFR chunks for SD latents: 8-bit chunks with 8 padding bits (K = 2^16 candidates). A latent
/// has 48× fewer dimensions than its image, so 16× the pixel default's candidates cost
/// 4096 · 2^16 ≈ 2.7·10⁸ candidate·dims per step at 256² (about a second, beside an 8.5 s UNet
/// forward on this CPU), and in the Gaussian experiment (eval/results/gaussian-chunks) they
/// code 1.39–1.46 × the step KL where 6-bit chunks code 1.50–1.56 ×, with 1.5 % of chunks
/// truncated.
pub const SD_PFR: crate::channel::pfr::PfrParams = crate::channel::pfr::PfrParams {
    chunk_kl: 8.0,
    padding: 8,
    max_log2k: 20,
};

/// Latent DiffC over the Stable Diffusion diffusers folder `dir` in `dtype`: the trajectory runs in
/// its VAE's latents, on SD's log-SNR range (its ᾱ table's, written in the file's parameters),
/// and decoding ends at the table's cleanest step.
/// With `file_fp` (a file's 16-bit fingerprint) other weights are refused from their configs
/// and safetensors headers, before gigabytes of weights are read.
fn latent_diffc(
    dir: &str,
    dtype: candle_core::DType,
    file_fp: Option<u16>,
    device: &Device,
) -> Result<DiffC> {
    use crate::codec::space::VaeLatents;
    use crate::denoiser::sd::SdDenoiser;
    use crate::schedule::Schedule;
    let sd_err = |e| Error::Model(anyhow::Error::new(e).context(format!("loading sd:{dir}")));
    let folder = crate::nn::sd::SdFolder::open(dir).map_err(sd_err)?;
    if let Some(fp) = file_fp.filter(|&fp| fp != folder.fingerprint as u16) {
        return Err(FormatError::WrongModel {
            what: "Stable Diffusion weights",
            file_fp: fp as u64,
            name: format!("sd:{dir}"),
            model_fp: folder.fingerprint as u16 as u64,
        }
        .into());
    }
    let sd = folder.load(device, dtype).map_err(sd_err)?;
    let sd = std::sync::Arc::new(sd);
    let name = format!("sd:{}", dir.trim_end_matches('/'));
    let den = SdDenoiser::new(sd.clone(), &name, device)?;
    let (lo, hi) = den.logsnr_range();
    // the schedule travels in the file in sixteenths: stay inside the table's range
    let lmin = (lo * 16.0).ceil() / 16.0;
    let lmax = (hi * 16.0).floor() / 16.0;
    let space = VaeLatents {
        sd,
        device: device.clone(),
        dtype,
    };
    let mut c = DiffC::with_space(std::sync::Arc::new(den), std::sync::Arc::new(space));
    c.params = DiffcParams {
        schedule: Schedule::LinearLogSnr { lmin, lmax },
        pfr: SD_PFR,
        ..DiffcParams::default()
    };
    c.shape_defaults = false;
    c.decode_lmax = lmax;
    Ok(c)
}

/// The spec that decodes a file written by codec `id` with `decoder` (and optional steps and
/// model), as `diffc decode` asks.
pub fn spec_for_file(
    id: CodecId,
    decoder: DecoderKind,
    steps: Option<usize>,
    model: Option<String>,
) -> Result<CodecSpec> {
    if let Some(n) = steps.filter(|n| !(1..=MAX_DECODE_STEPS).contains(n)) {
        return Err(ParamError::new("--steps", "in 1..=10000", n).into());
    }
    Ok(CodecSpec {
        decoder,
        steps,
        model,
        ..CodecSpec::of(id)
    })
}

/// DiffC's parameters `base` (the codec's own for the image, [`DiffC::params_for`]) with
/// CLI-style overrides applied, checked by [`DiffcParams::validate`].
pub fn diffc_params(
    base: DiffcParams,
    channel: ChannelKind,
    steps: Option<usize>,
    chunk_kl: Option<f64>,
    padding: Option<u32>,
) -> Result<DiffcParams> {
    let mut p = DiffcParams { channel, ..base };
    if let Some(s) = steps {
        p.steps = s;
    }
    if let Some(c) = chunk_kl {
        p.pfr.chunk_kl = c;
    }
    if let Some(pad) = padding {
        p.pfr.padding = pad;
    }
    p.validate()?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_their_names() {
        for s in [
            "diffc-f",
            "diffc-a:64@gauss-spectrum",
            "diffc-f:48@photo-unet-s",
            "hfd",
            "hfd-a:16",
            "hfd-mse",
            "hfd-mse-dither@hfd-mse",
            "diffc-f~0.5@photo-unet-s",
            "diffc-a:64~0@gauss-spectrum",
            "diffc-f~0.25",
            "hfd~0.75",
            "hfd-a:16~1",
        ] {
            let spec: CodecSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        let d: CodecSpec = "diffc".parse().unwrap();
        assert_eq!(d, CodecSpec::of(CodecId::DiffC));
        assert_eq!(d.to_string(), "diffc-f");
        for id in [CodecId::DiffC, CodecId::Hfd, CodecId::HfdMse] {
            let spec: CodecSpec = CodecSpec::of(id).to_string().parse().unwrap();
            assert_eq!(spec.id, id, "a file's id names a spec");
        }
    }

    #[test]
    fn bad_specs_are_typed_errors() {
        for bad in [
            "diffc-a:0",
            "diffc-f:x",
            "diffc-f:20000@gauss-spectrum",
            "diffc-f~1.5",
            "diffc-f~-0.1",
            "diffc-f~NaN",
            "diffc-f~",
            "hfd:8~x",
        ] {
            assert!(
                matches!(bad.parse::<CodecSpec>(), Err(Error::Param(_))),
                "{bad}"
            );
        }
        for bad in [
            "diffc-x@gauss-spectrum",
            "hfd-mse:8",
            "diffc-f@",
            "jpeg",
            "hfd-mse~0.5",
        ] {
            assert!(
                matches!(bad.parse::<CodecSpec>(), Err(Error::Unsupported(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn diffc_specs_share_their_encoder() {
        let cpu = Device::Cpu;
        let build_s = |s: &str| build(&s.parse().unwrap(), &Options::default(), &cpu).unwrap();
        let f = build_s("diffc-f@gauss-spectrum");
        let a = build_s("diffc-a@gauss-spectrum");
        let a64 = build_s("diffc-a:64@gauss-spectrum");
        assert_eq!(f.encoder_key, "diffc:gauss-spectrum");
        assert_eq!(f.encoder_key, a.encoder_key, "F and A share their encodes");
        assert_eq!(a64.encoder_key, a.encoder_key);
        assert_eq!(
            (f.decode.decoder, a.decode.decoder, a64.decode.steps),
            (DecoderKind::Ode, DecoderKind::Sde, Some(64))
        );
        assert!(
            build(
                &"diffc-f@no-such-model".parse().unwrap(),
                &Options::default(),
                &cpu
            )
            .is_err()
        );
    }
}
