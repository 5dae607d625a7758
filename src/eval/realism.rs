//! Unpaired realism: FID/KID of decoded patches against patches of *other* images.
//!
//! The paired statistics of [`super::report`] compare each codec's decoded patches with the
//! same images' original patches, which mixes distortion into the realism score. Here the
//! reference set never contains the decoded images' own originals:
//!
//! - **split** (always, when there are features and ≥ 2 images): the run's images, sorted by
//!   name, are split by index parity. Decoded patches of the even-indexed images are compared
//!   with the original patches of the odd-indexed ones, and the odd-indexed decoded patches
//!   with the even-indexed originals. KID is the mean of the two unbiased two-sample
//!   MMD²_u ([`crate::metrics::fid::kid_two_sample`]), FID the mean of the two FIDs. The
//!   *floor* is the same statistic for the originals themselves (even originals vs odd
//!   originals): what a codec that returned its input exactly would score.
//! - **reference folder** (`--realism-ref DIR`): all decoded patches of a codec × target
//!   against the patches of a fixed folder of images, whose features are computed once and
//!   cached in `features/realism-ref/` (with `source.json` naming the folder and its images;
//!   a different folder or image list recomputes them). Its floor: all the run's originals
//!   against the reference patches.
use super::{image_name, list_images, read_features, write_features};
use crate::metrics::features::{FeatureExtractor, patches};
use crate::metrics::fid::{self, Features};
use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// FID and KID (± its spread over subsets) of one comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// `None` when a set has fewer than 2 patches.
    pub fid: Option<f64>,
    pub kid: f64,
    pub kid_std: f64,
    /// Decoded (or original, for a floor) patches compared.
    pub n_patches: usize,
    /// Reference patches compared.
    pub n_ref_patches: usize,
}

/// What `features/realism-ref/source.json` records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefSource {
    pub dir: String,
    pub images: Vec<String>,
    pub features: String,
    pub patch: usize,
}

pub fn ref_dir(out: &Path) -> PathBuf {
    out.join("features").join("realism-ref")
}

fn source_path(out: &Path) -> PathBuf {
    ref_dir(out).join("source.json")
}

/// Computes (or keeps, when `source.json` matches) the reference folder's patch features.
pub fn prepare_ref(
    out: &Path,
    dir: &Path,
    ex: &dyn FeatureExtractor,
    patch: usize,
) -> Result<RefSource> {
    let files = list_images(dir)?;
    ensure!(
        !files.is_empty(),
        "--realism-ref {}: no .png/.jpg images",
        dir.display()
    );
    let src = RefSource {
        dir: dir.display().to_string(),
        images: files.iter().map(|p| image_name(p)).collect(),
        features: ex.name(),
        patch,
    };
    let rd = ref_dir(out);
    let sp = source_path(out);
    if let Ok(b) = std::fs::read(&sp)
        && serde_json::from_slice::<RefSource>(&b).ok().as_ref() == Some(&src)
        && src
            .images
            .iter()
            .all(|i| rd.join(format!("{i}.f32")).exists())
    {
        return Ok(src);
    }
    if rd.exists() {
        std::fs::remove_dir_all(&rd).with_context(|| format!("clearing {}", rd.display()))?;
    }
    for (p, name) in files.iter().zip(&src.images) {
        let img = crate::image_io::load(p)?;
        write_features(
            &rd.join(format!("{name}.f32")),
            &ex.extract(&patches(&img, patch))?,
        )?;
    }
    crate::image_io::write_atomic(&sp, &serde_json::to_vec_pretty(&src)?)?;
    Ok(src)
}

/// The cached reference set, if this folder has one.
pub fn load_ref(out: &Path, dim: usize) -> Result<Option<(RefSource, Features)>> {
    let sp = source_path(out);
    if dim == 0 || !sp.exists() {
        return Ok(None);
    }
    let src: RefSource =
        serde_json::from_slice(&std::fs::read(&sp)?).context("reading realism-ref/source.json")?;
    let mut all = Features::empty(dim);
    for i in &src.images {
        all.extend(&read_features(&ref_dir(out).join(format!("{i}.f32")), dim)?)?;
    }
    Ok(Some((src, all)))
}

fn fid_opt(x: &Features, y: &Features) -> Result<Option<f64>> {
    if x.n < 2 || y.n < 2 {
        return Ok(None);
    }
    Ok(Some(fid::fid(x, y)?))
}

/// Decoded (or original) patches `x` against a fixed reference set `y`.
pub fn against(x: &Features, y: &Features) -> Result<Option<Stat>> {
    if x.n < 2 || y.n < 2 {
        return Ok(None);
    }
    let k = fid::kid_two_sample(&[(x, y)])?;
    Ok(Some(Stat {
        fid: fid_opt(x, y)?,
        kid: k.kid,
        kid_std: k.kid_std,
        n_patches: x.n,
        n_ref_patches: y.n,
    }))
}

/// The split protocol: `x_even`/`x_odd` decoded patches of the even-/odd-indexed images,
/// `y_even`/`y_odd` the originals of the even-/odd-indexed images. `None` when neither
/// direction has 2 patches on both sides.
pub fn split(
    x_even: &Features,
    x_odd: &Features,
    y_even: &Features,
    y_odd: &Features,
) -> Result<Option<Stat>> {
    let dirs: Vec<(&Features, &Features)> = [(x_even, y_odd), (x_odd, y_even)]
        .into_iter()
        .filter(|(x, y)| x.n >= 2 && y.n >= 2)
        .collect();
    if dirs.is_empty() {
        return Ok(None);
    }
    let k = fid::kid_two_sample(&dirs)?;
    let mut fids = Vec::new();
    for (x, y) in &dirs {
        fids.push(fid::fid(x, y)?);
    }
    Ok(Some(Stat {
        fid: Some(fids.iter().sum::<f64>() / fids.len() as f64),
        kid: k.kid,
        kid_std: k.kid_std,
        n_patches: dirs.iter().map(|d| d.0.n).sum(),
        n_ref_patches: dirs.iter().map(|d| d.1.n).sum(),
    }))
}
