//! A fresh tiny eval keeps the decoded pictures, writes comparison sheets, both unpaired
//! realism protocols, the realism–distortion plot and the HTML report; a resumed run
//! re-decodes only the rows whose picture is missing, without touching their numbers.
//!
//! Synthetic 176×176 images, the `jpeg` codec (plus `webp` when cwebp is installed), tiny
//! weight-free features: seconds, no weights. When Debian's chromium is on PATH, the page is
//! also loaded in it by eval/check_html.sh (skipped with a note otherwise).
use crate::eval_shards::synth;
use diffc::eval::pictures::{decoded_path, original_path, sheet_path};
use diffc::eval::{self, EvalConfig, FeatureKind, report::Summary};
use std::path::Path;

fn cfg(data: &Path, out: &Path, codecs: &[&str]) -> EvalConfig {
    EvalConfig {
        device: Default::default(),
        data: data.to_path_buf(),
        codecs: codecs.iter().map(|s| s.to_string()).collect(),
        bpp: vec![0.5, 1.0],
        out: out.to_path_buf(),
        shard: None,
        model: None,
        limit: None,
        patch: 32,
        features: FeatureKind::Tiny,
        inception_weights: None,
        save_images: None,
        image_crop: Some(96),
        realism_ref: None,
        jobs: Some(2),
        max_pixels: diffc::codec::DEFAULT_MAX_PIXELS,
        progress: false,
    }
}

fn png_size(p: &Path) -> (u32, u32) {
    let img = image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (img.width(), img.height())
}

fn svg_ok(p: &Path) {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let doc = roxmltree::Document::parse(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        doc.root_element().tag_name().name(),
        "svg",
        "{}",
        p.display()
    );
    assert!(
        doc.descendants().filter(|n| n.is_element()).count() > 10,
        "{} is nearly empty",
        p.display()
    );
}

fn have(tool: &str) -> bool {
    std::process::Command::new(tool).arg("-h").output().is_ok()
}

