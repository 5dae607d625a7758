//! Truncating DiffC files without the model: a prefix of a file's trajectory is a lower-rate
//! file of the same image.
//!
//! A DiffC payload is one range-coded stream of, per step, the change of the step's quantised
//! KL code and then the channel's symbols (PFR candidate indices under a Zipf prior from the
//! chunk plan, UQ integers under Gaussian tables). With the equal-variance proposal, which
//! every model `diffc` loads by name uses (only the exact-Gaussian library models report a
//! posterior variance), each of those tables depends only on the transmitted KL codes, the
//! dimensions and the seeded streams, never on the model's output. So the symbol stream
//! decodes without the model, and re-encoding the symbols of the first N steps gives exactly
//! the bytes the encoder writes when told to stop after N steps: truncatability costs no bit.
//!
//! A file's last partial step (`DiffcHeader::frac`, eighths of the next step found by the
//! encoder's bisection) is its own shorter step, not a prefix of the full one, so it cannot
//! be cut finer than whole steps: a cut drops it.
use super::diffc::{DiffC, DiffcHeader, DiffcParams, bpp_budget_bytes, step_code_table};
use super::space::SpaceTag;
use crate::channel::{ChannelKind, StepCtx, code_to_kl, pfr, uq};
use crate::container::{CodecId, Cursor, File};
use crate::entropy::{Reader, Writer};
use crate::error::{Error, FormatError, ParamError, Result};
use crate::image_io::Shape;

/// Where to cut a file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cut {
    /// The longest prefix whose whole file is at most this many bits per pixel (the rule the
    /// encoder uses: the first step that would overflow the budget is not sent). A file that
    /// already fits is returned unchanged.
    Bpp(f64),
    /// Keep exactly this many whole steps.
    Step(usize),
}

/// One place a file can be cut: after `step` whole steps the file has `bytes` bytes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct CutPoint {
    pub step: usize,
    pub bytes: usize,
    pub bpp: f64,
}

/// A DiffC file read without its model: the container, the body header and the parameters.
struct Source {
    file: File,
    header: DiffcHeader,
    params: DiffcParams,
    /// The trajectory's dimensions (the latent's shape for latent files).
    dims: usize,
    /// The range-coded payload.
    payload: Vec<u8>,
}

fn read(bytes: &[u8], max_pixels: u64) -> Result<Source> {
    let file = File::from_bytes(bytes)?;
    file.codec.expect(CodecId::DiffC)?;
    super::check_pixels(file.width, file.height, max_pixels)?;
    if file.channels != 3 {
        return Err(FormatError::corrupt(
            "channels",
            format!("DiffC files hold 3, header says {}", file.channels),
        )
        .into());
    }
    let image = Shape::new(3, file.height as usize, file.width as usize);
    let mut cur = Cursor::new(&file.body);
    let header = DiffcHeader::read(&mut cur)?;
    let (params, tag) = match &file.params {
        Some(p) => DiffcParams::read_block(p, header.channel)?,
        None => (
            DiffcParams {
                channel: header.channel,
                ..DiffcParams::for_shape(image)
            },
            SpaceTag::Pixels,
        ),
    };
    let latent = match tag {
        SpaceTag::Pixels => image,
        SpaceTag::SdVae { latent, .. } => latent,
    };
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
    super::check_trajectory(
        image.pixels() as u64,
        header.stop as u64 + (header.frac > 0) as u64,
        max_pixels,
    )?;
    let payload = cur.rest().to_vec();
    Ok(Source {
        dims: latent.len(),
        file,
        header,
        params,
        payload,
    })
}

impl Source {
    fn pixels(&self) -> f64 {
        self.file.width as f64 * self.file.height as f64
    }

    /// The file of the first `stop` whole steps, whose payload is `w`.
    fn prefix_file(&self, stop: usize, w: Writer) -> Vec<u8> {
        let mut body = Vec::new();
        DiffcHeader {
            stop,
            frac: 0,
            channel: self.header.channel,
        }
        .write(&mut body);
        body.extend_from_slice(&w.finish());
        File {
            body,
            ..self.file.clone()
        }
        .to_bytes()
    }

    /// Transcodes the payload's whole steps from the start, calling `visit(n, writer)` after
    /// each prefix of n = 0..=stop steps; `visit` returns false to stop early. Reads exactly
    /// the symbols the decoder reads, so a corrupt payload is an error here too.
    fn walk(&self, mut visit: impl FnMut(usize, &Writer) -> bool) -> Result<()> {
        let mut r = Reader::new(&self.payload)?;
        let mut w = Writer::new();
        let table = step_code_table();
        let mut code = 0u8;
        if !visit(0, &w) {
            return Ok(());
        }
        for i in 0..self.header.stop {
            let s = r.symbol(&table)?;
            code = u8::try_from(code as i32 + s as i32 - 255)
                .map_err(|_| FormatError::corrupt("payload", "bad step KL code"))?;
            w.symbol(s, &table)?;
            super::diffc::check_step_kl(code, self.dims, &self.params)?;
            if code != 0 {
                let ctx = StepCtx {
                    seed: self.file.seed,
                    step: i as u32,
                    // the channels' symbols do not depend on σ under the equal-variance proposal
                    sigma: 1.0,
                    kl_bits: code_to_kl(code),
                };
                match self.params.step_channel(ctx.kl_bits, self.dims) {
                    ChannelKind::Uq => uq::transcode(&ctx, self.dims, &mut r, &mut w)?,
                    _ => pfr::transcode(&self.params.pfr, &ctx, self.dims, &mut r, &mut w)?,
                }
            }
            if !visit(i + 1, &w) {
                break;
            }
        }
        Ok(())
    }
}

