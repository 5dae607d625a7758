//! The realism–distortion evaluation harness.
//!
//! One *row* = one image × codec × target bpp: the real file size, PSNR, MS-SSIM, timings,
//! and (when a feature network is chosen) the features of the decoded image's patches,
//! stored beside the rows so that FID/KID can be recomputed after merging shards.
//!
//! Output folder layout:
//! - `run.json`: the settings rows depend on (feature network, patch size); a resumed
//!   run or a merge refuses to mix different settings;
//! - `results.csv`: one line per row, appended as rows finish (resumable);
//! - `features/ref/<image>.f32`, `features/<codec>/<target>/<image>.f32`: raw little-endian
//!   `f32` patch features, `n_patches × dim`;
//! - `summary.json`, `report.md`, `report.html`, `<metric>.svg`, `realism_distortion.svg`:
//!   aggregates, recomputed from all rows (unpaired realism: [`realism`]);
//! - `images/original/<image>.png`, `images/<codec>/<target>/<image>.png`, `sheets/<image>.png`:
//!   the pictures and comparison sheets ([`pictures`]; on by default up to 50 images). A
//!   resumed run with pictures re-encodes and decodes the finished rows whose picture is
//!   missing, checking (not rewriting) their numbers.
//!
//! Sharding: `--shard i/n` takes the images whose index in the sorted list is ≡ i (mod n);
//! `merge` unions shard folders (rows and feature files) and recomputes the aggregates,
//! which are then identical to those of a single run (aggregation is over rows sorted by
//! image name, independent of completion order).
pub mod baselines;
pub mod codecs;
pub mod font;
pub mod html;
pub mod pictures;
pub mod realism;
pub mod report;

use crate::codec::{Codec, DecodeOptions, RateTarget};
use crate::image_io::{self, Image};
use crate::metrics::features::{FeatureExtractor, InceptionFeatures, TinyFeatures, patches};
use crate::metrics::fid::Features;
use crate::metrics::{self, inception::Inception};
use anyhow::{Context, Result, anyhow, bail, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// A rate counts as hit when within this relative distance of the target.
pub const RATE_TOLERANCE: f64 = 0.10;

/// Which feature network realism metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum FeatureKind {
    /// FID Inception-v3 (2048-d), patches resized to 299 × 299.
    Inception,
    /// Tiny weight-free 51-d features (tests and smoke runs only; not a realism metric).
    Tiny,
    /// No FID/KID.
    None,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub data: PathBuf,
    pub codecs: Vec<String>,
    pub bpp: Vec<f64>,
    pub out: PathBuf,
    /// `(i, n)`: this shard's index and the shard count.
    pub shard: Option<(usize, usize)>,
    /// Model for the DiffC codecs (`None`: the codec's default).
    pub model: Option<String>,
    pub limit: Option<usize>,
    pub patch: usize,
    pub features: FeatureKind,
    pub inception_weights: Option<PathBuf>,
    /// Keep the decoded pictures (and write comparison sheets): `Some(true)` always,
    /// `Some(false)` never, `None` when the run has at most
    /// [`pictures::DEFAULT_MAX_IMAGES`] images.
    pub save_images: Option<bool>,
    /// Keep only the centred `N × N` crop of each picture.
    pub image_crop: Option<usize>,
    /// A fixed folder of reference images for the unpaired realism protocol (features
    /// computed once and cached under `features/realism-ref/`).
    pub realism_ref: Option<PathBuf>,
    pub jobs: Option<usize>,
    /// The decoders' pixel limit ([`crate::codec::DecodeOptions::max_pixels`]; default
    /// [`crate::codec::DEFAULT_MAX_PIXELS`]): larger images' rows fail with that error.
    pub max_pixels: u64,
    pub progress: bool,
    /// Where the networks (codecs and the feature network) run.
    pub device: crate::device::DeviceKind,
}

/// Settings stored in `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub features: String,
    pub feature_dim: usize,
    pub patch: usize,
}

/// One image × codec × target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub image: String,
    pub codec: String,
    pub target_bpp: f64,
    pub width: usize,
    pub height: usize,
    pub bytes: usize,
    pub bpp: f64,
    pub psnr: f64,
    /// Empty when the image is too small for 5 scales.
    pub ms_ssim: Option<f64>,
    pub enc_s: f64,
    pub dec_s: f64,
}