#[test]
fn fresh_eval_writes_pictures_sheets_realism_and_reports() {
    let t = tempfile::tempdir().unwrap();
    let (data, refs, out) = (
        t.path().join("data"),
        t.path().join("refs"),
        t.path().join("out"),
    );
    synth(&data, 4);
    synth(&refs, 3);
    let mut codecs = vec!["jpeg"];
    if have("cwebp") {
        codecs.push("webp");
    } else {
        eprintln!("cwebp not installed (eval/setup.sh): the sheets show jpeg only");
    }
    let mut c = cfg(&data, &out, &codecs);
    c.realism_ref = Some(refs.clone());
    eval::run(&c).unwrap();

    let rows = eval::read_rows(&out.join("results.csv")).unwrap();
    assert_eq!(rows.len(), 4 * 2 * codecs.len());
    let images: Vec<String> = (0..4).map(|k| format!("img{k:02}.png")).collect();
    for im in &images {
        assert_eq!(png_size(&original_path(&out, im)), (96, 96), "crop of {im}");
    }
    for r in &rows {
        let p = decoded_path(&out, &r.codec, r.target_bpp, &r.image);
        assert_eq!(png_size(&p), (96, 96), "{}", p.display());
    }
    // Sheets: one per image, original + every codec across, one row per rate, labels below.
    let cols = codecs.len() as u32 + 1;
    for im in &images {
        let (w, h) = png_size(&sheet_path(&out, im));
        assert_eq!(w, 8 + cols * (96 + 8), "{im}: sheet width");
        assert!(h > 2 * (96 + 4 * 10), "{im}: sheet height {h}");
    }
    // A sheet tile is the decoded picture itself (top-left tile of the first codec, row 1).
    let sheet = image::open(sheet_path(&out, &images[0])).unwrap().to_rgb8();
    let dec = image::open(decoded_path(
        &out,
        &rows_sorted_first(&codecs),
        0.5,
        &images[0],
    ))
    .unwrap()
    .to_rgb8();
    let (x0, y0) = (8 + 96 + 8, 8 + 8 + 2 + 8);
    for (x, y) in [(0, 0), (50, 30), (95, 95)] {
        assert_eq!(sheet.get_pixel(x0 + x, y0 + y), dec.get_pixel(x, y));
    }

    // Unpaired realism: both protocols, with spreads and floors.
    let s: Summary =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for e in &s.entries {
        assert!(e.kid.is_some() && e.fid.is_some(), "{e:?}");
        assert!(
            e.kid_split.is_some() && e.fid_split.is_some() && e.kid_split_std.unwrap() > 0.0,
            "{e:?}"
        );
        assert!(
            e.kid_ref.is_some() && e.fid_ref.is_some() && e.kid_ref_std.unwrap() > 0.0,
            "{e:?}"
        );
    }
    let floor = s.realism.split_floor.as_ref().expect("split floor");
    assert_eq!((floor.n_patches, floor.n_ref_patches), (4 * 25, 4 * 25));
    assert_eq!(s.realism.reference.as_ref().unwrap().images.len(), 3);
    assert_eq!(
        s.realism.reference_floor.as_ref().unwrap().n_ref_patches,
        3 * 25
    );

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "KID ×10³ split",
        "KID ×10³ ref",
        "Unpaired realism",
        "(sheets/img00.png)",
        "(kid_unpaired.svg)",
        "(realism_distortion.svg)",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle}");
    }
    let kid_svg = std::fs::read_to_string(out.join("kid_unpaired.svg")).unwrap();
    assert!(kid_svg.contains("originals (floor)"), "no floor line");
    for svg in [
        "psnr.svg",
        "kid.svg",
        "fid_unpaired.svg",
        "kid_unpaired.svg",
        "kid_ref.svg",
        "realism_distortion.svg",
    ] {
        svg_ok(&out.join(svg));
    }

    // The HTML page: rows, sheets and the viewer's pictures, all by existing relative paths.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for e in &s.entries {
        assert!(
            html.contains(&format!("<td>{}</td>", e.codec)),
            "report.html lacks a row of {}",
            e.codec
        );
    }
    let mut n_refs = 0;
    for part in html.split("src=\"").skip(1) {
        let rel = &part[..part.find('"').unwrap()];
        assert!(
            out.join(rel).exists(),
            "report.html references missing {rel}"
        );
        n_refs += 1;
    }
    assert!(n_refs >= images.len(), "only {n_refs} pictures referenced");
    assert!(html.contains("images/original/img00.png"));
    if have("chromium") {
        let st = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/check_html.sh"))
            .arg(&out)
            .arg((s.entries.len()).to_string())
            .status()
            .unwrap();
        assert!(st.success(), "eval/check_html.sh failed");
    } else {
        eprintln!("chromium not installed (eval/setup.sh): skipping the headless-browser check");
    }
}

/// The first codec in a sheet's columns (sorted by name).
fn rows_sorted_first(codecs: &[&str]) -> String {
    let mut v = codecs.to_vec();
    v.sort();
    v[0].to_string()
}

#[test]
fn rerun_redecodes_only_missing_pictures() {
    let t = tempfile::tempdir().unwrap();
    let (data, out) = (t.path().join("data"), t.path().join("out"));
    synth(&data, 2);
    // A finished run without pictures (as the older reports are).
    let mut c = cfg(&data, &out, &["jpeg"]);
    c.save_images = Some(false);
    c.image_crop = None;
    eval::run(&c).unwrap();
    assert!(!out.join("images").exists() && !out.join("sheets").exists());
    let csv = std::fs::read(out.join("results.csv")).unwrap();
    // With pictures: every row is re-decoded for its picture; the rows stay as they were
    // (byte for byte, timings included).
    c.save_images = None;
    eval::run(&c).unwrap();
    assert_eq!(std::fs::read(out.join("results.csv")).unwrap(), csv);
    let rows = eval::read_rows(&out.join("results.csv")).unwrap();
    for r in &rows {
        assert_eq!(
            png_size(&decoded_path(&out, &r.codec, r.target_bpp, &r.image)),
            (176, 176)
        );
    }
    // Lose one picture: only it comes back (the others keep their modification time).
    let gone = decoded_path(&out, "jpeg", 1.0, "img01.png");
    let kept = decoded_path(&out, "jpeg", 0.5, "img00.png");
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let kept_t = mtime(&kept);
    std::fs::remove_file(&gone).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    eval::run(&c).unwrap();
    assert!(gone.exists());
    assert_eq!(mtime(&kept), kept_t, "a present picture was rewritten");
    assert_eq!(std::fs::read(out.join("results.csv")).unwrap(), csv);
    assert!(sheet_path(&out, "img01.png").exists());
}
