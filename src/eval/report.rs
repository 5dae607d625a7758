//! Aggregates (`summary.json`), plots (`<metric>.svg`) and the markdown report.
//!
//! Per codec × target over the images that have a row:
//! - `bpp`, `psnr`, `ms_ssim`: means over images (PSNR is the mean of per-image PSNRs);
//! - `n_hit`: images whose file is within ±10 % of the target; `reached` = all of them;
//! - `fid`, `kid`, `kid_std`: decoded patches vs the same images' original patches, all
//!   patches of all images pooled (paired KID, see [`crate::metrics::fid()`]).
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
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub protocol: Protocol,
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
    let mut entries = Vec::new();
    for ((codec, tb), mut g) in groups {
        g.sort_by(|a, b| a.image.cmp(&b.image));
        let target = f64::from_bits(tb);
        let ms: Vec<f64> = g.iter().filter_map(|r| r.ms_ssim).collect();
        let n_hit = g.iter().filter(|r| r.hit()).count();
        let (mut fidv, mut kidv, mut kstd, mut n_patches) = (None, None, None, 0);
        if info.feature_dim > 0 {
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
        entries,
    })
}

/// Writes `summary.json`, the SVG plots and `report.md`.
pub fn write_all(out: &Path, info: &RunInfo, rows: &[Row]) -> Result<()> {
    let s = summarize(out, info, rows)?;
    crate::image_io::write_atomic(&out.join("summary.json"), &serde_json::to_vec_pretty(&s)?)?;
    let mut plots = Vec::new();
    for m in ["psnr", "ms_ssim", "fid", "kid"] {
        if plot(out, &s, m)? {
            plots.push(m);
        }
    }
    crate::image_io::write_atomic(
        &out.join("report.md"),
        markdown(&s, rows, &plots).as_bytes(),
    )?;
    Ok(())
}

fn metric(e: &Entry, m: &str) -> Option<f64> {
    match m {
        "psnr" => Some(e.psnr).filter(|v| v.is_finite()),
        "ms_ssim" => e.ms_ssim,
        "fid" => e.fid,
        "kid" => e.kid,
        _ => None,
    }
}

fn label(m: &str) -> &'static str {
    match m {
        "psnr" => "PSNR (dB, RGB) ↑",
        "ms_ssim" => "MS-SSIM ↑",
        "fid" => "patch FID ↓",
        "kid" => "patch KID ↓",
        _ => "",
    }
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
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
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
        // Keep the legend where the curves are not: top right for lower-is-better metrics
        // (they fall with rate), top left for higher-is-better ones.
        let pos = if matches!(m, "fid" | "kid") {
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

fn f(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        Some(x) => format!("{x}"),
        None => "–".into(),
    }
}

fn markdown(s: &Summary, rows: &[Row], plots: &[&str]) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let p = &s.protocol;
    let _ = writeln!(md, "# Realism–distortion evaluation\n");
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
    let _ = writeln!(
        md,
        "| codec | target bpp | mean bpp | hit | PSNR dB | MS-SSIM | FID | KID ×10³ (± std) | enc s | dec s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
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
        let kid = match (e.kid, e.kid_std) {
            (Some(k), Some(sd)) => format!("{:.2} ± {:.2}", k * 1e3, sd * 1e3),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {}/{}{} | {} | {} | {} | {} | {:.2} | {:.2} |",
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
    let _ = writeln!(md);
    for m in plots {
        let _ = writeln!(md, "![{}]({m}.svg)\n", label(m));
    }
    md
}
