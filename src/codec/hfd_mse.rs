//! `hfd-mse`: HFD's MSE transform codec (mean-scale hyperprior, [`crate::nn::hyperprior`]).
//!
//! Bitstream body: [`HfdHeader`] (`varint(rate code) | quant byte | [refiner fingerprint u16 LE,
//! HFD only]`) then the range-coded payload, which holds ẑ (channel-major), then (when the
//! quant byte's bit 1 is set, as every file this version writes) 16 raw bits of a checksum of
//! the scale levels of ẑ and y ([`level_check`]), then the symbols of y.
//! The rate code c sets the continuous gain-unit rate r = c / [`RATE_STEPS`] + [`RATE_MIN`],
//! so one model serves any bpp; `--bpp` bisects c for the largest file within budget.
//! Rates in [`RATE_MIN`], 0) extrapolate the gains below the lowest trained rate.
//!
//! Entropy model: ẑ under per-channel N(0, s_c²) ⊛ U, y under N(μ, σ²) ⊛ U from h_s(ẑ).
//! Every scale is snapped to a fixed log-spaced [`ScaleTable`] and each level's integer CDF
//! is built from the level index with libm only ([`GaussianTables`]), so encoder and decoder
//! select identical tables: a float difference can only move σ across a level boundary when
//! the two sides compute h_s(ẑ) differently (different CPU/GPU), never within one build.
//! Such a flip would desynchronise the range decoder silently (a garbage image), so the file
//! carries a 16-bit checksum of every level the encoder used and the decoder compares its own
//! before decoding y: a mismatch is a [`FormatError::Corrupt`] naming the cause (a 2⁻¹⁶ chance
//! of a mismatch passing unseen).
//!
//! Quantisation of y ([`Quant`]): rounding of y − μ, or universal quantisation with a
//! shared-seed dither u: k = round(y − μ + u), ŷ = μ + k − u (the training noise, exactly).
use crate::codec::{Codec, DecodeOptions, RateTarget};
use crate::container::{CodecId, Cursor, File, put_varint};
use crate::entropy::{GaussianTables, Reader, Writer};
use crate::error::{Error, FormatError, ParamError, Result};
use crate::image_io::{Image, Shape};
use crate::nn::hyperprior::{Config, Hyperprior, scale_channels};
use crate::rng::{Purpose, Stream};
use candle_core::{Device, Tensor};
use std::sync::OnceLock;

/// Rate codes per trained rate: r = code / RATE_STEPS + RATE_MIN.
pub const RATE_STEPS: u64 = 32;
/// Lowest continuous rate (below 0 the gains are extrapolated log-linearly).
pub const RATE_MIN: f64 = -2.5;

/// The continuous rate of a rate code.
pub fn rate_of_code(code: u64) -> f32 {
    (code as f64 / RATE_STEPS as f64 + RATE_MIN) as f32
}
/// The checkpoint `hfd-mse` loads by default.
pub const DEFAULT_MSE_MODEL: &str = "hfd-mse";

/// How y is quantised at test time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quant {
    /// k = round(y − μ).
    #[default]
    Round,
    /// k = round(y − μ + u) with a shared-seed dither u (universal quantisation).
    Dither,
}

/// Log-spaced scale levels with lazily built integer tables, shared by encoder and decoder.
pub struct ScaleTable {
    lo: f64,
    step: f64,
    round: Vec<OnceLock<GaussianTables>>,
    dither: Vec<OnceLock<GaussianTables>>,
}

impl ScaleTable {
    pub const LEVELS: usize = 64;
    pub const MAX: f64 = 256.0;

    pub fn new(min: f64) -> Self {
        let lo = min.ln();
        let step = (Self::MAX.ln() - lo) / (Self::LEVELS - 1) as f64;
        let mk = || (0..Self::LEVELS).map(|_| OnceLock::new()).collect();
        ScaleTable {
            lo,
            step,
            round: mk(),
            dither: mk(),
        }
    }

    /// Nearest level (in log scale) of a scale; NaN and tiny scales map to level 0.
    pub fn index(&self, s: f64) -> usize {
        let i = ((s.ln() - self.lo) / self.step).round();
        if i.is_nan() || i < 0.0 {
            0
        } else {
            (i as usize).min(Self::LEVELS - 1)
        }
    }

    pub fn scale(&self, i: usize) -> f64 {
        libm::exp(self.lo + self.step * i as f64)
    }

