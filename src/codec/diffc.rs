//! DiffC: communicate a diffusion trajectory z_T → z_t with reverse channel coding, then
//! denoise (DiffC-A: SDE, DiffC-F: flow ODE). Orchestration only: the maths lives in
//! `schedule`, `channel`, `sampler` and the `Denoiser`.
//!
//! The trajectory runs in the model's [`Space`] (pixels, or an autoencoder's latents):
//! encode = to-space → trajectory → container; decode = container → trajectory → from-space.
//!
//! Body of a `.dfc` file: [`DiffcHeader`] (`varint((stop·8 + frac)·3 + channel kind)`) then one
//! range-coded payload holding, per step, the change of its quantised KL code and then the
//! channel's symbols. Non-default settings travel in the container's params ([`DiffcParams`]).
use super::space::{Pixels, Space, SpaceTag};
use super::{Codec, DecodeOptions, DecoderKind, RateTarget};
use crate::channel::pfr::{Pfr, PfrParams, PfrStats, Scorer};
use crate::channel::uq::Uq;
use crate::channel::{
    ChannelKind, Proposal, StepChannel, StepCtx, code_to_kl, kl_to_code, step_kl,
};
use crate::container::{CodecId, Cursor, File, put_varint};
use crate::denoiser::Denoiser;
use crate::entropy::{Reader, Writer};
use crate::error::{Error, FormatError, ParamError, Result};
use crate::image_io::{Image, Shape};
use crate::rng::{Purpose, Stream};
use crate::sampler::{OdeSolver, proposal_sd, reverse_mean, sample_ode, sample_sde};
use crate::schedule::{Schedule, logsnr_grid};
use std::sync::Arc;

/// Everything that steers the bitstream (besides the seed and the model).
#[derive(Clone, Debug, PartialEq)]
pub struct DiffcParams {
    /// Encoder trajectory: `steps` equal steps of `schedule`.
    pub schedule: Schedule,
    pub steps: usize,
    pub channel: ChannelKind,
    pub pfr: PfrParams,
    /// Mixed channel: PFR while the step's KL per dimension (bits) is below this.
    pub mixed_threshold: f64,
}

impl Default for DiffcParams {
    /// The defaults implied by the format version ([`crate::container::VERSION`]).
    fn default() -> Self {
        DiffcParams {
            schedule: Schedule::LinearLogSnr {
                lmin: -10.0,
                lmax: 14.0,
            },
            steps: 24,
            channel: ChannelKind::Mixed,
            pfr: PfrParams {
                chunk_kl: 6.0,
                padding: 6,
                max_log2k: 20,
            },
            mixed_threshold: 0.05,
        }
    }
}

/// Above this many dimensions PFR chunks default to 4 bits instead of 6 (keeping 6 padding
/// bits): PFR time is K·D per step, so K drops from 2^12 to 2^10 (a 4× faster encoder). Smaller
/// chunks keep the truncated fraction low at that K, for a few per cent more rate (measured in
/// eval/results/README.md), where 6-bit chunks with 4 padding bits truncated twice as often.
pub const LARGE_IMAGE_DIMS: usize = 3 * 256 * 256;

/// The last step may stop at k/FRACTIONS of the way (bisected to fill the --bpp budget).
pub const FRACTIONS: u32 = 8;
/// Largest encoder trajectory the format allows.
pub const MAX_STEPS: usize = 4096;
/// Largest PFR padding (extra candidate bits per chunk) the format allows.
pub const MAX_PADDING: u32 = 16;
/// Largest PFR candidate count per chunk, as log2.
pub const MAX_LOG2K: u32 = 24;

/// The DiffC body header: where the trajectory stops and which channel carried it.
/// One `write` and one `read`, used by the codec, `diffc info` and the experiments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffcHeader {
    /// Full steps communicated.
    pub stop: usize,
    /// Eighths of the next step also communicated (0..FRACTIONS).
    pub frac: u32,
    pub channel: ChannelKind,
}

impl DiffcHeader {
    pub fn write(&self, out: &mut Vec<u8>) {
        put_varint(
            out,
            ((self.stop as u64 * FRACTIONS as u64) + self.frac as u64) * 3
                + self.channel.to_u8() as u64,
        );
    }

    pub fn read(c: &mut Cursor) -> Result<Self, FormatError> {
        let head = c.varint()?;
        let channel = ChannelKind::from_u8((head % 3) as u8)?;
        let stop = head / 3 / FRACTIONS as u64;
        if stop > MAX_STEPS as u64 {
            return Err(FormatError::corrupt(
                "stopping step",
                format!("{stop} beyond the format's {MAX_STEPS} steps"),
            ));
        }
        Ok(DiffcHeader {
            stop: stop as usize,
            frac: (head / 3 % FRACTIONS as u64) as u32,
            channel,
        })
    }

