//! Truncatable DiffC files and the decode-time realism knob: a cut at any whole step is the
//! file the encoder writes for that stop, byte for byte, made without the model; the knob runs
//! from the posterior mean (R = 0) to today's decode (R = 1).
use diffc::channel::ChannelKind;
use diffc::codec::diffc::{DiffC, DiffcHeader, DiffcParams, StepRecord};
use diffc::codec::truncate::{Cut, cut_points, truncate};
use diffc::codec::{Codec, DecodeOptions, DecoderKind, RateTarget, realism_blend};
use diffc::container::{CodecId, Cursor, File};
use diffc::error::{Error, FormatError};
use diffc::image_io::{Image, Shape};
use diffc::rng::{Purpose, Stream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// A smooth test image with some texture.
fn test_image(h: usize, w: usize, seed: u64) -> Image {
    let mut s = Stream::new(seed, Purpose::Experiment, 9, 0, 0);
    let shape = Shape::new(3, h, w);
    let mut data = vec![0f32; shape.len()];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let v = 0.5 * ((x as f32 / w as f32) * (c as f32 + 1.0)).sin()
                    - 0.3 * (y as f32 / h as f32)
                    + 0.1 * s.normal() as f32;
                data[c * h * w + y * w + x] = v.clamp(-1.0, 1.0);
            }
        }
    }
    let mut img = Image { shape, data };
    img.quantize_u8();
    img
}

fn codec(channel: ChannelKind, steps: usize) -> DiffC {
    let mut c = DiffC::new(Arc::new(diffc::denoiser::gauss_spectrum().unwrap()));
    c.params = DiffcParams {
        channel,
        steps,
        ..DiffcParams::default()
    };
    c.seed = 42;
    c
}

fn header(bytes: &[u8]) -> DiffcHeader {
    let f = File::from_bytes(bytes).unwrap();
    DiffcHeader::read(&mut Cursor::new(&f.body)).unwrap()
}

fn bpp(bytes: &[u8], img: &Image) -> f64 {
    bytes.len() as f64 * 8.0 / img.shape.pixels() as f64
}

/// A --bpp target whose byte budget is exactly `bytes` (half a byte above, against rounding).
fn budget(bytes: usize, img: &Image) -> f64 {
    (bytes as f64 + 0.5) * 8.0 / img.shape.pixels() as f64
}

/// The encoder's records up to a 2 bpp budget: record n is the file stopped after n steps.
fn records(c: &DiffC, img: &Image) -> Vec<StepRecord> {
    c.encode_trace(img, RateTarget::Bpp(2.0), true).unwrap()
}

#[test]
fn a_cut_at_every_step_is_the_encoders_file_for_that_stop() {
    let img = test_image(20, 28, 1);
    for (channel, steps) in [
        (ChannelKind::Mixed, 24),
        (ChannelKind::Pfr, 24),
        (ChannelKind::Uq, 12), // non-default params travel unchanged
    ] {
        let c = codec(channel, steps);
        let recs = records(&c, &img);
        let file = &recs.last().unwrap().file;
        let h = header(file);
        assert!(h.stop >= 4, "{channel:?}: only {} steps", h.stop);
        let points = cut_points(file).unwrap();
        assert_eq!(points.len(), h.stop + 1);
        for n in 0..=h.stop {
            let cut = truncate(file, Cut::Step(n)).unwrap();
            // the full records are steps 0..=stop (a partial last step comes after them)
            assert_eq!(recs[n].step, n);
            assert_eq!(cut, recs[n].file, "{channel:?}: cut at step {n}");
            assert_eq!(points[n].bytes, cut.len());
            // it decodes to the encoder's latent after n steps
            let lat = c.decode_latent(&cut).unwrap();
            assert_eq!(Some(&lat.z), recs[n].z.as_ref(), "{channel:?}: step {n}");
            // a budget of exactly that size gives that file, within budget
            // a budget of exactly that size: the longest prefix of that size (a later step
            // may add no byte), within budget
            let b = budget(cut.len(), &img);
            let by_bpp = truncate(file, Cut::Bpp(b)).unwrap();
            assert!(bpp(&by_bpp, &img) <= b);
            let m = header(&by_bpp).stop;
            assert!(
                m >= n && by_bpp.len() == cut.len(),
                "{channel:?}: --bpp {b}"
            );
            if m < h.stop || h.frac > 0 {
                assert_eq!(by_bpp, recs[m].file, "{channel:?}: --bpp {b}");
            }
            // the direct encode at that budget is this file unless it also fits an eighth of
            // the next step
            let direct = c.encode(&img, RateTarget::Bpp(b)).unwrap();
            if header(&direct).frac == 0 {
                assert_eq!(direct, by_bpp, "{channel:?}: direct --bpp {b}");
            }
        }
    }
}