impl Row {
    pub fn key(&self) -> (String, String, String) {
        (
            self.image.clone(),
            self.codec.clone(),
            fmt_bpp(self.target_bpp),
        )
    }
    pub fn hit(&self) -> bool {
        (self.bpp / self.target_bpp - 1.0).abs() <= RATE_TOLERANCE
    }
}

/// Canonical text of a target rate (file names, keys): Rust's shortest round-trip form.
pub fn fmt_bpp(b: f64) -> String {
    format!("{b}")
}

/// Images (`.png`, `.jpg`, `.jpeg`) in a folder, sorted by file name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading data folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Parses `i/n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("--shard wants i/n, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (i.trim().parse()?, n.trim().parse()?);
    ensure!(n >= 1 && i < n, "--shard {i}/{n}: need 0 ≤ i < n");
    Ok((i, n))
}

fn image_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn ref_feature_path(out: &Path, image: &str) -> PathBuf {
    out.join("features")
        .join("ref")
        .join(format!("{image}.f32"))
}

pub fn row_feature_path(out: &Path, codec: &str, target: f64, image: &str) -> PathBuf {
    out.join("features")
        .join(codec)
        .join(fmt_bpp(target))
        .join(format!("{image}.f32"))
}

pub fn write_features(path: &Path, f: &Features) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let bytes: Vec<u8> = f.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    image_io::write_atomic(path, &bytes)
}

pub fn read_features(path: &Path, dim: usize) -> Result<Features> {
    let b = std::fs::read(path).with_context(|| format!("reading features {}", path.display()))?;
    ensure!(
        b.len() % 4 == 0,
        "truncated feature file {}",
        path.display()
    );
    let v: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Features::new(dim, v).with_context(|| format!("feature file {}", path.display()))
}

/// Reads `results.csv` (missing file: no rows).
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // A last line without its newline was cut short by a kill (SIGKILL; SIGINT waits for the
    // line): drop it even if what is left parses, since a number in it may be cut short.
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        eprintln!(
            "warning: dropping the unterminated last line of {}",
            path.display()
        );
        bytes.truncate(keep);
    }
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    let mut rows = Vec::new();
    for rec in r.deserialize() {
        match rec {
            Ok(row) => rows.push(row),
            // A line cut short by a kill is dropped (and recomputed on resume).
            Err(e) => eprintln!(
                "warning: skipping unreadable line in {}: {e}",
                path.display()
            ),
        }
    }
    Ok(rows)
}

/// Writes all rows (sorted) to `results.csv`.
pub fn write_rows(path: &Path, rows: &[Row]) -> Result<()> {
    if rows.is_empty() {
        return image_io::write_atomic(path, csv_header().as_bytes());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    image_io::write_atomic(path, &w.into_inner().map_err(|e| anyhow!("{e}"))?)
}

fn csv_header() -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(Row {
        image: String::new(),
        codec: String::new(),
        target_bpp: 0.0,
        width: 0,
        height: 0,
        bytes: 0,
        bpp: 0.0,
        psnr: 0.0,
        ms_ssim: None,
        enc_s: 0.0,
        dec_s: 0.0,
    })
    .unwrap();
    let s = String::from_utf8(w.into_inner().unwrap()).unwrap();
    s.lines().next().unwrap().to_string() + "\n"
}

fn row_line(r: &Row) -> Result<String> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(r)?;
    Ok(String::from_utf8(
        w.into_inner().map_err(|e| anyhow!("{e}"))?,
    )?)
}

fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (a.codec.as_str(), a.target_bpp, a.image.as_str())
            .partial_cmp(&(b.codec.as_str(), b.target_bpp, b.image.as_str()))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

fn make_extractor(
    kind: FeatureKind,
    weights: Option<&Path>,
    device: &candle_core::Device,
) -> Result<Option<Box<dyn FeatureExtractor>>> {
    Ok(match kind {
        FeatureKind::None => None,
        FeatureKind::Tiny => Some(Box::new(TinyFeatures)),
        FeatureKind::Inception => {
            let path = weights
                .map(PathBuf::from)
                .unwrap_or_else(metrics::inception::default_weights_path);
            let net = Inception::load(&path, device)?;
            Some(Box::new(InceptionFeatures { net, batch: 4 }))
        }
    })
}