    /// The stopping point as a (fractional) step count.
    pub fn stop_steps(&self) -> f64 {
        self.stop as f64 + self.frac as f64 / FRACTIONS as f64
    }
}

/// Steps with less KL than this (bits) are not sent: both sides sample them from p.
const FREE_STEP_KL: f64 = 0.01;
/// Where decoding ends (log-SNR).
pub const DECODE_LMAX: f64 = 14.0;

/// Decoder steps from the latent to the image when `--steps` is not given.
///
/// The probability-flow ODE has converged by 24 (64 steps moved two dev24 crops by
/// ≤ 0.01 dB). The ancestral SDE has not: its 24-step samples are smoother than p(x | z_t),
/// 0.7 dB above its 64-step PSNR at 0.05 and 0.1 bpp (`eval/results/diffc-dev24-steps64`),
/// so DiffC-A takes 64, chosen on validation crops.
pub fn default_decode_steps(decoder: DecoderKind) -> usize {
    match decoder {
        DecoderKind::Ode => 24,
        DecoderKind::Sde => 64,
    }
}

impl DiffcParams {
    /// The format version's defaults for an image of `shape` (what a file without params means).
    pub fn for_shape(shape: Shape) -> Self {
        let mut p = Self::default();
        if shape.len() > LARGE_IMAGE_DIMS {
            p.pfr.chunk_kl = 4.0;
        }
        p
    }

    /// Checks every parameter against the range the format allows (the CLI and the file
    /// parser use this one check; the message states the range).
    pub fn validate(&self) -> Result<(), ParamError> {
        let (lmin, lmax) = (self.schedule.lmin(), self.schedule.lmax());
        let ok_range = |l: f64| (-40.0..=40.0).contains(&l);
        if !(lmin < lmax && ok_range(lmin) && ok_range(lmax)) {
            return Err(ParamError::new(
                "the schedule's log-SNR range",
                "lmin < lmax within [-40, 40]",
                format!("[{lmin}, {lmax}]"),
            ));
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return Err(ParamError::new("steps", "in 1..=4096", self.steps));
        }
        if !(self.pfr.chunk_kl > 0.0 && self.pfr.chunk_kl <= 20.0) {
            return Err(ParamError::new(
                "chunk KL",
                "in (0, 20] bits",
                self.pfr.chunk_kl,
            ));
        }
        if self.pfr.padding > MAX_PADDING {
            return Err(ParamError::new(
                "padding",
                "in 0..=16 bits",
                self.pfr.padding,
            ));
        }
        if !(1..=MAX_LOG2K).contains(&self.pfr.max_log2k) {
            return Err(ParamError::new(
                "max log2 K",
                "in 1..=24",
                self.pfr.max_log2k,
            ));
        }
        if !(self.mixed_threshold.is_finite() && (0.0..=100.0).contains(&self.mixed_threshold)) {
            return Err(ParamError::new(
                "mixed threshold",
                "in [0, 100] bits per dimension",
                self.mixed_threshold,
            ));
        }
        Ok(())
    }

    /// The container's params bytes for these parameters.
    pub fn write(&self, b: &mut Vec<u8>) {
        let (kind, lmin, lmax) = match self.schedule {
            Schedule::LinearLogSnr { lmin, lmax } => (0u8, lmin, lmax),
            Schedule::Cosine { lmin, lmax } => (1u8, lmin, lmax),
        };
        b.push(kind);
        put_varint(b, zz((lmin * 16.0).round() as i64));
        put_varint(b, zz((lmax * 16.0).round() as i64));
        put_varint(b, self.steps as u64);
        put_varint(b, (self.pfr.chunk_kl * 16.0).round() as u64);
        b.push(self.pfr.padding as u8);
        b.push(self.pfr.max_log2k as u8);
        put_varint(b, (self.mixed_threshold * 1e4).round() as u64);
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        self.write(&mut b);
        b
    }

    /// Parses the container's params bytes (the channel comes from the body header).
    pub fn read(c: &mut Cursor, channel: ChannelKind) -> Result<Self, FormatError> {
        let kind = c.u8()?;
        let lmin = unzz(c.varint()?) as f64 / 16.0;
        let lmax = unzz(c.varint()?) as f64 / 16.0;
        let schedule = match kind {
            0 => Schedule::LinearLogSnr { lmin, lmax },
            1 => Schedule::Cosine { lmin, lmax },
            _ => {
                return Err(FormatError::corrupt(
                    "schedule",
                    format!("unknown kind {kind}"),
                ));
            }
        };
        let steps = usize::try_from(c.varint()?).unwrap_or(usize::MAX);
        let chunk_kl = c.varint()? as f64 / 16.0;
        let padding = c.u8()? as u32;
        let max_log2k = c.u8()? as u32;
        let mixed_threshold = c.varint()? as f64 / 1e4;
        let p = DiffcParams {
            schedule,
            steps,
            channel,
            pfr: PfrParams {
                chunk_kl,
                padding,
                max_log2k,
            },
            mixed_threshold,
        };
        p.validate()
            .map_err(|e| FormatError::corrupt("DiffC parameters", e))?;
        Ok(p)
    }