#[test]
fn budgets_are_met_and_truncating_twice_equals_truncating_once() {
    let img = test_image(16, 24, 2);
    let c = codec(ChannelKind::Mixed, 24);
    let file = c.encode(&img, RateTarget::Bpp(2.0)).unwrap();
    let top = bpp(&file, &img);
    let floor = cut_points(&file).unwrap()[0].bpp;
    for k in 1..=20 {
        let b = floor + (top - floor) * k as f64 / 20.0;
        let once = truncate(&file, Cut::Bpp(b)).unwrap();
        assert!(bpp(&once, &img) <= b, "{b}");
        for k2 in 1..k {
            let b2 = floor + (top - floor) * k2 as f64 / 20.0;
            assert_eq!(
                truncate(&once, Cut::Bpp(b2)).unwrap(),
                truncate(&file, Cut::Bpp(b2)).unwrap(),
                "{b} then {b2}"
            );
        }
    }
    let n = header(&file).stop;
    for n1 in 0..=n {
        let once = truncate(&file, Cut::Step(n1)).unwrap();
        assert_eq!(truncate(&once, Cut::Step(n1)).unwrap(), once);
        for n2 in 0..=n1 {
            assert_eq!(
                truncate(&once, Cut::Step(n2)).unwrap(),
                truncate(&file, Cut::Step(n2)).unwrap()
            );
        }
    }
    // a budget the file already meets copies it (partial last step included)
    assert_eq!(
        truncate(&file, Cut::Bpp(budget(file.len(), &img))).unwrap(),
        file
    );
    // DiffC::truncate (which knows the model) agrees
    assert_eq!(
        c.truncate(&file, Cut::Step(3)).unwrap(),
        truncate(&file, Cut::Step(3)).unwrap()
    );
}

#[test]
fn bad_cuts_are_clear_errors() {
    let img = test_image(12, 12, 3);
    let c = codec(ChannelKind::Mixed, 24);
    let file = c.encode(&img, RateTarget::Step(5)).unwrap();
    let e = truncate(&file, Cut::Step(6)).unwrap_err();
    assert!(e.to_string().contains("holds 5 steps"), "{e}");
    for b in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(truncate(&file, Cut::Bpp(b)), Err(Error::Param(_))),
            "{b}"
        );
    }
    let e = truncate(&file, Cut::Bpp(0.01)).unwrap_err();
    assert!(e.to_string().contains("header"), "{e}");
    // not a DiffC file
    let mut f = File::from_bytes(&file).unwrap();
    f.codec = CodecId::HfdMse;
    assert!(matches!(
        truncate(&f.to_bytes(), Cut::Step(1)),
        Err(Error::Format(FormatError::WrongCodec { .. }))
    ));
    assert!(matches!(
        truncate(b"\x89PNG\r\n\x1a\n", Cut::Step(1)),
        Err(Error::Format(_))
    ));
    // a corrupt file
    let mut bad = file.clone();
    let k = bad.len() / 2;
    bad[k] ^= 0x10;
    assert!(matches!(
        truncate(&bad, Cut::Step(1)),
        Err(Error::Format(FormatError::Checksum))
    ));
    // damaged files: reading every step's symbols (what a cut does) never panics
    crate::common::corrupt::check(&file, 200, |b| cut_points(b).map(drop));
}

/// A model that knows its posterior variance proposes with its own variances, so its tables
/// depend on the model: truncation refuses instead of writing a wrong file.
#[test]
fn files_of_a_model_with_a_posterior_variance_are_refused() {
    let img = test_image(12, 12, 4);
    let n = img.shape.len();
    let var: Vec<f64> = (0..n)
        .map(|i| 0.1 + 0.3 / (1.0 + (i % 37) as f64))
        .collect();
    let model = diffc::denoiser::gaussian::DiagonalGaussian::new(vec![0.0; n], var);
    let mut c = DiffC::new(Arc::new(model.with_exact_proposal()));
    c.seed = 5;
    let file = c.encode(&img, RateTarget::Step(6)).unwrap();
    let e = c.truncate(&file, Cut::Step(3)).unwrap_err();
    assert!(e.to_string().contains("posterior variance"), "{e}");
}