    pub fn tables(&self, i: usize, q: Quant) -> &GaussianTables {
        match q {
            Quant::Round => self.round[i].get_or_init(|| GaussianTables::rounding(self.scale(i))),
            Quant::Dither => self.dither[i].get_or_init(|| GaussianTables::dithered(self.scale(i))),
        }
    }
}

/// The MSE codec over a loaded checkpoint.
pub struct HfdMse {
    net: Hyperprior,
    device: Device,
    name: String,
    fingerprint: u32,
    scales: ScaleTable,
    /// Seed of the dither (stored in the file).
    pub seed: u64,
    pub quant: Quant,
    /// A budget below the lowest rate gives the lowest-rate file instead of an error
    /// (the evaluation harness records the missed target).
    pub floor_at_lowest: bool,
    /// Relative error injected into every scale of the entropy model (0: none). Tests set it on
    /// a decoder to stand in for another build's float path (`level_check`).
    #[doc(hidden)]
    pub scale_perturbation: f64,
}

/// The body header of `hfd-mse` and `hfd` files: one `write` and one `read`, used by the
/// codecs and `diffc info` alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HfdHeader {
    pub rate_code: u64,
    pub quant: Quant,
    /// The refiner's 16-bit fingerprint (`hfd` files only).
    pub refiner_fp: Option<u16>,
    /// The payload carries the scale levels' checksum ([`level_check`]; bit 1 of the quant
    /// byte). Every file this version writes has it; files without it still decode, unchecked.
    pub levels_checked: bool,
}

impl HfdHeader {
    pub fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.rate_code);
        out.push(self.quant as u8 | (self.levels_checked as u8) << 1);
        if let Some(fp) = self.refiner_fp {
            out.extend_from_slice(&fp.to_le_bytes());
        }
    }

    /// Reads the header of a body written by codec `codec` (`hfd` files carry the refiner).
    pub fn read(c: &mut Cursor, codec: CodecId) -> Result<Self, FormatError> {
        let rate_code = c.varint()?;
        let q = c.u8()?;
        let quant = match q & !2 {
            0 => Quant::Round,
            1 => Quant::Dither,
            _ => {
                return Err(FormatError::corrupt(
                    "quantiser",
                    format!("unknown kind {q}"),
                ));
            }
        };
        let refiner_fp = if codec == CodecId::Hfd {
            Some(u16::from_le_bytes([c.u8()?, c.u8()?]))
        } else {
            None
        };
        Ok(HfdHeader {
            rate_code,
            quant,
            refiner_fp,
            levels_checked: q & 2 != 0,
        })
    }
}

/// What the decoder rebuilds from a file before synthesis.
pub struct Parsed {
    pub file: File,
    pub header: HfdHeader,
    pub payload_start: usize,
}

impl HfdMse {
    /// The scale-table level of each latent channel's fixed scale (encoder and decoder alike).
    fn z_levels(&self) -> Vec<usize> {
        self.net
            .z_scales()
            .iter()
            .map(|&s| self.scales.index(s))
            .collect()
    }