    /// Parses the container's params block: the parameters, then the [`SpaceTag`] of a
    /// latent-space file (pixels when none follows).
    pub fn read_block(bytes: &[u8], channel: ChannelKind) -> Result<(Self, SpaceTag), FormatError> {
        let mut c = Cursor::new(bytes);
        let params = Self::read(&mut c, channel)?;
        let tag = SpaceTag::read(&mut c)?;
        if !c.at_end() {
            return Err(FormatError::corrupt("DiffC parameters", "trailing bytes"));
        }
        Ok((params, tag))
    }

    fn from_bytes(bytes: &[u8], channel: ChannelKind) -> Result<Self, FormatError> {
        let mut c = Cursor::new(bytes);
        let p = Self::read(&mut c, channel)?;
        if !c.rest().is_empty() {
            return Err(FormatError::corrupt("DiffC parameters", "trailing bytes"));
        }
        Ok(p)
    }

    /// Rounds parameters to what the file can carry, so encoder and decoder agree.
    pub fn canonical(&self) -> Self {
        Self::from_bytes(&self.to_bytes(), self.channel).unwrap_or_else(|_| self.clone())
    }

    /// Which channel carries a step with `kl_bits` over `dims` dimensions.
    pub(crate) fn step_channel(&self, kl_bits: f64, dims: usize) -> ChannelKind {
        match self.channel {
            ChannelKind::Mixed if kl_bits / (dims as f64) < self.mixed_threshold => {
                ChannelKind::Pfr
            }
            ChannelKind::Mixed => ChannelKind::Uq,
            k => k,
        }
    }
}

fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
fn unzz(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A checked DiffC file, before any model work.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The image's shape (the container's) and its latent's (the space's).
    pub image: Shape,
    pub latent: Shape,
    pub header: DiffcHeader,
    pub params: DiffcParams,
    pub seed: u64,
    pub payload: Vec<u8>,
}

/// The communicated latent a decoder rebuilt, bit-identical to the encoder's.
#[derive(Clone, Debug)]
pub struct Latent {
    pub z: Vec<f32>,
    /// Its log-SNR.
    pub logsnr: f64,
    pub image: Shape,
    pub latent: Shape,
    pub params: DiffcParams,
    pub seed: u64,
}

/// One communicated step, as seen by the encoder (for experiments and tests).
#[derive(Clone, Debug)]
pub struct StepRecord {
    pub step: usize,
    /// log-SNR reached after the step.
    pub logsnr: f64,
    /// True KL of the step (bits) and the channel that carried it (None: free step).
    pub kl_bits: f64,
    pub channel: Option<ChannelKind>,
    /// The whole file had the encoder stopped after this step.
    pub file: Vec<u8>,
    /// z after this step (only when tracing latents).
    pub z: Option<Vec<f32>>,
}

/// Where a byte budget cut the trajectory: the bisected partial step, or the last full step
/// when not even an eighth of the overflowing step fits (`partial` false), and the encoder
/// seconds a lone encode for that budget would have taken.
#[derive(Clone, Debug)]
struct Cut {
    record: StepRecord,
    partial: bool,
    seconds: f64,
}

/// The DiffC codec over a denoiser.
pub struct DiffC {
    pub model: Arc<dyn Denoiser>,
    /// Where the trajectory runs ([`Pixels`] unless the model is a latent one).
    pub space: Arc<dyn Space>,
    pub params: DiffcParams,
    /// When `params` are the format defaults, adapt them to each image's size
    /// ([`DiffcParams::for_shape`]); false: use `params` exactly as set (the CLI, which already
    /// applied the size rule, so an explicit `--chunk-kl 6` on a large image stays 6).
    pub shape_defaults: bool,
    pub seed: u64,
    pub scorer: Scorer,
    /// Count truncated PFR chunks (experiments; 8× slower PFR).
    pub diagnose: bool,
    pub progress: bool,
    pub ode_solver: OdeSolver,
    /// Log-SNR where reconstruction ends with the model's x̂ (`DECODE_LMAX`; experiments
    /// that compare with theory for exact samples go further, where the final x̂ is exact).
    pub decode_lmax: f64,
    pub pfr_stats: Arc<std::sync::Mutex<PfrStats>>,
}

