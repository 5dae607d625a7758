//! Aggregates (`summary.json`), plots (`<metric>.svg`, `realism_distortion.svg`), the
//! comparison sheets ([`super::pictures`]), the markdown report and `report.html`
//! ([`super::html`]).
//!
//! Per codec × target over the images that have a row:
//! - `bpp`, `psnr`, `ms_ssim`: means over images (PSNR is the mean of per-image PSNRs);
//! - `n_hit`: images whose file is within ±10 % of the target; `reached` = all of them;
//! - `fid`, `kid`, `kid_std`: decoded patches vs the same images' original patches, all
//!   patches of all images pooled (paired KID, see [`crate::metrics::fid()`]);
//! - `fid_split`, `kid_split`, `kid_split_std` and `fid_ref`, `kid_ref`, `kid_ref_std`: the
//!   unpaired realism protocols of [`super::realism`] (decoded patches against patches of
//!   other images: the other half of the evaluation set, or a fixed reference folder).
use super::realism::{self, RefSource, Stat};
use super::{
    RATE_TOLERANCE, Row, RunInfo, fmt_bpp, read_features, ref_feature_path, row_feature_path,
};
use crate::metrics::fid::{self, Features};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub codec: String,
    pub target_bpp: f64,
    pub n_images: usize,
    pub n_hit: usize,
    pub reached: bool,
    pub bpp: f64,
    pub psnr: f64,
    pub ms_ssim: Option<f64>,
    pub n_patches: usize,
    pub fid: Option<f64>,
    pub kid: Option<f64>,
    pub kid_std: Option<f64>,
    /// Unpaired, split protocol (even/odd images; [`super::realism`]).
    #[serde(default)]
    pub fid_split: Option<f64>,
    #[serde(default)]
    pub kid_split: Option<f64>,
    #[serde(default)]
    pub kid_split_std: Option<f64>,
    /// Unpaired, against the `--realism-ref` folder.
    #[serde(default)]
    pub fid_ref: Option<f64>,
    #[serde(default)]
    pub kid_ref: Option<f64>,
    #[serde(default)]
    pub kid_ref_std: Option<f64>,
}

/// The unpaired protocols' settings and floors (the originals' own scores).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RealismInfo {
    pub split_protocol: String,
    /// Even-indexed originals against odd-indexed originals.
    pub split_floor: Option<Stat>,
    /// The `--realism-ref` folder, when this run has one.
    pub reference: Option<RefSource>,
    /// All the run's originals against the reference folder.
    pub reference_floor: Option<Stat>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub protocol: Protocol,
    #[serde(default)]
    pub realism: RealismInfo,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub features: String,
    pub patch: usize,
    pub rate_tolerance: f64,
    pub kid_estimator: String,
    pub images: Vec<String>,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Aggregates rows (any order) read from `out`, with features from `out/features`.