fn check_run_info(out: &Path, info: &RunInfo) -> Result<()> {
    let p = out.join("run.json");
    if p.exists() {
        let old: RunInfo =
            serde_json::from_slice(&std::fs::read(&p)?).context("reading run.json")?;
        if &old != info {
            bail!(
                "{} holds a run with different settings ({old:?}, now {info:?}): use another --out",
                out.display()
            );
        }
    } else {
        image_io::write_atomic(&p, &serde_json::to_vec_pretty(info)?)?;
    }
    Ok(())
}

/// One row to compute: (codec index, target, redo only for the picture).
type Job = (usize, f64, bool);

/// Runs (or resumes) an evaluation and writes the aggregates.
pub fn run(cfg: &EvalConfig) -> Result<()> {
    ensure!(!cfg.codecs.is_empty(), "no codecs given");
    ensure!(
        !cfg.bpp.is_empty() && cfg.bpp.iter().all(|b| *b > 0.0),
        "targets must be positive bpp values"
    );
    ensure!(cfg.patch >= 8, "--patch must be at least 8");
    let device = cfg.device.open()?;
    let mut images = list_images(&cfg.data)?;
    if images.is_empty() {
        bail!("no .png/.jpg images in {}", cfg.data.display());
    }
    if let Some(l) = cfg.limit {
        images.truncate(l);
    }
    if let Some((i, n)) = cfg.shard {
        images = images
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i)
            .map(|(_, p)| p)
            .collect();
    }
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;

    let extractor = make_extractor(cfg.features, cfg.inception_weights.as_deref(), &device)?;
    let info = RunInfo {
        features: extractor
            .as_ref()
            .map(|e| e.name())
            .unwrap_or_else(|| "none".into()),
        feature_dim: extractor.as_ref().map(|e| e.dim()).unwrap_or(0),
        patch: cfg.patch,
    };
    check_run_info(&cfg.out, &info)?;
    let want_images = cfg
        .save_images
        .unwrap_or(images.len() <= pictures::DEFAULT_MAX_IMAGES);
    if let (Some(dir), Some(ex)) = (&cfg.realism_ref, &extractor) {
        realism::prepare_ref(&cfg.out, dir, ex.as_ref(), cfg.patch)?;
    } else if cfg.realism_ref.is_some() {
        eprintln!("warning: --realism-ref needs a feature network (--features); ignored");
    }

    let codecs: Vec<(String, codecs::Made)> = cfg
        .codecs
        .iter()
        .map(|n| {
            codecs::make(n, cfg.model.as_deref(), &device).map(|mut m| {
                m.opts.max_pixels = cfg.max_pixels;
                (n.clone(), m)
            })
        })
        .collect::<Result<_>>()?;

    let csv_path = cfg.out.join("results.csv");
    let existing = read_rows(&csv_path)?;
    let done: BTreeSet<(String, String, String)> = existing
        .iter()
        .filter(|r| {
            extractor.is_none()
                || row_feature_path(&cfg.out, &r.codec, r.target_bpp, &r.image).exists()
        })
        .map(|r| r.key())
        .collect();
    // Rewrite the file (drops rows whose features are missing, and any torn last line).
    let mut keep: Vec<Row> = existing
        .into_iter()
        .filter(|r| done.contains(&r.key()))
        .collect();
    sort_rows(&mut keep);
    let mut uniq = BTreeSet::new();
    keep.retain(|r| uniq.insert(r.key()));
    write_rows(&csv_path, &keep)?;
    let old_rows: BTreeMap<(String, String, String), Row> =
        keep.into_iter().map(|r| (r.key(), r)).collect();

    // Jobs: (codec, target, redo). A redo job re-encodes and re-decodes a finished row only
    // for its missing picture (deterministic codecs: the row's numbers are checked, not
    // rewritten).
    let mut todo: Vec<(usize, Vec<Job>)> = Vec::new();
    let mut total = 0u64;
    let mut n_redo = 0usize;
    for (ii, p) in images.iter().enumerate() {
        let name = image_name(p);
        let mut jobs = Vec::new();
        for (ci, (cname, _)) in codecs.iter().enumerate() {
            for &t in &cfg.bpp {
                if !done.contains(&(name.clone(), cname.clone(), fmt_bpp(t))) {
                    jobs.push((ci, t, false));
                } else if want_images && !pictures::decoded_path(&cfg.out, cname, t, &name).exists()
                {
                    jobs.push((ci, t, true));
                    n_redo += 1;
                }
            }
        }
        let need_ref = extractor.is_some() && !ref_feature_path(&cfg.out, &name).exists();
        let need_orig = want_images && !pictures::original_path(&cfg.out, &name).exists();
        if !jobs.is_empty() || need_ref || need_orig {
            total += jobs.len() as u64;
            todo.push((ii, jobs));
        }
    }

    if n_redo > 0 {
        eprintln!("{n_redo} finished row(s) lack their picture: re-encoding and decoding them");
    }
    let bar = if cfg.progress {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} rows (eta {eta}) {msg}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    let writer = Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&csv_path)
            .with_context(|| format!("opening {}", csv_path.display()))?,
    );
    let errors = Mutex::new(Vec::<String>::new());

    let work = || {
        todo.par_iter().for_each(|(ii, jobs)| {
            let path = &images[*ii];
            let name = image_name(path);
            let res = (|| -> Result<()> {
                let img = image_io::load(path)?;
                let op = pictures::original_path(&cfg.out, &name);
                if want_images && !op.exists() {
                    std::fs::create_dir_all(op.parent().unwrap())?;
                    image_io::save_png(&pictures::crop_centre(&img, cfg.image_crop), &op)?;
                }
                if let Some(ex) = &extractor {
                    let rp = ref_feature_path(&cfg.out, &name);
                    if !rp.exists() {
                        write_features(&rp, &ex.extract(&patches(&img, cfg.patch))?)?;
                    }
                }
                let mut enc_cache: BTreeMap<(String, u64), (Vec<u8>, f64)> = BTreeMap::new();
                // One encode per encoder for all of this image's targets (DiffC shares its
                // trajectory across targets). If it fails, each row encodes alone and reports
                // its own error.
                let mut targets: BTreeMap<&str, (usize, Vec<f64>)> = BTreeMap::new();
                for &(ci, t, _) in jobs {
                    let e = targets
                        .entry(codecs[ci].1.encoder_key.as_str())
                        .or_insert((ci, vec![]));
                    if !e.1.contains(&t) {
                        e.1.push(t);
                    }
                }
                for (key, (ci, ts)) in targets {
                    if let Ok(files) = codecs[ci].1.codec.encode_targets(&img, &ts) {
                        for (t, f) in ts.iter().zip(files) {
                            enc_cache.insert((key.to_string(), t.to_bits()), f);
                        }
                    }
                }
                let mut decoded = decode_groups(&codecs, jobs, &img, &mut enc_cache);
                for &(ci, t, redo) in jobs {
                    let (cname, made) = &codecs[ci];
                    let key = (made.encoder_key.clone(), t.to_bits());
                    let r = eval_row(
                        cfg,
                        &img,
                        &name,
                        cname,
                        made,
                        t,
                        if redo { None } else { extractor.as_deref() },
                        want_images,
                        &mut enc_cache,
                        key,
                        decoded.remove(&(ci, t.to_bits())),
                    );
                    match r {
                        Ok(row) if redo => {
                            if let Some(old) = old_rows.get(&row.key())
                                && (old.bytes != row.bytes || old.psnr != row.psnr)
                            {
                                let msg = format!(
                                    "warning: {name} × {cname} @ {t} bpp: the re-decoded \
                                     picture differs from its row ({} bytes, {:.4} dB now; \
                                     {} bytes, {:.4} dB in results.csv, kept)",
                                    row.bytes, row.psnr, old.bytes, old.psnr
                                );
                                if bar.is_hidden() {
                                    eprintln!("{msg}");
                                } else {
                                    bar.println(msg);
                                }
                            }
                        }
                        Ok(row) => {
                            use std::io::Write;
                            let line = row_line(&row)?;
                            let mut f = writer.lock().unwrap();
                            // one whole line or none, even on SIGINT
                            crate::interrupt::critical(|| {
                                f.write_all(line.as_bytes())?;
                                f.flush()
                            })?;
                        }
                        Err(e) => {
                            let msg = format!("{name} × {cname} @ {t} bpp: {e:#}");
                            if bar.is_hidden() {
                                eprintln!("error: {msg}");
                            } else {
                                bar.println(format!("error: {msg}"));
                            }
                            errors.lock().unwrap().push(msg);
                        }
                    }
                    bar.inc(1);
                }
                Ok(())
            })();
            if let Err(e) = res {
                let msg = format!("{name}: {e:#}");
                if bar.is_hidden() {
                    eprintln!("error: {msg}");
                } else {
                    bar.println(format!("error: {msg}"));
                }
                errors.lock().unwrap().push(msg);
            }
        })
    };
    match cfg.jobs {
        Some(j) => rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build()?
            .install(work),
        None => work(),
    }
    bar.finish_and_clear();

    // Normalise the CSV (sorted, deduplicated) and write the aggregates.
    let mut rows = read_rows(&csv_path)?;
    sort_rows(&mut rows);
    let mut uniq = BTreeSet::new();
    rows.retain(|r| uniq.insert(r.key()));
    write_rows(&csv_path, &rows)?;
    // The aggregates cover this run's images (after --limit/--shard); rows of other images
    // left in the folder by earlier runs stay in results.csv (and count in a merge).
    let selected: BTreeSet<String> = images.iter().map(|p| image_name(p)).collect();
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| selected.contains(&r.image))
        .collect();
    report::write_all(&cfg.out, &info, &rows)?;
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        bail!(
            "{} row(s) failed; the aggregates cover the rest. First: {}",
            errors.len(),
            errors[0]
        );
    }
    Ok(())
}