impl DiffC {
    /// DiffC in pixel space over `model`.
    pub fn new(model: Arc<dyn Denoiser>) -> Self {
        Self::with_space(model, Arc::new(Pixels))
    }

    /// DiffC over `model` in `space` (the space the model denoises in).
    pub fn with_space(model: Arc<dyn Denoiser>, space: Arc<dyn Space>) -> Self {
        DiffC {
            model,
            space,
            params: DiffcParams::default(),
            shape_defaults: true,
            seed: 0,
            scorer: Scorer::Fast,
            diagnose: false,
            progress: false,
            ode_solver: OdeSolver::DpmPp2m,
            decode_lmax: DECODE_LMAX,
            pfr_stats: Default::default(),
        }
    }

    /// The parameters this codec uses for a latent of `shape`: the format's defaults for that
    /// shape, unless the codec was given its own (`shape_defaults` false).
    pub fn params_for(&self, shape: Shape) -> DiffcParams {
        if self.shape_defaults
            && self.params
                == (DiffcParams {
                    channel: self.params.channel,
                    ..DiffcParams::default()
                })
        {
            DiffcParams {
                channel: self.params.channel,
                ..DiffcParams::for_shape(shape)
            }
        } else {
            self.params.canonical()
        }
    }

    fn pfr(&self, params: &DiffcParams) -> Pfr {
        Pfr {
            params: params.pfr,
            scorer: self.scorer,
            diagnose: self.diagnose,
            stats: self.pfr_stats.clone(),
        }
    }

    /// The file of an image of `shape` (its latent of `latent`) for `stop` full steps plus
    /// `frac`/FRACTIONS of the next one.
    fn file(
        &self,
        shape: Shape,
        latent: Shape,
        params: &DiffcParams,
        stop: usize,
        frac: u32,
        payload: &[u8],
    ) -> File {
        let mut body = Vec::with_capacity(payload.len() + 4);
        DiffcHeader {
            stop,
            frac,
            channel: params.channel,
        }
        .write(&mut body);
        body.extend_from_slice(payload);
        let defaults = DiffcParams {
            channel: params.channel,
            ..DiffcParams::for_shape(latent)
        };
        let tag = self.space.tag(latent);
        let params = (*params != defaults || tag != SpaceTag::Pixels).then(|| {
            let mut b = params.to_bytes();
            tag.write(&mut b);
            b
        });
        File {
            codec: CodecId::DiffC,
            model_fp: self.model.fingerprint() as u16,
            channels: shape.c as u8,
            width: shape.w as u32,
            height: shape.h as u32,
            seed: self.seed,
            params,
            body,
        }
    }

    /// Encodes, returning the records of every communicated step; the last record's file
    /// is the output. `trace_z` keeps each step's latent.
    pub fn encode_trace(
        &self,
        img: &Image,
        target: RateTarget,
        trace_z: bool,
    ) -> Result<Vec<StepRecord>> {
        let budgets = match target {
            RateTarget::Bpp(b) => vec![bpp_budget_bytes(b, img.shape)?],
            _ => vec![],
        };
        let (mut records, cuts, _) = self.trajectory(img, target, &budgets, trace_z)?;
        if let Some(Some(Cut {
            record,
            partial: true,
            ..
        })) = cuts.into_iter().next()
        {
            records.push(record);
        }
        Ok(records)
    }