pub fn summarize(out: &Path, info: &RunInfo, rows: &[Row]) -> Result<Summary> {
    let mut groups: BTreeMap<(String, u64), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.codec.clone(), r.target_bpp.to_bits()))
            .or_default()
            .push(r);
    }
    let mut images: Vec<String> = rows.iter().map(|r| r.image.clone()).collect();
    images.sort();
    images.dedup();
    // Index parity of each image in the sorted list: the split protocol's halves.
    let odd: BTreeMap<&str, bool> = images
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i % 2 == 1))
        .collect();
    let d = info.feature_dim.max(1);
    let (mut y_even, mut y_odd) = (Features::empty(d), Features::empty(d));
    let mut reference = None;
    let mut realism_info = RealismInfo {
        split_protocol: "decoded patches of the even-indexed images (sorted by name) vs \
                         original patches of the odd-indexed ones, and vice versa; KID = mean \
                         of the two unbiased two-sample MMD²_u, FID = mean of the two FIDs"
            .into(),
        ..RealismInfo::default()
    };
    if info.feature_dim > 0 {
        for im in &images {
            let f = read_features(&ref_feature_path(out, im), d)?;
            if odd[im.as_str()] {
                &mut y_odd
            } else {
                &mut y_even
            }
            .extend(&f)?;
        }
        realism_info.split_floor = realism::split(&y_even, &y_odd, &y_even, &y_odd)?;
        if let Some((src, rf)) = realism::load_ref(out, d)? {
            let mut all = y_even.clone();
            all.extend(&y_odd)?;
            realism_info.reference_floor = realism::against(&all, &rf)?;
            realism_info.reference = Some(src);
            reference = Some(rf);
        }
    }
    let mut entries = Vec::new();
    for ((codec, tb), mut g) in groups {
        g.sort_by(|a, b| a.image.cmp(&b.image));
        let target = f64::from_bits(tb);
        let ms: Vec<f64> = g.iter().filter_map(|r| r.ms_ssim).collect();
        let n_hit = g.iter().filter(|r| r.hit()).count();
        let (mut fidv, mut kidv, mut kstd, mut n_patches) = (None, None, None, 0);
        let (mut split, mut vs_ref): (Option<Stat>, Option<Stat>) = (None, None);
        if info.feature_dim > 0 {
            let (mut x_even, mut x_odd) = (Features::empty(d), Features::empty(d));
            let mut x = Features::empty(info.feature_dim);
            let mut y = Features::empty(info.feature_dim);
            for r in &g {
                let fx = read_features(
                    &row_feature_path(out, &codec, target, &r.image),
                    info.feature_dim,
                )?;
                let fy = read_features(&ref_feature_path(out, &r.image), info.feature_dim)?;
                anyhow::ensure!(
                    fx.n == fy.n,
                    "{}: patch counts differ between decoded and reference",
                    r.image
                );
                x.extend(&fx)?;
                y.extend(&fy)?;
                if odd[r.image.as_str()] {
                    &mut x_odd
                } else {
                    &mut x_even
                }
                .extend(&fx)?;
            }
            split = realism::split(&x_even, &x_odd, &y_even, &y_odd)
                .with_context(|| format!("split realism for {codec} @ {target}"))?;
            if let Some(rf) = &reference {
                vs_ref = realism::against(&x, rf)
                    .with_context(|| format!("reference realism for {codec} @ {target}"))?;
            }
            n_patches = x.n;
            if x.n >= 2 {
                fidv =
                    Some(fid::fid(&x, &y).with_context(|| format!("FID for {codec} @ {target}"))?);
                let k = fid::kid(&x, &y)?;
                kidv = Some(k.kid);
                kstd = Some(k.kid_std);
            }
        }
        entries.push(Entry {
            codec,
            target_bpp: target,
            n_images: g.len(),
            n_hit,
            reached: n_hit == g.len(),
            bpp: mean(g.iter().map(|r| r.bpp)),
            psnr: mean(g.iter().map(|r| r.psnr)),
            ms_ssim: if ms.is_empty() {
                None
            } else {
                Some(mean(ms.iter().copied()))
            },
            n_patches,
            fid: fidv,
            kid: kidv,
            kid_std: kstd,
            fid_split: split.as_ref().and_then(|s| s.fid),
            kid_split: split.as_ref().map(|s| s.kid),
            kid_split_std: split.as_ref().map(|s| s.kid_std),
            fid_ref: vs_ref.as_ref().and_then(|s| s.fid),
            kid_ref: vs_ref.as_ref().map(|s| s.kid),
            kid_ref_std: vs_ref.as_ref().map(|s| s.kid_std),
        });
    }
    Ok(Summary {
        protocol: Protocol {
            features: info.features.clone(),
            patch: info.patch,
            rate_tolerance: RATE_TOLERANCE,
            kid_estimator:
                "paired MMD²_u, cubic polynomial kernel; kid_std over 100 seeded half-size subsets"
                    .into(),
            images,
        },
        realism: realism_info,
        entries,
    })
}

/// Writes `summary.json`, the SVG plots and `report.md`.
pub fn write_all(out: &Path, info: &RunInfo, rows: &[Row]) -> Result<()> {
    let s = summarize(out, info, rows)?;
    crate::image_io::write_atomic(&out.join("summary.json"), &serde_json::to_vec_pretty(&s)?)?;
    let mut plots = Vec::new();
    for m in PLOTS {
        if plot(out, &s, m)? {
            plots.push(*m);
        }
    }
    if plot_realism_distortion(out, &s)? {
        plots.push("realism_distortion");
    }
    let sheets = super::pictures::write_sheets(out, rows)?;
    crate::image_io::write_atomic(
        &out.join("report.md"),
        markdown(&s, rows, &plots, &sheets).as_bytes(),
    )?;
    crate::image_io::write_atomic(
        &out.join("report.html"),
        super::html::page(out, &s, rows, &plots, &sheets).as_bytes(),
    )?;
    Ok(())
}