fn opts(realism: Option<f64>) -> DecodeOptions {
    DecodeOptions {
        steps: Some(6),
        realism,
        ..DecodeOptions::default()
    }
}

#[test]
fn realism_runs_from_the_posterior_mean_to_todays_decode() {
    let img = test_image(16, 20, 6);
    let c = codec(ChannelKind::Mixed, 24);
    let file = c.encode(&img, RateTarget::Bpp(0.8)).unwrap();
    let lat = c.decode_latent(&file).unwrap();
    let xhat = c.model.predict_x(&lat.z, lat.latent, lat.logsnr).unwrap();
    for decoder in [DecoderKind::Ode, DecoderKind::Sde] {
        let o = |r| DecodeOptions { decoder, ..opts(r) };
        let today = c.decode(&file, &o(None)).unwrap();
        assert_eq!(c.decode(&file, &o(Some(1.0))).unwrap(), today);
        let r0 = c.decode(&file, &o(Some(0.0))).unwrap();
        let want0 = c
            .space
            .to_image(xhat.clone(), lat.latent, lat.image)
            .unwrap();
        assert_eq!(r0, want0, "R = 0 is x̂(z_t)");
        assert_ne!(r0, today);
        let x1 = c
            .reconstruct(&lat.z, lat.logsnr, lat.latent, &o(None), lat.seed)
            .unwrap();
        let half = c.decode(&file, &o(Some(0.5))).unwrap();
        let want = c
            .space
            .to_image(realism_blend(&xhat, &x1, 0.5), lat.latent, lat.image)
            .unwrap();
        assert_eq!(half, want);
        // deterministic
        assert_eq!(c.decode(&file, &o(Some(0.5))).unwrap(), half);
        // a sweep (the harness's one decode per file) is each lone decode, bit for bit
        let rs = [0.0, 0.25, 0.5, 1.0];
        let sweep = c.decode_realisms(&file, &o(None), &rs).unwrap();
        for (r, im) in rs.iter().zip(&sweep) {
            assert_eq!(im, &c.decode(&file, &o(Some(*r))).unwrap(), "R = {r}");
        }
        assert!(c.decode_realisms(&file, &o(None), &[0.5, 1.1]).is_err());
    }
    for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(c.decode(&file, &opts(Some(bad))), Err(Error::Param(_))),
            "{bad}"
        );
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffc"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffc-truncate-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run_ok(args: &[&str]) -> Output {
    let o = bin().args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o
}

/// Fails with exit code 1 and a message containing `needle`, leaving no `out`.
fn assert_fails(args: &[&str], out: &Path, needle: &str) {
    let _ = std::fs::remove_file(out);
    let o = bin().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(needle), "{args:?}: expected '{needle}' in: {e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(!out.exists(), "a failed command left {}", out.display());
}