    /// The encoder's loop. Communicates steps until `stop` (a log-SNR, a step count, or the
    /// end of the schedule) or until every byte budget in `budgets` has been cut. A budget is
    /// cut at the first step whose file would overflow it, by bisecting for the largest fraction
    /// of that step that fits. Returns the full steps' records, per budget its cut (None: the
    /// budget held the whole trajectory), and the seconds of the full steps alone.
    fn trajectory(
        &self,
        img: &Image,
        stop: RateTarget,
        budgets: &[usize],
        trace_z: bool,
    ) -> Result<(Vec<StepRecord>, Vec<Option<Cut>>, f64)> {
        let t0 = std::time::Instant::now();
        let image = img.shape;
        let shape = self.space.latent_shape(image)?;
        let x = self.space.to_latent(img)?;
        self.params.validate()?;
        let params = self.params_for(shape);
        let grid = params.schedule.grid(params.steps);
        let d = shape.len();
        let mut z = vec![0f32; d];
        Stream::new(self.seed, Purpose::InitLatent, 0, 0, 0).fill_normal(&mut z);
        let mut w = Writer::new();
        let mut codes: Vec<u8> = Vec::new();
        let empty = self.file(image, shape, &params, 0, 0, &[]).to_bytes();
        for &b in budgets {
            if empty.len() > b {
                return Err(Error::Unsupported(format!(
                    "a {}-byte budget cannot hold even the {}-byte header; raise --bpp",
                    b,
                    empty.len()
                )));
            }
        }
        let mut records = vec![StepRecord {
            step: 0,
            logsnr: grid[0],
            kl_bits: 0.0,
            channel: None,
            file: empty,
            z: trace_z.then(|| z.clone()),
        }];
        let mut cuts: Vec<Option<Cut>> = vec![None; budgets.len()];
        let mut open: Vec<usize> = (0..budgets.len()).collect();
        // Seconds spent bisecting for budgets (each lone encode pays only its own).
        let mut bisecting = 0.0;
        let pfr = self.pfr(&params);
        let bar = crate::progress::bar(self.progress, params.steps, "encode");
        // One step λ_t → λ_s under step index i, appended to a copy of the writer.
        let code_table = step_code_table();
        let step = |z: &[f32],
                    i: usize,
                    lt: f64,
                    ls: f64,
                    prev: u8,
                    w: &mut Writer|
         -> Result<(Vec<f32>, u8, f64, Option<ChannelKind>)> {
            let (mu_p, _, c) = reverse_mean(&*self.model, z, shape, lt, ls)?;
            let sd = proposal_sd(&*self.model, z, shape, lt, &c)?;
            let p = Proposal {
                mu: &mu_p,
                sd: sd.as_deref(),
            };
            let mu_q: Vec<f32> = z
                .iter()
                .zip(&x)
                .map(|(&z, &x)| (c.a * z as f64 + c.b * x as f64) as f32)
                .collect();
            let kl = step_kl(&p, &mu_q, c.std());
            let code = if kl < FREE_STEP_KL { 0 } else { kl_to_code(kl) };
            let ctx = StepCtx {
                seed: self.seed,
                step: i as u32,
                sigma: c.std(),
                kl_bits: code_to_kl(code),
            };
            w.symbol((code as i32 - prev as i32 + 255) as usize, &code_table)?;
            if code == 0 {
                return Ok((free_step(&ctx, &p), 0, kl, None));
            }
            let kind = params.step_channel(ctx.kl_bits, d);
            let z = match kind {
                ChannelKind::Uq => Uq.encode(&ctx, &p, &mu_q, w)?,
                _ => pfr.encode(&ctx, &p, &mu_q, w)?,
            };
            Ok((z, code, kl, Some(kind)))
        };
        for i in 0..params.steps {
            let (lt, ls) = (grid[i], grid[i + 1]);
            match stop {
                RateTarget::LogSnr(l) if ls > l + 1e-9 => break,
                RateTarget::Step(n) if i >= n => break,
                _ => {}
            }
            if !budgets.is_empty() && open.is_empty() {
                break;
            }
            let mut w2 = w.clone();
            let prev = codes.last().copied().unwrap_or(0);
            let (znew, code, kl, used) = step(&z, i, lt, ls, prev, &mut w2)?;
            codes.push(code);
            let file = self
                .file(image, shape, &params, i + 1, 0, &w2.clone().finish())
                .to_bytes();
            let shared_s = t0.elapsed().as_secs_f64() - bisecting;
            codes.pop();
            // Budgets this full step overflows: bisect for the largest fraction of it that fits.
            for k in open.clone() {
                let b = budgets[k];
                if file.len() <= b {
                    continue;
                }
                let t1 = std::time::Instant::now();
                let (mut lo, mut hi, mut best) = (0u32, FRACTIONS, None);
                while hi - lo > 1 {
                    let f = (lo + hi) / 2;
                    let lf = lt + (ls - lt) * f as f64 / FRACTIONS as f64;
                    let mut w3 = w.clone();
                    let (zf, code, kl, used) = step(&z, i, lt, lf, prev, &mut w3)?;
                    codes.push(code);
                    let file = self
                        .file(image, shape, &params, i, f, &w3.finish())
                        .to_bytes();
                    codes.pop();
                    if file.len() > b {
                        hi = f;
                    } else {
                        lo = f;
                        best = Some(StepRecord {
                            step: i + 1,
                            logsnr: lf,
                            kl_bits: kl,
                            channel: used,
                            file,
                            z: trace_z.then_some(zf),
                        });
                    }
                }
                let own = t1.elapsed().as_secs_f64();
                bisecting += own;
                let seconds = shared_s + own;
                cuts[k] = Some(match best {
                    Some(record) => Cut {
                        record,
                        partial: true,
                        seconds,
                    },
                    None => Cut {
                        record: records.last().unwrap().clone(),
                        partial: false,
                        seconds,
                    },
                });
                open.retain(|&o| o != k);
            }
            if !budgets.is_empty() && open.is_empty() {
                break;
            }
            codes.push(code);
            w = w2;
            z = znew;
            records.push(StepRecord {
                step: i + 1,
                logsnr: ls,
                kl_bits: kl,
                channel: used,
                file,
                z: trace_z.then(|| z.clone()),
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok((records, cuts, t0.elapsed().as_secs_f64() - bisecting))
    }

    /// Parses and checks a file (container, header, params, model) before any model work,
    /// within the default decode limits ([`super::DEFAULT_MAX_PIXELS`]).
    pub fn parse(&self, bytes: &[u8]) -> Result<Parsed> {
        self.parse_within(bytes, super::DEFAULT_MAX_PIXELS)
    }

    /// [`DiffC::parse`] for files of at most `max_pixels` pixels whose trajectory passes
    /// [`super::check_trajectory`].
    pub fn parse_within(&self, bytes: &[u8], max_pixels: u64) -> Result<Parsed> {
        let f = File::from_bytes(bytes)?;
        f.codec.expect(CodecId::DiffC)?;
        super::check_pixels(f.width, f.height, max_pixels)?;
        if f.model_fp != self.model.fingerprint() as u16 {
            return Err(FormatError::WrongModel {
                what: "model",
                file_fp: f.model_fp as u64,
                name: self.model.name().to_string(),
                model_fp: self.model.fingerprint() as u16 as u64,
            }
            .into());
        }
        if f.channels != 3 {
            return Err(FormatError::corrupt(
                "channels",
                format!("DiffC files hold 3, header says {}", f.channels),
            )
            .into());
        }
        let image = Shape::new(3, f.height as usize, f.width as usize);
        let latent = self.space.latent_shape(image)?;
        let mut cur = Cursor::new(&f.body);
        let header = DiffcHeader::read(&mut cur)?;
        let (params, tag) = match &f.params {
            Some(p) => DiffcParams::read_block(p, header.channel)?,
            None => (
                DiffcParams {
                    channel: header.channel,
                    ..DiffcParams::for_shape(latent)
                },
                SpaceTag::Pixels,
            ),
        };
        let ours = self.space.tag(latent);
        if tag != ours {
            return Err(FormatError::WrongSpace {
                file: tag.to_string(),
                name: self.model.name().to_string(),
                model: ours.to_string(),
            }
            .into());
        }
        if header.stop > params.steps || (header.stop == params.steps && header.frac > 0) {
            return Err(FormatError::corrupt(
                "stopping step",
                format!(
                    "{} beyond the {}-step schedule",
                    header.stop_steps(),
                    params.steps
                ),
            )
            .into());
        }
        let payload_start = cur.pos;
        let parsed = Parsed {
            image,
            latent,
            header,
            params,
            seed: f.seed,
            payload: f.body[payload_start..].to_vec(),
        };
        check_limits(&parsed, max_pixels)?;
        Ok(parsed)
    }

    /// Parses and checks a file, rebuilding the communicated latent, within the default
    /// decode limits ([`super::DEFAULT_MAX_PIXELS`]).
    pub fn decode_latent(&self, bytes: &[u8]) -> Result<Latent> {
        self.decode_latent_within(bytes, super::DEFAULT_MAX_PIXELS)
    }

    /// [`DiffC::decode_latent`] for files of at most `max_pixels` pixels, whose trajectory
    /// passes [`super::check_trajectory`]: larger ones are refused before the latent is
    /// allocated, and a step whose UQ tables would exceed [`MAX_UQ_SCALE`] before they are built.
    pub fn decode_latent_within(&self, bytes: &[u8], max_pixels: u64) -> Result<Latent> {
        let parsed = self.parse_within(bytes, max_pixels)?;
        let Parsed {
            image,
            latent: shape,
            header:
                DiffcHeader {
                    stop,
                    frac,
                    channel: _,
                },
            params,
            seed,
            payload,
        } = parsed;
        let n_steps = stop + (frac > 0) as usize;
        let mut r = Reader::new(&payload)?;
        let code_table = step_code_table();
        let mut grid = params.schedule.grid(params.steps);
        grid.truncate(stop + 1);
        if frac > 0 {
            let (lt, ls) = (grid[stop], params.schedule.grid(params.steps)[stop + 1]);
            grid.push(lt + (ls - lt) * frac as f64 / FRACTIONS as f64);
        }
        let d = shape.len();
        let mut z = vec![0f32; d];
        Stream::new(seed, Purpose::InitLatent, 0, 0, 0).fill_normal(&mut z);
        let me = DiffC {
            seed,
            ..self.shallow()
        };
        let pfr = me.pfr(&params);
        let bar = crate::progress::bar(self.progress, n_steps, "latent");
        let mut code = 0u8;
        for i in 0..n_steps {
            let delta = r.symbol(&code_table)? as i32 - 255;
            code = u8::try_from(code as i32 + delta)
                .map_err(|_| FormatError::corrupt("payload", "bad step KL code"))?;
            check_step_kl(code, d, &params)?;
            let (mu_p, _, c) = reverse_mean(&*self.model, &z, shape, grid[i], grid[i + 1])?;
            let sd = proposal_sd(&*self.model, &z, shape, grid[i], &c)?;
            let p = Proposal {
                mu: &mu_p,
                sd: sd.as_deref(),
            };
            let ctx = StepCtx {
                seed,
                step: i as u32,
                sigma: c.std(),
                kl_bits: code_to_kl(code),
            };
            z = if code == 0 {
                free_step(&ctx, &p)
            } else {
                match params.step_channel(ctx.kl_bits, d) {
                    ChannelKind::Uq => Uq.decode(&ctx, &p, &mut r)?,
                    _ => pfr.decode(&ctx, &p, &mut r)?,
                }
            };
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(Latent {
            logsnr: grid[grid.len() - 1],
            z,
            image,
            latent: shape,
            params,
            seed,
        })
    }

    fn shallow(&self) -> DiffC {
        DiffC {
            model: self.model.clone(),
            space: self.space.clone(),
            params: self.params.clone(),
            shape_defaults: self.shape_defaults,
            seed: self.seed,
            scorer: self.scorer,
            diagnose: false,
            progress: self.progress,
            ode_solver: self.ode_solver,
            decode_lmax: self.decode_lmax,
            pfr_stats: Default::default(),
        }
    }

    /// Denoises a latent at log-SNR `l` to an image (in the model's space) with the chosen
    /// decoder, at the realism `opts.realism`: R = 0 is the posterior mean x̂(z_t) (one model
    /// call, no decoder run), R = 1 the decoder's output, in between
    /// [`super::realism_blend`] of the two.
    pub fn reconstruct(
        &self,
        z: &[f32],
        l: f64,
        shape: Shape,
        opts: &DecodeOptions,
        seed: u64,
    ) -> Result<Vec<f32>> {
        let mut v = self.reconstruct_realisms(z, l, shape, opts, seed, &[opts.realism()?])?;
        Ok(v.pop().expect("one realism"))
    }

    /// [`DiffC::reconstruct`] at each realism in `rs` (`opts.realism` ignored), the decoder
    /// run and x̂ each computed at most once.
    pub fn reconstruct_realisms(
        &self,
        z: &[f32],
        l: f64,
        shape: Shape,
        opts: &DecodeOptions,
        seed: u64,
        rs: &[f64],
    ) -> Result<Vec<Vec<f32>>> {
        super::blend_ends(
            rs,
            || Ok(self.model.predict_x(z, shape, l)?),
            || self.sample(z, l, shape, opts, seed),
        )
    }

    /// The decoder's sample from a latent at log-SNR `l` (realism 1).
    fn sample(
        &self,
        z: &[f32],
        l: f64,
        shape: Shape,
        opts: &DecodeOptions,
        seed: u64,
    ) -> Result<Vec<f32>> {
        let steps = opts
            .steps
            .unwrap_or_else(|| default_decode_steps(opts.decoder))
            .max(1);
        let lmax = self.decode_lmax.max(l);
        if l >= lmax - 1e-9 {
            return Ok(self.model.predict_x(z, shape, l)?);
        }
        let grid = logsnr_grid(l, lmax, steps);
        let bar = crate::progress::bar(
            opts.progress,
            steps,
            match opts.decoder {
                DecoderKind::Sde => "decode (SDE)",
                DecoderKind::Ode => "decode (ODE)",
            },
        );
        let mut tick = || bar.inc(1);
        let x = match opts.decoder {
            DecoderKind::Sde => sample_sde(&*self.model, z, shape, &grid, seed, &mut tick)?,
            DecoderKind::Ode => {
                sample_ode(&*self.model, z, shape, &grid, self.ode_solver, &mut tick)?
            }
        };
        bar.finish_and_clear();
        Ok(x)
    }
}

/// Largest UQ prior scale s (in units of the step width Δ) a decoder builds tables for: a
/// step's tables hold 32 × (16·s + 5) entries and cost about 500·s erfc calls, so a step
/// whose KL code asks for more (a KL of 6·s²/ln 2 ≈ 35,000 bits per dimension, far beyond
/// what an image's step carries: the whole trajectory carries under 40 bits per dimension)
/// is corruption, refused before its tables are built.
pub const MAX_UQ_SCALE: f64 = 64.0;

/// Checks a parsed file against the decode limits: its pixels and its trajectory's work.
pub fn check_limits(p: &Parsed, max_pixels: u64) -> Result<(), FormatError> {
    super::check_pixels(p.image.w as u32, p.image.h as u32, max_pixels)?;
    let steps = p.header.stop as u64 + (p.header.frac > 0) as u64;
    super::check_trajectory(p.image.pixels() as u64, steps, max_pixels)
}

/// Refuses a step whose KL `code` over `dims` dimensions would make its UQ tables larger than
/// [`MAX_UQ_SCALE`] allows (a PFR step's cost does not grow with its KL: its chunk count is
/// at most `dims` and its decoder draws one candidate per chunk).
pub(crate) fn check_step_kl(
    code: u8,
    dims: usize,
    params: &DiffcParams,
) -> Result<(), FormatError> {
    let kl = code_to_kl(code);
    if code == 0 || params.step_channel(kl, dims) != ChannelKind::Uq {
        return Ok(());
    }
    let s = crate::channel::uq::prior_scale(kl, dims);
    if s > MAX_UQ_SCALE {
        return Err(FormatError::corrupt(
            "payload",
            format!(
                "a UQ step of {kl:.0} bits over {dims} dimensions (prior scale {s:.0} > {MAX_UQ_SCALE})"
            ),
        ));
    }
    Ok(())
}

/// Prior of the change of the step-KL code from one step to the next (range-coded
/// before each step, ~2–3 bits instead of a byte).
/// The byte budget of a `--bpp` target for an image of `shape`.
pub(crate) fn bpp_budget_bytes(bpp: f64, shape: Shape) -> Result<usize> {
    if !(bpp > 0.0 && bpp.is_finite()) {
        return Err(ParamError::new("--bpp", "a positive number", bpp).into());
    }
    Ok((bpp * shape.pixels() as f64 / 8.0)
        .floor()
        .min(usize::MAX as f64 / 2.0) as usize)
}

pub(crate) fn step_code_table() -> crate::entropy::Table {
    let w: Vec<f64> = (-255i32..=255)
        .map(|d| libm::exp(-(d.abs() as f64) / 3.0) + 1e-7)
        .collect();
    crate::entropy::Table::from_weights(&w)
}

/// An uncommunicated step: z_s ~ p from shared noise.
fn free_step(ctx: &StepCtx, p: &Proposal) -> Vec<f32> {
    let mut e = vec![0f32; p.mu.len()];
    Stream::new(ctx.seed, Purpose::FreeStep, ctx.step, 0, 0).fill_normal(&mut e);
    e.iter()
        .enumerate()
        .map(|(i, &e)| p.point(i, ctx.sigma, e))
        .collect()
}

impl Codec for DiffC {
    fn name(&self) -> &str {
        "diffc"
    }
    fn encode(&self, img: &Image, target: RateTarget) -> Result<Vec<u8>> {
        let recs = self.encode_trace(img, target, false)?;
        Ok(recs
            .into_iter()
            .last()
            .expect("at least the empty record")
            .file)
    }
    /// Encodes `img` once for several `--bpp` targets: one file per target, each identical to
    /// what [`Codec::encode`] writes for that target alone, with the seconds that a lone encode
    /// would have spent (the shared steps up to its cut plus its own bisection). The trajectory is
    /// shared because a step's sample does not depend on the budget, so the encoder pays for the
    /// highest target's steps once instead of for every target.
    fn encode_targets(&self, img: &Image, targets: &[f64]) -> Result<Vec<(Vec<u8>, f64)>> {
        let budgets = targets
            .iter()
            .map(|&b| bpp_budget_bytes(b, img.shape))
            .collect::<Result<Vec<_>>>()?;
        let (records, cuts, seconds) =
            self.trajectory(img, RateTarget::Bpp(f64::INFINITY), &budgets, false)?;
        let last = &records.last().expect("at least the empty record").file;
        Ok(cuts
            .into_iter()
            .map(|c| match c {
                Some(Cut {
                    record, seconds, ..
                }) => (record.file, seconds),
                None => (last.clone(), seconds),
            })
            .collect())
    }
    fn decode(&self, bytes: &[u8], opts: &DecodeOptions) -> Result<Image> {
        super::decode_one_realism(self, bytes, opts)
    }
    fn decode_realisms(
        &self,
        bytes: &[u8],
        opts: &DecodeOptions,
        rs: &[f64],
    ) -> Result<Vec<Image>> {
        for &r in rs {
            super::check_realism(r)?;
        }
        let lat = self.decode_latent_within(bytes, opts.max_pixels)?;
        let me = DiffC {
            progress: opts.progress,
            ..self.shallow()
        };
        me.reconstruct_realisms(&lat.z, lat.logsnr, lat.latent, opts, lat.seed, rs)?
            .into_iter()
            .map(|x| self.space.to_image(x, lat.latent, lat.image))
            .collect()
    }
}