/// The metric-vs-rate plots, each written to `<name>.svg` when some entry has it.
pub const PLOTS: &[&str] = &[
    "psnr",
    "ms_ssim",
    "fid",
    "kid",
    "fid_unpaired",
    "kid_unpaired",
    "fid_ref",
    "kid_ref",
];

fn metric(e: &Entry, m: &str) -> Option<f64> {
    match m {
        "psnr" => Some(e.psnr).filter(|v| v.is_finite()),
        "ms_ssim" => e.ms_ssim,
        "fid" => e.fid,
        "kid" => e.kid,
        "fid_unpaired" => e.fid_split,
        "kid_unpaired" => e.kid_split,
        "fid_ref" => e.fid_ref,
        "kid_ref" => e.kid_ref,
        _ => None,
    }
}

fn label(m: &str) -> &'static str {
    match m {
        "psnr" => "PSNR (dB, RGB) ↑",
        "ms_ssim" => "MS-SSIM ↑",
        "fid" => "paired patch FID ↓",
        "kid" => "paired patch KID ↓",
        "fid_unpaired" => "unpaired patch FID (split) ↓",
        "kid_unpaired" => "unpaired patch KID (split) ↓",
        "fid_ref" => "patch FID vs reference folder ↓",
        "kid_ref" => "patch KID vs reference folder ↓",
        _ => "",
    }
}

fn lower_is_better(m: &str) -> bool {
    m.starts_with("fid") || m.starts_with("kid")
}

/// Whether an entry's *mean* rate is within the tolerance of its target (what the plots show;
/// `reached` is stricter: every image within it).
pub fn plotted(e: &Entry) -> bool {
    (e.bpp / e.target_bpp - 1.0).abs() <= RATE_TOLERANCE
}