/// A decoded picture and the seconds its decode took.
type Decoded = (Image, f64);

/// Decodes together the rows of one image that share a file and a decoder and differ only in
/// the realism R (`Made::decoder_key`): one decode of the knob's ends per group, blended per
/// row. Rows alone in their group, and groups whose encode or decode fails, are left to
/// [`eval_row`] (which decodes them alone and reports their own errors). Each row of a group
/// records the group's decode seconds.
fn decode_groups(
    codecs: &[(String, codecs::Made)],
    jobs: &[Job],
    img: &Image,
    enc_cache: &mut BTreeMap<(String, u64), (Vec<u8>, f64)>,
) -> BTreeMap<(usize, u64), Decoded> {
    let mut groups: BTreeMap<(&str, u64), Vec<usize>> = BTreeMap::new();
    for &(ci, t, _) in jobs {
        let g = groups
            .entry((codecs[ci].1.decoder_key.as_str(), t.to_bits()))
            .or_default();
        if !g.contains(&ci) {
            g.push(ci);
        }
    }
    let mut out = BTreeMap::new();
    for ((_, tb), members) in groups {
        if members.len() < 2 {
            continue;
        }
        let made = &codecs[members[0]].1;
        let key = (made.encoder_key.clone(), tb);
        if !enc_cache.contains_key(&key) {
            let t0 = Instant::now();
            let Ok(bytes) = made.codec.encode(img, RateTarget::Bpp(f64::from_bits(tb))) else {
                continue;
            };
            enc_cache.insert(key.clone(), (bytes, t0.elapsed().as_secs_f64()));
        }
        let rs: Vec<f64> = members
            .iter()
            .map(|&ci| codecs[ci].1.opts.realism.unwrap_or(1.0))
            .collect();
        let t1 = Instant::now();
        let Ok(images) = made
            .codec
            .decode_realisms(&enc_cache[&key].0, &made.opts, &rs)
        else {
            continue;
        };
        let secs = t1.elapsed().as_secs_f64();
        for (ci, im) in members.into_iter().zip(images) {
            out.insert((ci, tb), (im, secs));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn eval_row(
    cfg: &EvalConfig,
    img: &Image,
    name: &str,
    cname: &str,
    made: &codecs::Made,
    target: f64,
    extractor: Option<&dyn FeatureExtractor>,
    save_image: bool,
    enc_cache: &mut BTreeMap<(String, u64), (Vec<u8>, f64)>,
    key: (String, u64),
    decoded: Option<Decoded>,
) -> Result<Row> {
    let (codec, dopts): (&dyn Codec, &DecodeOptions) = (made.codec.as_ref(), &made.opts);
    let (bytes, enc_s) = match enc_cache.get(&key) {
        Some(hit) => hit.clone(),
        None => {
            let t0 = Instant::now();
            let bytes = codec.encode(img, RateTarget::Bpp(target))?;
            let v = (bytes, t0.elapsed().as_secs_f64());
            enc_cache.insert(key, v.clone());
            v
        }
    };
    let (mut dec, dec_s) = match decoded {
        Some(d) => d,
        None => {
            let t1 = Instant::now();
            let dec = codec.decode(&bytes, dopts)?;
            (dec, t1.elapsed().as_secs_f64())
        }
    };
    ensure!(
        dec.shape == img.shape,
        "decoded shape {:?} ≠ original {:?}",
        dec.shape,
        img.shape
    );
    dec.quantize_u8();
    let psnr = metrics::psnr(img, &dec)?;
    let ms_ssim = metrics::ms_ssim(img, &dec)?;
    if let Some(ex) = extractor {
        write_features(
            &row_feature_path(&cfg.out, cname, target, name),
            &ex.extract(&patches(&dec, cfg.patch))?,
        )?;
    }
    if save_image {
        let p = pictures::decoded_path(&cfg.out, cname, target, name);
        std::fs::create_dir_all(p.parent().unwrap())?;
        image_io::save_png(&pictures::crop_centre(&dec, cfg.image_crop), &p)?;
    }
    Ok(Row {
        image: name.to_string(),
        codec: cname.to_string(),
        target_bpp: target,
        width: img.shape.w,
        height: img.shape.h,
        bytes: bytes.len(),
        bpp: bytes.len() as f64 * 8.0 / img.shape.pixels() as f64,
        psnr,
        ms_ssim,
        enc_s,
        dec_s,
    })
}

/// Unions shard folders into `out` (rows and feature files) and recomputes the aggregates.
pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<()> {
    ensure!(!shards.is_empty(), "merge: no shard folders given");
    std::fs::create_dir_all(out)?;
    let mut info: Option<RunInfo> = None;
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    let same_dir = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    // Rows already in `out` (e.g. merging more shards in later) count too.
    let mut dirs: Vec<PathBuf> = Vec::new();
    if out.join("run.json").exists() && !shards.iter().any(|s| same_dir(s, out)) {
        dirs.push(out.to_path_buf());
    }
    dirs.extend(shards.iter().cloned());
    for dir in &dirs {
        let i: RunInfo = serde_json::from_slice(
            &std::fs::read(dir.join("run.json"))
                .with_context(|| format!("{} has no run.json", dir.display()))?,
        )?;
        if let Some(prev) = &info {
            ensure!(
                prev == &i,
                "{}: settings {i:?} differ from {prev:?}",
                dir.display()
            );
        }
        info = Some(i.clone());
        for r in read_rows(&dir.join("results.csv"))? {
            if rows.contains_key(&r.key()) {
                continue;
            }
            if i.feature_dim > 0 && !same_dir(dir, out) {
                for (src, dst) in [
                    (
                        ref_feature_path(dir, &r.image),
                        ref_feature_path(out, &r.image),
                    ),
                    (
                        row_feature_path(dir, &r.codec, r.target_bpp, &r.image),
                        row_feature_path(out, &r.codec, r.target_bpp, &r.image),
                    ),
                ] {
                    if !dst.exists() {
                        std::fs::create_dir_all(dst.parent().unwrap())?;
                        std::fs::copy(&src, &dst)
                            .with_context(|| format!("copying {}", src.display()))?;
                    }
                }
            }
            if !same_dir(dir, out) {
                for (src, dst) in [
                    (
                        pictures::original_path(dir, &r.image),
                        pictures::original_path(out, &r.image),
                    ),
                    (
                        pictures::decoded_path(dir, &r.codec, r.target_bpp, &r.image),
                        pictures::decoded_path(out, &r.codec, r.target_bpp, &r.image),
                    ),
                ] {
                    if src.exists() && !dst.exists() {
                        std::fs::create_dir_all(dst.parent().unwrap())?;
                        std::fs::copy(&src, &dst)
                            .with_context(|| format!("copying {}", src.display()))?;
                    }
                }
            }
            rows.insert(r.key(), r);
        }
    }
    let info = info.unwrap();
    image_io::write_atomic(&out.join("run.json"), &serde_json::to_vec_pretty(&info)?)?;
    let mut rows: Vec<Row> = rows.into_values().collect();
    sort_rows(&mut rows);
    write_rows(&out.join("results.csv"), &rows)?;
    report::write_all(out, &info, &rows)
}