    /// Loads a checkpoint by name (looked up like diffusion models) or `.safetensors` path.
    pub fn load(name: &str, device: &Device) -> Result<Self> {
        let ck = crate::denoiser::checkpoint(name)?;
        let net = Hyperprior::from_bytes(&ck.bytes, &ck.origin(), device)?;
        let bytes = &ck.bytes;
        Ok(HfdMse {
            scales: ScaleTable::new(net.config().scale_min),
            net,
            device: device.clone(),
            name: name.to_string(),
            fingerprint: crc32fast::hash(bytes),
            seed: 0,
            quant: Quant::default(),
            floor_at_lowest: false,
            scale_perturbation: 0.0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    pub fn config(&self) -> &Config {
        self.net.config()
    }

    /// Highest rate code.
    pub fn max_rate_code(&self) -> u64 {
        ((self.config().max_rate() - RATE_MIN) * RATE_STEPS as f64).round() as u64
    }

    /// y = g_a(x) of the image padded (edge-replicated) to multiples of 64; x in [−1, 1].
    pub fn analyse(&self, img: &Image) -> Result<Tensor> {
        let Shape { c, h, w } = img.shape;
        if c != 3 {
            return Err(Error::Unsupported(format!(
                "hfd codecs need 3-channel images, got {c}"
            )));
        }
        let m = Config::MULTIPLE;
        let (hp, wp) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
        let mut x = vec![0f32; 3 * hp * wp];
        for ch in 0..3 {
            for yy in 0..hp {
                let src = &img.data[(ch * h + yy.min(h - 1)) * w..][..w];
                let dst = &mut x[(ch * hp + yy) * wp..][..wp];
                for (xx, d) in dst.iter_mut().enumerate() {
                    *d = (src[xx.min(w - 1)] + 1.0) * 0.5;
                }
            }
        }
        let x = Tensor::from_vec(x, (1, 3, hp, wp), &self.device)?;
        Ok(self.net.analysis(&x)?)
    }

    fn dither(&self, seed: u64, n: usize) -> Vec<f64> {
        let mut u = vec![0.0; n];
        Stream::new(seed, Purpose::HfdDither, 0, 0, 0).fill_uniform_centered(&mut u);
        u
    }

    /// (μ, σ-level) of every element of y given ẑ.
    fn y_model(&self, zq: &Tensor) -> Result<(Vec<f32>, Vec<usize>)> {
        let (mu, ls) = self.net.hyper_synthesis(zq)?;
        let smin = self.config().scale_min;
        let mu = mu.flatten_all()?.to_vec1::<f32>()?;
        let lv = ls
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|l| {
                let s = l.exp() as f64 * (1.0 + self.scale_perturbation);
                self.scales.index(s.max(smin))
            })
            .collect();
        Ok((mu, lv))
    }

    /// Entropy-codes y at rate code `code`; returns the payload and the quantised gained ŷ
    /// (what the decoder must rebuild exactly).
    pub fn encode_payload(&self, y: &Tensor, code: u64, seed: u64) -> Result<(Vec<u8>, Vec<f32>)> {
        let (g, _) = self.net.gains(rate_of_code(code));
        let yg = scale_channels(y, &g)?;
        let z = self.net.hyper_analysis(&yg)?;
        let zs = z.flatten_all()?.to_vec1::<f32>()?;
        let (_, nz, zh, zw) = z.dims4()?;
        let zq: Vec<f32> = zs
            .iter()
            .map(|&v| (v as f64 + 0.5).floor() as f32)
            .collect();
        let mut w = Writer::new();
        let zlev = self.z_levels();
        for (i, &k) in zq.iter().enumerate() {
            let t = self.scales.tables(zlev[i / (zh * zw)], Quant::Round);
            w.signed(k as i64, t.r, t.table(0.0))?;
        }
        let zq = Tensor::from_vec(zq, (1, nz, zh, zw), &self.device)?;
        let (mu, lv) = self.y_model(&zq)?;
        w.raw(level_check(&zlev, &lv) as u64, 16)?;
        let yv = yg.flatten_all()?.to_vec1::<f32>()?;
        let u = match self.quant {
            Quant::Round => vec![0.0; yv.len()],
            Quant::Dither => self.dither(seed, yv.len()),
        };
        let mut yq = vec![0f32; yv.len()];
        for i in 0..yv.len() {
            let k = (yv[i] as f64 - mu[i] as f64 + u[i] + 0.5).floor();
            if !k.is_finite() {
                return Err(Error::Unsupported(
                    "non-finite latent (is the image valid?)".into(),
                ));
            }
            let t = self.scales.tables(lv[i], self.quant);
            w.signed(k as i64, t.r, t.table(u[i]))?;
            yq[i] = dequantize(mu[i], k as i64, u[i]);
        }
        Ok((w.finish(), yq))
    }

    /// The container around a payload.
    pub fn file(
        &self,
        codec: CodecId,
        shape: Shape,
        code: u64,
        refiner_fp: Option<u16>,
        payload: &[u8],
    ) -> File {
        let mut body = Vec::with_capacity(payload.len() + 6);
        HfdHeader {
            rate_code: code,
            quant: self.quant,
            refiner_fp,
            levels_checked: true,
        }
        .write(&mut body);
        body.extend_from_slice(payload);
        File {
            codec,
            model_fp: self.fingerprint as u16,
            channels: shape.c as u8,
            width: shape.w as u32,
            height: shape.h as u32,
            seed: self.seed,
            params: None,
            body,
        }
    }

    /// Encodes at the largest rate code whose whole file fits the target (or at a given
    /// code with `RateTarget::Step`). Returns the file bytes.
    pub fn encode_as(
        &self,
        codec: CodecId,
        img: &Image,
        target: RateTarget,
        refiner_fp: Option<u16>,
    ) -> Result<Vec<u8>> {
        let y = self.analyse(img)?;
        let make = |code: u64| -> Result<Vec<u8>> {
            let (payload, _) = self.encode_payload(&y, code, self.seed)?;
            Ok(self
                .file(codec, img.shape, code, refiner_fp, &payload)
                .to_bytes())
        };
        let max = self.max_rate_code();
        match target {
            RateTarget::Step(c) => {
                if c as u64 > max {
                    return Err(ParamError::new(
                        "the rate code",
                        "at most the model's maximum",
                        format!("{c} (maximum {max})"),
                    )
                    .into());
                }
                make(c as u64)
            }
            RateTarget::LogSnr(_) => Err(Error::Unsupported(format!(
                "{} takes --bpp (or a rate code), not a log-SNR",
                codec.name()
            ))),
            RateTarget::Bpp(b) => {
                if !(b.is_finite() && b > 0.0) {
                    return Err(ParamError::new("--bpp", "a positive number", b).into());
                }
                let budget = (b * img.shape.pixels() as f64 / 8.0).floor() as usize;
                let lowest = make(0)?;
                if lowest.len() > budget && self.floor_at_lowest {
                    return Ok(lowest);
                }
                if lowest.len() > budget {
                    return Err(Error::Unsupported(format!(
                        "{b} bpp is below this model's lowest rate ({:.4} bpp for this image)",
                        lowest.len() as f64 * 8.0 / img.shape.pixels() as f64
                    )));
                }
                // Largest code that fits (file size grows with the code).
                let (mut lo, mut hi, mut best) = (0u64, max, lowest);
                while lo < hi {
                    let mid = (lo + hi).div_ceil(2);
                    let f = make(mid)?;
                    if f.len() <= budget {
                        lo = mid;
                        best = f;
                    } else {
                        hi = mid - 1;
                    }
                }
                Ok(best)
            }
        }
    }

    /// Parses and checks a file's header and body prefix.
    pub fn parse(&self, bytes: &[u8], expect: CodecId) -> Result<Parsed> {
        let file = File::from_bytes(bytes)?;
        file.codec.expect(expect)?;
        if file.model_fp != self.fingerprint as u16 {
            return Err(FormatError::WrongModel {
                what: "MSE-codec",
                file_fp: file.model_fp as u64,
                name: self.name.clone(),
                model_fp: self.fingerprint as u16 as u64,
            }
            .into());
        }
        if file.channels != 3 {
            return Err(FormatError::corrupt(
                "channels",
                format!("hfd files hold 3, header says {}", file.channels),
            )
            .into());
        }
        let mut c = Cursor::new(&file.body);
        let header = HfdHeader::read(&mut c, expect)?;
        if header.rate_code > self.max_rate_code() {
            return Err(FormatError::corrupt(
                "rate code",
                format!("{} above the model's maximum", header.rate_code),
            )
            .into());
        }
        let payload_start = c.pos;
        Ok(Parsed {
            file,
            header,
            payload_start,
        })
    }

    /// The gained ŷ a parsed file holds (bit-identical to the encoder's).
    pub fn decode_latent(&self, p: &Parsed) -> Result<Vec<f32>> {
        let (h, w) = (p.file.height as usize, p.file.width as usize);
        let m = Config::MULTIPLE;
        let (hp, wp) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
        let cfg = self.config();
        let (zh, zw) = (hp / 64, wp / 64);
        let mut r = Reader::new(&p.file.body[p.payload_start..])?;
        let zlev = self.z_levels();
        let mut zq = vec![0f32; cfg.nz * zh * zw];
        for (i, v) in zq.iter_mut().enumerate() {
            let t = self.scales.tables(zlev[i / (zh * zw)], Quant::Round);
            *v = checked(r.signed(t.r, t.table(0.0))?)? as f32;
        }
        let zq = Tensor::from_vec(zq, (1, cfg.nz, zh, zw), &self.device)?;
        let (mu, lv) = self.y_model(&zq)?;
        if p.header.levels_checked {
            let sent = r.raw(16)? as u16;
            let ours = level_check(&zlev, &lv);
            if sent != ours {
                return Err(FormatError::corrupt(
                    "scale levels",
                    format!(
                        "checksum {ours:04x} of this decoder's entropy-model levels differs from                          the file's {sent:04x}: the model's hyper-synthesis computed other scales                          than the encoder's (another build, CPU or device) or the file is damaged;                          decoding would give garbage"
                    ),
                )
                .into());
            }
        }
        let n = mu.len();
        let u = match p.header.quant {
            Quant::Round => vec![0.0; n],
            Quant::Dither => self.dither(p.file.seed, n),
        };
        let mut yq = vec![0f32; n];
        for i in 0..n {
            let t = self.scales.tables(lv[i], p.header.quant);
            let k = checked(r.signed(t.r, t.table(u[i]))?)?;
            yq[i] = dequantize(mu[i], k, u[i]);
        }
        Ok(yq)
    }

    /// Decodes a parsed file to the MSE reconstruction in [−1, 1].
    pub fn reconstruct(&self, p: &Parsed) -> Result<Image> {
        let yq = self.decode_latent(p)?;
        let (h, w) = (p.file.height as usize, p.file.width as usize);
        let m = Config::MULTIPLE;
        let (hp, wp) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
        let cfg = self.config();
        let (yh, yw) = (hp / 16, wp / 16);
        let (_, gi) = self.net.gains(rate_of_code(p.header.rate_code));
        let yq = Tensor::from_vec(yq, (1, cfg.m, yh, yw), &self.device)?;
        let x = self.net.synthesis(&scale_channels(&yq, &gi)?)?;
        let x = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = Image::zeros(Shape::new(3, h, w));
        for ch in 0..3 {
            for yy in 0..h {
                let src = &x[(ch * hp + yy) * wp..][..w];
                let dst = &mut out.data[(ch * h + yy) * w..][..w];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = (s.clamp(0.0, 1.0) * 2.0 - 1.0).clamp(-1.0, 1.0);
                }
            }
        }
        Ok(out)
    }
}

/// A 16-bit checksum of the scale levels of ẑ's channels (`zlev`) and of y (`lv`): what the
/// encoder's entropy model chose, so a decoder whose floats chose otherwise reports it.
pub fn level_check(zlev: &[usize], lv: &[usize]) -> u16 {
    let mut h = crc32fast::Hasher::new();
    let bytes: Vec<u8> = zlev.iter().chain(lv).map(|&l| l as u8).collect();
    h.update(&bytes);
    let c = h.finalize();
    (c ^ (c >> 16)) as u16
}

/// ŷ = μ + k − u.
fn dequantize(mu: f32, k: i64, u: f64) -> f32 {
    (mu as f64 + k as f64 - u) as f32
}

/// Symbols beyond what the encoder can produce are corruption (keeps floats finite).
fn checked(k: i64) -> Result<i64, FormatError> {
    if k.abs() > 1 << 24 {
        return Err(FormatError::corrupt(
            "payload",
            format!("latent value {k} out of range"),
        ));
    }
    Ok(k)
}

impl Codec for HfdMse {
    fn name(&self) -> &str {
        "hfd-mse"
    }
    fn encode(&self, img: &Image, target: RateTarget) -> Result<Vec<u8>> {
        self.encode_as(CodecId::HfdMse, img, target, None)
    }
    /// One output, X̂_MSE: a realism other than 1 (unset) is refused, since there is no
    /// sample to blend with (HFD's decoder has one: `hfd` files honour `--realism`).
    fn decode(&self, bytes: &[u8], opts: &DecodeOptions) -> Result<Image> {
        if opts.realism()? != 1.0 {
            return Err(Error::Unsupported(
                "the MSE codec has one output, X̂_MSE (realism 0 of an hfd file); --realism \
                 applies to DiffC and HFD files"
                    .into(),
            ));
        }
        let p = self.parse(bytes, CodecId::HfdMse)?;
        super::check_pixels(p.file.width, p.file.height, opts.max_pixels)?;
        self.reconstruct(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes of a fixed symbol sequence under tables of several scale levels: the
    /// scale table and its integer CDFs are part of the format (libm only, so portable).
    #[test]
    fn scale_table_and_cdfs_are_golden() {
        let st = ScaleTable::new(0.11);
        assert_eq!(st.index(0.11), 0);
        assert_eq!(st.index(ScaleTable::MAX * 10.0), ScaleTable::LEVELS - 1);
        assert_eq!(st.index(f64::NAN), 0);
        for i in [0, 17, 63] {
            assert_eq!(st.index(st.scale(i)), i);
        }
        let mut w = Writer::new();
        let mut s = Stream::new(1, Purpose::Experiment, 0, 0, 0);
        for n in 0..400u64 {
            let lv = [0usize, 9, 21, 33, 47, 63][(n % 6) as usize];
            let q = if n % 2 == 0 {
                Quant::Round
            } else {
                Quant::Dither
            };
            let u = if q == Quant::Dither {
                s.uniform_centered()
            } else {
                0.0
            };
            let k = (s.normal() * st.scale(lv) + u + 0.5).floor() as i64;
            let t = st.tables(lv, q);
            w.signed(k, t.r, t.table(u)).unwrap();
        }
        let b = w.finish();
        assert_eq!((b.len(), crc32fast::hash(&b)), (212, 1302365386));
    }
}