#[test]
fn cli_truncate_info_and_realism() {
    let (png, dfc, cut, out) = (
        tmp("t.png"),
        tmp("t.dfc"),
        tmp("t_cut.dfc"),
        tmp("t.png.out.png"),
    );
    image::RgbImage::from_fn(30, 18, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) * 3 % 256) as u8,
        ])
    })
    .save(&png)
    .unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run_ok(&[
        "encode",
        &s(&png),
        "-o",
        &s(&dfc),
        "--bpp",
        "1.5",
        "--model",
        "gauss-spectrum",
        "-q",
    ]);
    let full = std::fs::read(&dfc).unwrap();
    let o = run_ok(&["info", &s(&dfc), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cuts = v["cuts"].as_array().unwrap();
    assert!(cuts.len() >= 4, "{v}");
    run_ok(&[
        "truncate",
        &s(&dfc),
        "-o",
        &s(&cut),
        "--stop",
        "step:3",
        "-q",
    ]);
    let c3 = std::fs::read(&cut).unwrap();
    assert_eq!(c3.len() as u64, cuts[3][1].as_u64().unwrap());
    assert_eq!(c3, truncate(&full, Cut::Step(3)).unwrap());
    run_ok(&["truncate", &s(&dfc), "-o", &s(&cut), "--bpp", "0.5", "-q"]);
    let cb = std::fs::read(&cut).unwrap();
    assert!(cb.len() * 8 <= 30 * 18 / 2);
    for r in ["0", "0.5", "1"] {
        run_ok(&[
            "decode",
            &s(&cut),
            "-o",
            &s(&out),
            "--steps",
            "3",
            "--realism",
            r,
            "-q",
        ]);
        assert_eq!(image::open(&out).unwrap().width(), 30);
    }
    for (args, needle) in [
        (vec!["--stop", "step:99"], "cannot cut at step 99"),
        (vec!["--bpp", "0"], "--bpp"),
        (vec!["--bpp", "-1"], "--bpp"),
        (vec!["--bpp", "0.001"], "header"),
        (vec!["--stop", "logsnr:2"], "whole steps"),
    ] {
        let mut a = vec!["truncate".to_string(), s(&dfc), "-o".into(), s(&cut)];
        a.extend(args.iter().map(|x| x.to_string()));
        let a: Vec<&str> = a.iter().map(|x| x.as_str()).collect();
        assert_fails(&a, &cut, needle);
    }
    assert_fails(
        &["truncate", &s(&png), "-o", &s(&cut), "--stop", "step:1"],
        &cut,
        "magic",
    );
    for r in ["1.5", "-0.5", "NaN"] {
        assert_fails(
            &["decode", &s(&dfc), "-o", &s(&out), "--realism", r, "-q"],
            &out,
            "realism",
        );
    }
    // a master file: 192 steps, every eighth of a default step a cut point
    let master = tmp("t_master.dfc");
    let enc = |extra: &[&str]| {
        let mut a = vec!["encode", png.to_str().unwrap(), "-o"];
        a.push(master.to_str().unwrap());
        a.extend_from_slice(&["--bpp", "1.5", "--model", "gauss-spectrum", "-q"]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = enc(&["--truncatable"]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let m = std::fs::read(&master).unwrap();
    let args = enc(&["--steps", "192"]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        m,
        std::fs::read(&master).unwrap(),
        "--truncatable is --steps 192"
    );
    assert_ne!(m, full);
    let args = enc(&["--truncatable", "--steps", "24"]);
    let o = bin()
        .args(args.iter().map(String::as_str))
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("--truncatable"));
    assert_fails(
        &[
            "encode",
            &s(&png),
            "-o",
            &s(&master),
            "--bpp",
            "1.5",
            "--codec",
            "hfd-mse",
            "--truncatable",
            "-q",
        ],
        &master,
        "only DiffC",
    );
}

/// `diffc eval` with knob specs: rows that differ only in R share one encode and one decode
/// (`decode_realisms`), and each row's numbers are those of a lone encode and decode of its
/// spec, exactly.
#[test]
fn harness_knob_rows_are_their_lone_decodes() {
    use diffc::codec::registry::{self, CodecSpec, Options};
    use diffc::eval::{self, EvalConfig};
    let data = tmp("knob-data");
    crate::eval_shards::synth(&data, 1);
    let out = tmp("knob-out");
    let names = [
        "diffc-f~0@gauss-spectrum",
        "diffc-f~0.5@gauss-spectrum",
        "diffc-f@gauss-spectrum",
        "diffc-a:8~0.25@gauss-spectrum",
        "diffc-a:8@gauss-spectrum",
    ];
    let cfg = EvalConfig {
        codecs: names.iter().map(|s| s.to_string()).collect(),
        bpp: vec![0.15],
        jobs: Some(1),
        ..crate::eval_shards::cfg(&data, &out, None)
    };
    eval::run(&cfg).unwrap();
    let rows = eval::read_rows(&out.join("results.csv")).unwrap();
    assert_eq!(rows.len(), names.len());
    let img = diffc::image_io::load(&data.join("img00.png")).unwrap();
    let cpu = candle_core::Device::Cpu;
    let mut psnrs = vec![];
    for n in names {
        let spec: CodecSpec = n.parse().unwrap();
        let opts = Options {
            floor_at_lowest: true,
            ..Options::default()
        };
        let b = registry::build(&spec, &opts, &cpu).unwrap();
        let file = b.codec.encode(&img, RateTarget::Bpp(0.15)).unwrap();
        let mut dec = b.codec.decode(&file, &b.decode).unwrap();
        dec.quantize_u8();
        let psnr = diffc::metrics::psnr(&img, &dec).unwrap();
        let row = rows.iter().find(|r| r.codec == n).unwrap();
        assert_eq!((row.bytes, row.psnr), (file.len(), psnr), "{n}");
        psnrs.push(psnr);
    }
    // the knob moves the output: R = 0, 0.5, 1 of DiffC-F are three different pictures
    assert!(psnrs[0] != psnrs[1] && psnrs[1] != psnrs[2], "{psnrs:?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## The realism knob"), "{md}");
    assert!(
        md.contains("| diffc-f@gauss-spectrum | 0.15 | 0.5 |"),
        "{md}"
    );
}
