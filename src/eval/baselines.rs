//! Classic baselines behind the [`Codec`] surface, each searched over its quality setting
//! to hit a target rate measured from the real file size.
//!
//! - `jpeg`: the `image` crate's baseline JPEG encoder (quality 1–100, JFIF file).
//! - `webp`: Debian `webp` tools, `cwebp -q Q -m 6` / `dwebp` (Q continuous 0–100).
//! - `avif`: Debian `libavif-bin`, `avifenc --min Q --max Q -s 6 -y 420` / `avifdec`
//!   (quantizer 0–63, integer).
//! - `jxl`: Debian `libjxl-tools`, `cjxl -d D -e 7` / `djxl` (distance continuous 0.05–25);
//!   targets below what distance 25 reaches are searched again with `--resampling=4` (then 8),
//!   the codestream's own downsampling (`param` then reads 100·r + p).
//!
//! `eval/setup.sh` installs the Debian tools. The search (see [`search_rate`]) bisects the
//! setting; among the tried settings it keeps the largest file not above the target if that
//! is within 10 % of it, otherwise the one closest to the target in log-rate. A target that
//! cannot be reached shows up as a row whose bpp misses the ±10 % band; the report lists them.
use crate::codec::{Codec, DecodeOptions, RateTarget};
use crate::image_io::{self, Image};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Result of a rate search: the chosen file and the setting that made it.
#[derive(Clone, Debug)]
pub struct Searched {
    pub bytes: Vec<u8>,
    pub param: f64,
}

/// Finds a setting `p ∈ [lo, hi]` (file size increasing with `p`) whose file is as close as
/// possible to `target_bytes`, preferring files not above the target (within −10 %).
/// `integer` restricts `p` to integers; otherwise `iters` bisection steps are made.
pub fn search_rate(
    target_bytes: f64,
    lo: f64,
    hi: f64,
    integer: bool,
    iters: usize,
    mut enc: impl FnMut(f64) -> Result<Vec<u8>>,
) -> Result<Searched> {
    let mut tried: BTreeMap<u64, (f64, Vec<u8>)> = BTreeMap::new();
    let mut eval = |p: f64, tried: &mut BTreeMap<u64, (f64, Vec<u8>)>| -> Result<usize> {
        let key = p.to_bits();
        if let Some((_, b)) = tried.get(&key) {
            return Ok(b.len());
        }
        let b = enc(p)?;
        let n = b.len();
        tried.insert(key, (p, b));
        Ok(n)
    };
    let (mut a, mut b) = (lo, hi);
    let sa = eval(a, &mut tried)?;
    let sb = eval(b, &mut tried)?;
    if (sa as f64) < target_bytes && (sb as f64) > target_bytes {
        let mut i = 0;
        loop {
            let m = if integer {
                ((a + b) / 2.0).floor()
            } else {
                (a + b) / 2.0
            };
            if (integer && b - a <= 1.0) || (!integer && i >= iters) {
                break;
            }
            let sm = eval(m, &mut tried)?;
            if sm as f64 <= target_bytes {
                a = m
            } else {
                b = m
            }
            i += 1;
        }
    }
    let cands: Vec<&(f64, Vec<u8>)> = tried.values().collect();
    let below = cands
        .iter()
        .filter(|(_, bytes)| {
            bytes.len() as f64 <= target_bytes && bytes.len() as f64 >= 0.9 * target_bytes
        })
        .max_by_key(|(_, bytes)| bytes.len());
    let best = match below {
        Some(c) => *c,
        None => *cands
            .iter()
            .min_by(|x, y| {
                let dx = (x.1.len().max(1) as f64 / target_bytes).ln().abs();
                let dy = (y.1.len().max(1) as f64 / target_bytes).ln().abs();
                dx.total_cmp(&dy)
            })
            .expect("at least two settings were tried"),
    };
    Ok(Searched {
        bytes: best.1.clone(),
        param: best.0,
    })
}

fn target_bytes(img: &Image, target: RateTarget) -> Result<f64> {
    match target {
        RateTarget::Bpp(b) if b > 0.0 => Ok(b * img.shape.pixels() as f64 / 8.0),
        other => bail!("baseline codecs take a bits-per-pixel target, got {other:?}"),
    }
}