/// Where a DiffC file can be cut: the size of every whole-step prefix, from the header-only
/// file (step 0) to the file's last whole step (its partial step, if any, is not a cut point).
pub fn cut_points(bytes: &[u8]) -> Result<Vec<CutPoint>> {
    cut_points_within(bytes, super::DEFAULT_MAX_PIXELS)
}

/// [`cut_points`] of a file of at most `max_pixels` pixels (the decoder's limits,
/// [`super::DecodeOptions::max_pixels`]).
pub fn cut_points_within(bytes: &[u8], max_pixels: u64) -> Result<Vec<CutPoint>> {
    let src = read(bytes, max_pixels)?;
    let mut out = Vec::new();
    src.walk(|n, w| {
        let b = src.prefix_file(n, w.clone()).len();
        out.push(CutPoint {
            step: n,
            bytes: b,
            bpp: b as f64 * 8.0 / src.pixels(),
        });
        true
    })?;
    Ok(out)
}

/// Cuts a DiffC file without its model (see the module's doc): the result is byte for byte
/// the file the encoder writes when stopped after the kept steps. Valid for files of models
/// with the equal-variance proposal, which is every model `diffc` loads by name; a file of a
/// model that reports a posterior variance cannot be cut without that model: use
/// [`DiffC::truncate`], which refuses it.
pub fn truncate(bytes: &[u8], cut: Cut) -> Result<Vec<u8>> {
    truncate_within(bytes, cut, super::DEFAULT_MAX_PIXELS)
}

/// [`truncate`] of a file of at most `max_pixels` pixels.
pub fn truncate_within(bytes: &[u8], cut: Cut, max_pixels: u64) -> Result<Vec<u8>> {
    check_cut(cut)?;
    let src = read(bytes, max_pixels)?;
    let (stop, frac) = (src.header.stop, src.header.frac);
    let keep = match cut {
        Cut::Step(n) => {
            if n > stop {
                return Err(Error::Unsupported(format!(
                    "cannot cut at step {n}: the file holds {} steps",
                    src.header.stop_steps()
                )));
            }
            n
        }
        Cut::Bpp(b) => {
            let budget = bpp_budget_bytes(
                b,
                Shape::new(3, src.file.height as usize, src.file.width as usize),
            )?;
            if bytes.len() <= budget {
                return Ok(bytes.to_vec());
            }
            let mut keep = None;
            src.walk(|n, w| {
                let fits = src.prefix_file(n, w.clone()).len() <= budget;
                if fits {
                    keep = Some(n);
                }
                fits
            })?;
            keep.ok_or_else(|| {
                Error::Unsupported(format!(
                    "a {budget}-byte budget cannot hold even the {}-byte header; raise --bpp",
                    src.prefix_file(0, Writer::new()).len()
                ))
            })?
        }
    };
    if keep == stop && frac == 0 {
        // the whole file: re-encoding would give the same bytes
        return Ok(bytes.to_vec());
    }
    let mut out = None;
    src.walk(|n, w| {
        if n == keep {
            out = Some(src.prefix_file(n, w.clone()));
        }
        n < keep
    })?;
    Ok(out.expect("the walk reaches every whole step"))
}

/// Refuses a bad `--bpp` for a cut before any work.
pub fn check_cut(cut: Cut) -> Result<()> {
    match cut {
        Cut::Bpp(b) if !(b > 0.0 && b.is_finite()) => {
            Err(ParamError::new("--bpp", "a positive number", b).into())
        }
        _ => Ok(()),
    }
}

impl DiffC {
    /// [`truncate`] for a file of this codec's model: refuses a file of another model, and a
    /// model whose proposal has its own variances (the exact-Gaussian models that know their
    /// posterior variance), whose chunk plans and UQ tables depend on the model's output.
    pub fn truncate(&self, bytes: &[u8], cut: Cut) -> Result<Vec<u8>> {
        check_cut(cut)?;
        let parsed = self.parse(bytes)?;
        let z = vec![0f32; parsed.latent.len()];
        let lmin = parsed.params.schedule.lmin();
        if self.model.posterior_var(&z, parsed.latent, lmin).is_some() {
            return Err(Error::Unsupported(format!(
                "cannot truncate a file of '{}' without re-encoding: the model knows its \
                 posterior variance, so its proposal's chunk plans and UQ tables depend on the \
                 model's output at each step",
                self.model.name()
            )));
        }
        truncate(bytes, cut)
    }
}
