//! `--shard 0/2` + `--shard 1/2` + merge gives the same summary as one run; runs resume.
//!
//! Uses small synthetic images (176×176, so MS-SSIM has its 5 scales), the `jpeg` codec and
//! the tiny weight-free feature mode (`FeatureKind::Tiny`) with 32×32 patches, so it runs
//! in seconds without Inception weights. The same code paths carry Inception features.
use diffc::eval::{self, EvalConfig, FeatureKind, report::Summary};
use diffc::image_io::{Image, Shape, save_png};
use std::path::Path;

pub(crate) fn synth(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..n {
        let (h, w) = (176, 176);
        let mut img = Image::zeros(Shape::new(3, h, w));
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let v = ((x as f32 * (0.05 + 0.01 * k as f32)).sin()
                        * (y as f32 * 0.07 + c as f32).cos())
                        * 0.8
                        + (((x * 7 + y * 13 + k * 31 + c * 5) % 17) as f32 / 17.0 - 0.5) * 0.2;
                    img.data[(c * h + y) * w + x] = v.clamp(-1.0, 1.0);
                }
            }
        }
        save_png(&img, &dir.join(format!("img{k:02}.png"))).unwrap();
    }
}

pub(crate) fn cfg(data: &Path, out: &Path, shard: Option<(usize, usize)>) -> EvalConfig {
    EvalConfig {
        device: Default::default(),
        data: data.to_path_buf(),
        codecs: vec!["jpeg".into()],
        bpp: vec![0.5, 1.0],
        out: out.to_path_buf(),
        shard,
        model: None,
        limit: None,
        patch: 32,
        features: FeatureKind::Tiny,
        inception_weights: None,
        save_images: Some(false),
        image_crop: None,
        realism_ref: None,
        jobs: Some(2),
        max_pixels: diffc::codec::DEFAULT_MAX_PIXELS,
        progress: false,
    }
}

fn summary(dir: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn shards_plus_merge_equal_single_run() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    synth(&data, 5);
    let (one, s0, s1, merged) = (
        t.path().join("one"),
        t.path().join("s0"),
        t.path().join("s1"),
        t.path().join("merged"),
    );
    eval::run(&cfg(&data, &one, None)).unwrap();
    eval::run(&cfg(&data, &s0, Some((0, 2)))).unwrap();
    eval::run(&cfg(&data, &s1, Some((1, 2)))).unwrap();
    assert_eq!(summary(&s0).protocol.images.len(), 3);
    assert_eq!(summary(&s1).protocol.images.len(), 2);
    eval::merge(&merged, &[s0.clone(), s1.clone()]).unwrap();
    let (a, b) = (summary(&one), summary(&merged));
    assert_eq!(a.entries.len(), 2);
    assert!(
        a.entries
            .iter()
            .all(|e| e.n_images == 5 && e.fid.is_some() && e.kid.is_some() && e.ms_ssim.is_some())
    );
    assert_eq!(a, b, "merged summary differs from the single run");
    // Bitwise: the JSON files are identical too.
    assert_eq!(
        std::fs::read(one.join("summary.json")).unwrap(),
        std::fs::read(merged.join("summary.json")).unwrap()
    );
    for f in ["results.csv", "report.md", "psnr.svg", "kid.svg"] {
        assert!(merged.join(f).exists(), "{f} missing");
    }
}

#[test]
fn rerun_resumes_and_keeps_rows() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    synth(&data, 2);
    let out = t.path().join("out");
    let mut c = cfg(&data, &out, None);
    c.bpp = vec![1.0];
    eval::run(&c).unwrap();
    let rows1 = eval::read_rows(&out.join("results.csv")).unwrap();
    assert_eq!(rows1.len(), 2);
    // Second run with one more target: old rows are kept verbatim (timings included),
    // only the new target is computed.
    c.bpp = vec![1.0, 0.5];
    eval::run(&c).unwrap();
    let rows2 = eval::read_rows(&out.join("results.csv")).unwrap();
    assert_eq!(rows2.len(), 4);
    for r in &rows1 {
        assert!(rows2.contains(r), "row {r:?} was recomputed");
    }
    // A torn last line (killed run) is dropped and recomputed.
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let cut = &csv[..csv.len() - 20];
    std::fs::write(out.join("results.csv"), cut).unwrap();
    eval::run(&c).unwrap();
    assert_eq!(eval::read_rows(&out.join("results.csv")).unwrap().len(), 4);
    // Different settings in the same folder are refused.
    let mut other = c.clone();
    other.patch = 16;
    assert!(eval::run(&other).is_err());
}

#[test]
fn shard_argument_parsing() {
    assert_eq!(eval::parse_shard("1/4").unwrap(), (1, 4));
    assert!(eval::parse_shard("4/4").is_err());
    assert!(eval::parse_shard("x").is_err());
}