/// One SVG: metric vs mean bpp, a curve per codec, only entries whose mean rate is within
/// ±10 % of the target. Returns false (and writes nothing) when no entry has the metric.
fn plot(out: &Path, s: &Summary, m: &str) -> Result<bool> {
    use plotters::prelude::*;
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for e in &s.entries {
        if let (true, Some(v)) = (plotted(e), metric(e, m)) {
            series.entry(e.codec.as_str()).or_default().push((e.bpp, v));
        }
    }
    let pts: Vec<(f64, f64)> = series.values().flatten().copied().collect();
    if pts.is_empty() {
        return Ok(false);
    }
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    // The unpaired protocols' floor (the originals' own score), drawn as a grey line.
    let floor = match m {
        "fid_unpaired" => s.realism.split_floor.as_ref().and_then(|f| f.fid),
        "kid_unpaired" => s.realism.split_floor.as_ref().map(|f| f.kid),
        "fid_ref" => s.realism.reference_floor.as_ref().and_then(|f| f.fid),
        "kid_ref" => s.realism.reference_floor.as_ref().map(|f| f.kid),
        _ => None,
    }
    .filter(|v| v.is_finite());
    let (mut y0, mut y1) = pts
        .iter()
        .map(|p| p.1)
        .chain(floor)
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    x0 = (x0 * 0.8).max(1e-4);
    x1 *= 1.25;
    let pad = ((y1 - y0) * 0.08).max(1e-6);
    y0 -= pad;
    y1 += pad;
    let path = out.join(format!("{m}.svg"));
    {
        let root = SVGBackend::new(&path, (720, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{} vs rate", label(m)), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("bits per pixel (log scale)")
            .y_desc(label(m))
            .x_label_formatter(&|v| {
                format!("{:.3}", v)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            })
            .draw()?;
        for (i, (codec, mut v)) in series.into_iter().enumerate() {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(v.clone(), color.stroke_width(2)))?
                .label(codec)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(v.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        if let Some(fl) = floor {
            let grey = RGBColor(128, 128, 128);
            chart
                .draw_series(LineSeries::new(
                    vec![(x0, fl), (x1, fl)],
                    grey.stroke_width(1),
                ))?
                .label("originals (floor)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        }
        // Keep the legend where the curves are not: top right for lower-is-better metrics
        // (they fall with rate), top left for higher-is-better ones.
        let pos = if lower_is_better(m) {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::UpperLeft
        };
        chart
            .configure_series_labels()
            .position(pos)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
    }
    Ok(true)
}

/// `realism_distortion.svg`: realism (KID, FID) against distortion (PSNR, MS-SSIM), 2 × 2
/// panels, one curve per codec through its rates (points labelled with the target bpp).
/// Realism is the unpaired split protocol's when the run has it, else the paired one.
/// Returns false (and writes nothing) when no entry has both a realism and a distortion value.
fn plot_realism_distortion(out: &Path, s: &Summary) -> Result<bool> {
    use plotters::prelude::*;
    let unpaired = s.entries.iter().any(|e| e.kid_split.is_some());
    let (kid_m, fid_m) = if unpaired {
        ("kid_unpaired", "fid_unpaired")
    } else {
        ("kid", "fid")
    };
    let panels = [
        (kid_m, "psnr"),
        (kid_m, "ms_ssim"),
        (fid_m, "psnr"),
        (fid_m, "ms_ssim"),
    ];
    let pts = |ym: &str, xm: &str| -> BTreeMap<&str, Vec<(f64, f64, f64)>> {
        let mut m: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
        for e in &s.entries {
            if let (true, Some(x), Some(y)) = (plotted(e), metric(e, xm), metric(e, ym)) {
                m.entry(e.codec.as_str())
                    .or_default()
                    .push((x, y, e.target_bpp));
            }
        }
        m
    };
    if panels.iter().all(|(y, x)| pts(y, x).is_empty()) {
        return Ok(false);
    }
    let codecs: Vec<&str> = {
        let mut v: Vec<&str> = s.entries.iter().map(|e| e.codec.as_str()).collect();
        v.sort();
        v.dedup();
        v
    };
    let path = out.join("realism_distortion.svg");
    {
        let root = SVGBackend::new(&path, (1200, 900)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            &format!(
                "Realism vs distortion ({} realism; lower-right is better)",
                if unpaired { "unpaired split" } else { "paired" }
            ),
            ("sans-serif", 22),
        )?;
        for (area, (ym, xm)) in root.split_evenly((2, 2)).iter().zip(panels) {
            let series = pts(ym, xm);
            let all: Vec<(f64, f64)> = series.values().flatten().map(|p| (p.0, p.1)).collect();
            if all.is_empty() {
                continue;
            }
            let (x0, x1) = all
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
            let (y0, y1) = all
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
            let (px, py) = (((x1 - x0) * 0.1).max(1e-6), ((y1 - y0) * 0.1).max(1e-6));
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{} vs {}", label(ym), label(xm)),
                    ("sans-serif", 16),
                )
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))?;
            chart
                .configure_mesh()
                .x_desc(label(xm))
                .y_desc(label(ym))
                .draw()?;
            for (codec, mut v) in series {
                v.sort_by(|a, b| a.2.total_cmp(&b.2));
                let i = codecs.iter().position(|c| *c == codec).unwrap_or(0);
                let color = Palette99::pick(i).to_rgba();
                let xy: Vec<(f64, f64)> = v.iter().map(|p| (p.0, p.1)).collect();
                chart
                    .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
                    .label(codec)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart.draw_series(xy.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
                chart.draw_series(v.iter().map(|p| {
                    Text::new(
                        fmt_bpp(p.2),
                        (p.0, p.1),
                        ("sans-serif", 11).into_font().color(&BLACK),
                    )
                }))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()?;
        }
        root.present()?;
    }
    Ok(true)
}

/// A table cell: the value at `prec` decimals, or a dash when absent.
pub(crate) fn f(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        Some(x) => format!("{x}"),
        None => "–".into(),
    }
}

/// A KID cell: ×10³ with its spread, or a dash.
pub(crate) fn kid_pm(k: Option<f64>, sd: Option<f64>) -> String {
    match (k, sd) {
        (Some(k), Some(sd)) => format!("{:.2} ± {:.2}", k * 1e3, sd * 1e3),
        _ => "–".into(),
    }
}

fn floor_text(st: &Option<Stat>) -> String {
    match st {
        Some(st) => format!(
            "FID {}, KID ×10³ {} ({} vs {} patches)",
            f(st.fid, 2),
            kid_pm(Some(st.kid), Some(st.kid_std)),
            st.n_patches,
            st.n_ref_patches
        ),
        None => "– (too few patches)".into(),
    }
}

/// A harness codec's realism-knob family (its spec without `~R`) and its R (1 when unset);
/// `None` for names that are not codec specs (the baselines).
pub(crate) fn knob(codec: &str) -> Option<(String, f64)> {
    let spec: crate::codec::registry::CodecSpec = codec.parse().ok()?;
    let r = spec.realism.unwrap_or(1.0);
    let family = crate::codec::registry::CodecSpec {
        realism: None,
        ..spec
    };
    Some((family.to_string(), r))
}

/// "The realism knob": per codec family with entries at two or more R, and per target,
/// PSNR, MS-SSIM and KID against R (the same numbers as the main table, regrouped).
fn knob_tables(md: &mut String, entries: &[Entry]) {
    use std::fmt::Write;
    let mut fams: BTreeMap<(String, u64), Vec<(f64, &Entry)>> = BTreeMap::new();
    for e in entries {
        if let Some((fam, r)) = knob(&e.codec) {
            fams.entry((fam, e.target_bpp.to_bits()))
                .or_default()
                .push((r, e));
        }
    }
    fams.retain(|_, v| v.len() >= 2);
    if fams.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## The realism knob\n\nThe same files decoded at realism R (`CODEC~R`, `diffc \
         decode --realism R`): R = 0 is the posterior mean x̂ (HFD: X̂_MSE), R = 1 the \
         decoder's sample, in between their blend. One decode per file serves every R.\n"
    );
    let _ = writeln!(
        md,
        "| codec | target bpp | R | mean bpp | PSNR dB | MS-SSIM | KID ×10³ paired | KID ×10³ split |\n|---|---|---|---|---|---|---|---|"
    );
    for ((fam, tb), mut v) in fams {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (r, e) in v {
            let _ = writeln!(
                md,
                "| {fam} | {} | {r} | {:.4} | {} | {} | {} | {} |",
                fmt_bpp(f64::from_bits(tb)),
                e.bpp,
                f(Some(e.psnr), 2),
                f(e.ms_ssim, 4),
                kid_pm(e.kid, e.kid_std),
                kid_pm(e.kid_split, e.kid_split_std),
            );
        }
    }
}

fn markdown(s: &Summary, rows: &[Row], plots: &[&str], sheets: &[String]) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let p = &s.protocol;
    let _ = writeln!(
        md,
        "# Realism–distortion evaluation\n\nThe same results with the pictures, the sheets and \
         a flip/slide viewer: [report.html](report.html).\n"
    );
    let _ = writeln!(
        md,
        "{} images. Rates are real file sizes (bits / pixels). PSNR on 8-bit RGB (mean of per-image \
         values); MS-SSIM (Wang et al. 2003, 5 scales, 11×11 Gaussian σ = 1.5, 8-bit, mean over \
         RGB and images).\n",
        p.images.len()
    );
    if p.features == "none" {
        let _ = writeln!(md, "No FID/KID in this run (`--features none`).\n");
    } else {
        let _ = writeln!(
            md,
            "FID/KID: feature network `{feat}`; every image cut into non-overlapping {ps}×{ps} \
             patches (remainder dropped), each resized bilinearly (half-pixel centres, no \
             antialiasing) to the network input; decoded patches vs the same images' original \
             patches, pooled over all images. KID: {kid}. Patch FID over a few hundred patches \
             is biased upwards; compare codecs with each other, and prefer KID.\n",
            feat = p.features,
            ps = p.patch,
            kid = p.kid_estimator
        );
        let r = &s.realism;
        let _ = writeln!(
            md,
            "**Unpaired realism** (columns *split*): the paired FID/KID above compare each \
             decoded patch set with its own originals, which mixes distortion into realism. The \
             split protocol compares with patches of *other* images: {}. KID ± std over 100 \
             seeded half-size subsets. Floor (the originals themselves, even vs odd): {}.\n",
            r.split_protocol,
            floor_text(&r.split_floor)
        );
        if let Some(src) = &r.reference {
            let _ = writeln!(
                md,
                "**Reference folder** (columns *ref*, `--realism-ref {}`, {} images): all \
                 decoded patches of a codec × target vs the folder's patches (same patching \
                 and network), unbiased two-sample KID. Floor (all originals vs the folder): \
                 {}.\n",
                src.dir,
                src.images.len(),
                floor_text(&r.reference_floor)
            );
        }
    }
    let _ = writeln!(
        md,
        "A target counts as reached when every image's file is within ±{:.0} % of it (column \
         *hit*); the plots show the entries whose mean rate is within that band.\n",
        p.rate_tolerance * 100.0
    );
    let mut times: BTreeMap<(String, u64), (f64, f64, usize)> = BTreeMap::new();
    for r in rows {
        let t = times
            .entry((r.codec.clone(), r.target_bpp.to_bits()))
            .or_default();
        t.0 += r.enc_s;
        t.1 += r.dec_s;
        t.2 += 1;
    }
    let has_ref = s.realism.reference.is_some();
    let _ = writeln!(
        md,
        "| codec | target bpp | mean bpp | hit | PSNR dB | MS-SSIM | FID paired | KID ×10³ paired (± std) | FID split | KID ×10³ split (± std) |{} enc s | dec s |",
        if has_ref {
            " FID ref | KID ×10³ ref (± std) |"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|{}---|---|",
        if has_ref { "---|---|" } else { "" }
    );
    let mut entries = s.entries.clone();
    entries.sort_by(|a, b| {
        a.target_bpp
            .total_cmp(&b.target_bpp)
            .then(a.codec.cmp(&b.codec))
    });
    for e in &entries {
        let t = times
            .get(&(e.codec.clone(), e.target_bpp.to_bits()))
            .copied()
            .unwrap_or((0.0, 0.0, 1));
        let kid = kid_pm(e.kid, e.kid_std);
        let refcols = if has_ref {
            format!(
                " {} | {} |",
                f(e.fid_ref, 2),
                kid_pm(e.kid_ref, e.kid_ref_std)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {}/{}{} | {} | {} | {} | {} | {} | {} |{} {:.2} | {:.2} |",
            e.codec,
            fmt_bpp(e.target_bpp),
            e.bpp,
            e.n_hit,
            e.n_images,
            if e.reached { "" } else { " ✗" },
            f(Some(e.psnr), 2),
            f(e.ms_ssim, 4),
            f(e.fid, 2),
            kid,
            f(e.fid_split, 2),
            kid_pm(e.kid_split, e.kid_split_std),
            refcols,
            t.0 / t.2 as f64,
            t.1 / t.2 as f64
        );
    }
    let missed: Vec<String> = entries
        .iter()
        .filter(|e| !e.reached)
        .map(|e| {
            format!(
                "{} @ {} bpp ({}/{} images hit; mean {:.3} bpp{})",
                e.codec,
                fmt_bpp(e.target_bpp),
                e.n_hit,
                e.n_images,
                e.bpp,
                if plotted(e) { "" } else { "; not plotted" }
            )
        })
        .collect();
    if missed.is_empty() {
        let _ = writeln!(
            md,
            "\nEvery codec reached every target (±{:.0} %).",
            p.rate_tolerance * 100.0
        );
    } else {
        let _ = writeln!(
            md,
            "\nTargets not reached (±{:.0} %):\n",
            p.rate_tolerance * 100.0
        );
        for m in missed {
            let _ = writeln!(md, "- {m}");
        }
    }
    knob_tables(&mut md, &entries);
    let _ = writeln!(md);
    for m in plots {
        let l = if *m == "realism_distortion" {
            "realism vs distortion"
        } else {
            label(m)
        };
        let _ = writeln!(md, "![{l}]({m}.svg)\n");
    }
    if !sheets.is_empty() {
        let _ = writeln!(
            md,
            "## Pictures\n\nOne comparison sheet per image: one row per target rate, the \
             original then every codec, with the real bpp and the PSNR of the whole image under \
             each tile. Decoded pictures are in `images/CODEC/TARGET/IMAGE.png`.\n"
        );
        for im in sheets {
            let _ = writeln!(
                md,
                "- [{im}](sheets/{})",
                super::pictures::png_name(im).replace(' ', "%20")
            );
        }
        let _ = writeln!(md);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::knob;

    #[test]
    fn knob_families_drop_only_the_realism() {
        assert_eq!(
            knob("diffc-f~0.25@m"),
            Some(("diffc-f@m".to_string(), 0.25))
        );
        assert_eq!(knob("diffc-f@m"), Some(("diffc-f@m".to_string(), 1.0)));
        assert_eq!(
            knob("diffc-a:64~0@m"),
            Some(("diffc-a:64@m".to_string(), 0.0))
        );
        assert_ne!(
            knob("diffc-a~0@m").unwrap().0,
            knob("diffc-f~0@m").unwrap().0
        );
        assert_eq!(knob("jxl"), None);
    }
}