fn run_tool(cmd: &mut Command) -> Result<()> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().with_context(|| {
        format!("running `{prog}` (install the baseline tools with `sudo bash eval/setup.sh`: Debian webp, libavif-bin, libjxl-tools)")
    })?;
    if !out.status.success() {
        bail!(
            "`{prog}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Encodes through an external tool: writes the PNG, runs `args(png, out)`, reads `out`.
fn external_encode(
    img_png: &[u8],
    ext: &str,
    build: impl Fn(&Path, &Path) -> Command,
) -> Result<Vec<u8>> {
    let dir = crate::interrupt::critical(tempfile::tempdir)?;
    let _reg = crate::interrupt::register(dir.path());
    let inp = dir.path().join("in.png");
    let out = dir.path().join(format!("out.{ext}"));
    std::fs::write(&inp, img_png)?;
    run_tool(&mut build(&inp, &out))?;
    Ok(std::fs::read(&out)?)
}

fn external_decode(
    bytes: &[u8],
    ext: &str,
    build: impl Fn(&Path, &Path) -> Command,
) -> Result<Image> {
    let dir = crate::interrupt::critical(tempfile::tempdir)?;
    let _reg = crate::interrupt::register(dir.path());
    let inp = dir.path().join(format!("in.{ext}"));
    let out = dir.path().join("out.png");
    std::fs::write(&inp, bytes)?;
    run_tool(&mut build(&inp, &out))?;
    image_io::load(&out)
}

/// Which baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    Jpeg,
    Webp,
    Avif,
    Jxl,
}

impl Baseline {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "jpeg" => Baseline::Jpeg,
            "webp" => Baseline::Webp,
            "avif" => Baseline::Avif,
            "jxl" => Baseline::Jxl,
            _ => return None,
        })
    }

    /// Encodes at one setting of the searched parameter (increasing rate with `p`).
    pub fn encode_at(&self, img: &Image, png: &[u8], p: f64) -> Result<Vec<u8>> {
        match self {
            Baseline::Jpeg => {
                use image::ImageEncoder;
                let mut out = Vec::new();
                let q = p.round().clamp(1.0, 100.0) as u8;
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q).write_image(
                    &img.to_rgb8(),
                    img.shape.w as u32,
                    img.shape.h as u32,
                    image::ExtendedColorType::Rgb8,
                )?;
                Ok(out)
            }
            Baseline::Webp => external_encode(png, "webp", |i, o| {
                let mut c = Command::new("cwebp");
                c.args(["-quiet", "-m", "6", "-q", &format!("{p:.4}")])
                    .arg(i)
                    .arg("-o")
                    .arg(o);
                c
            }),
            Baseline::Avif => external_encode(png, "avif", |i, o| {
                let q = (63.0 - p).round().clamp(0.0, 63.0) as u32;
                let mut c = Command::new("avifenc");
                c.args([
                    "-s",
                    "6",
                    "-j",
                    "1",
                    "-y",
                    "420",
                    "--min",
                    &q.to_string(),
                    "--max",
                    &q.to_string(),
                ])
                .arg(i)
                .arg(o);
                c
            }),
            Baseline::Jxl => self.jxl_at(png, p, 1),
        }
    }

    /// `cjxl` at distance `e^{−p}`, with the codestream's own 4× or 8× resampling when
    /// `resampling > 1` (how libjxl reaches rates below its distance range).
    fn jxl_at(&self, png: &[u8], p: f64, resampling: u32) -> Result<Vec<u8>> {
        external_encode(png, "jxl", |i, o| {
            let d = (-p).exp();
            let mut c = Command::new("cjxl");
            c.arg(i).arg(o).args([
                "--quiet",
                "-e",
                "7",
                "-d",
                &format!("{d:.5}"),
                &format!("--resampling={resampling}"),
            ]);
            c
        })
    }

    /// `(lo, hi, integer, bisection steps)` of the searched parameter.
    fn range(&self) -> (f64, f64, bool, usize) {
        match self {
            Baseline::Jpeg => (1.0, 100.0, true, 0),
            Baseline::Webp => (0.0, 100.0, false, 12),
            Baseline::Avif => (0.0, 63.0, true, 0),
            // p = −ln(distance), distance from 25 down to 0.05.
            Baseline::Jxl => (-(25.0f64.ln()), -(0.05f64.ln()), false, 12),
        }
    }

    /// Rate search for a target; returns the chosen file and its setting.
    pub fn search(&self, img: &Image, target: RateTarget) -> Result<Searched> {
        let tb = target_bytes(img, target)?;
        let png = image_io::encode_png(img)?;
        let (lo, hi, int, iters) = self.range();
        let first = search_rate(tb, lo, hi, int, iters, |p| self.encode_at(img, &png, p))?;
        if *self == Baseline::Jxl && first.bytes.len() as f64 > (1.0 + super::RATE_TOLERANCE) * tb {
            // Below its distance range: let the codestream downsample 4× (then 8×).
            // (cjxl 0.7 rejects --resampling=2 although its help lists it.)
            let mut best = first;
            for r in [4u32, 8] {
                let s = search_rate(tb, lo, hi, int, iters, |p| self.jxl_at(&png, p, r))?;
                let err = |b: &Searched| (b.bytes.len().max(1) as f64 / tb).ln().abs();
                if err(&s) < err(&best) {
                    best = Searched {
                        bytes: s.bytes,
                        param: s.param + 100.0 * r as f64,
                    };
                }
                if best.bytes.len() as f64 <= (1.0 + super::RATE_TOLERANCE) * tb {
                    break;
                }
            }
            return Ok(best);
        }
        Ok(first)
    }
}

impl Codec for Baseline {
    fn name(&self) -> &str {
        match self {
            Baseline::Jpeg => "jpeg",
            Baseline::Webp => "webp",
            Baseline::Avif => "avif",
            Baseline::Jxl => "jxl",
        }
    }

    fn encode(&self, img: &Image, target: RateTarget) -> crate::error::Result<Vec<u8>> {
        Ok(self.search(img, target)?.bytes)
    }

    fn decode(&self, bytes: &[u8], _opts: &DecodeOptions) -> crate::error::Result<Image> {
        Ok(self.decode_any(bytes)?)
    }
}

impl Baseline {
    fn decode_any(&self, bytes: &[u8]) -> Result<Image> {
        match self {
            Baseline::Jpeg => image_io::decode_bytes(bytes),
            Baseline::Webp => external_decode(bytes, "webp", |i, o| {
                let mut c = Command::new("dwebp");
                c.arg("-quiet").arg(i).arg("-o").arg(o);
                c
            }),
            Baseline::Avif => external_decode(bytes, "avif", |i, o| {
                let mut c = Command::new("avifdec");
                c.args(["-j", "1"]).arg(i).arg(o);
                c
            }),
            Baseline::Jxl => external_decode(bytes, "jxl", |i, o| {
                let mut c = Command::new("djxl");
                c.arg(i).arg(o).arg("--quiet");
                c
            }),
        }
    }
}
