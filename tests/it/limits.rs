//! Resource bounds before work (issue 17): a few bytes that declare a legal but huge image
//! (8000×8000, within the format's 64 Mpixel) are refused by `diffc decode` at once, for every
//! codec, with a typed error; `--max-pixels` raises the limit; a DiffC trajectory too long for
//! its size, and a UQ step whose tables would be huge, are refused before the work.
use diffc::codec::diffc::{DiffC, DiffcHeader};
use diffc::codec::registry::{self, CodecSpec, Options};
use diffc::codec::{Codec, DEFAULT_MAX_PIXELS, DecodeOptions, RateTarget};
use diffc::container::{CodecId, File};
use diffc::error::{Error, FormatError};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffc"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffc-limits-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 9 % 256) as u8,
            (y * 7 % 256) as u8,
            ((x ^ y) * 5 % 256) as u8,
        ])
    })
    .save(path)
    .unwrap();
}

/// `bytes` with the container's width and height replaced (checksum recomputed).
fn with_size(bytes: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut f = File::from_bytes(bytes).unwrap();
    f.width = w;
    f.height = h;
    f.to_bytes()
}

/// `bytes` declaring one channel instead of three: every decoder's parser refuses it, cheaply.
fn with_one_channel(bytes: &[u8]) -> Vec<u8> {
    let mut f = File::from_bytes(bytes).unwrap();
    f.channels = 1;
    f.to_bytes()
}

/// Runs `diffc decode` on `file` with `extra` flags: (exit code, stderr, seconds).
fn decode(file: &Path, extra: &[&str]) -> (Option<i32>, String, f64) {
    let out = file.with_extension("png");
    let _ = std::fs::remove_file(&out);
    let t0 = Instant::now();
    let o = bin()
        .args([
            "decode",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ])
        .args(extra)
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    if !o.status.success() {
        assert!(!out.exists(), "a failed decode left {}", out.display());
    }
    (o.status.code(), stderr(&o), secs)
}

/// Encodes a `w`×`h` test image with `codec` through the binary and returns the file's bytes.
fn encode(name: &str, w: u32, h: u32, args: &[&str]) -> Vec<u8> {
    let (png, dfc) = (tmp(&format!("{name}.png")), tmp(&format!("{name}.dfc")));
    write_png(&png, w, h);
    let o = bin()
        .args([
            "encode",
            png.to_str().unwrap(),
            "-o",
            dfc.to_str().unwrap(),
            "-q",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    std::fs::read(&dfc).unwrap()
}

const BOMB: &str = "image size 8000×8000 = 64000000 exceeds the decode limit of 8388608 pixels";

/// A small real file of each codec, blown up to declare 8000×8000: refused by default at once
/// (well within 20 s: the check precedes the model load), accepted past the limit with
/// `--max-pixels 64000000` (then refused by the next check, the one-channel header, before any
/// work); and the small file itself is refused below its size and decodes at exactly its size.
#[test]
fn huge_declared_images_are_refused_for_every_codec() {
    let codecs: [(&str, &[&str]); 3] = [
        (
            "diffc",
            &["--codec", "diffc-f@gauss-spectrum", "--stop", "step:6"],
        ),
        ("hfd-mse", &["--codec", "hfd-mse", "--bpp", "3"]),
        ("hfd", &["--codec", "hfd", "--bpp", "3"]),
    ];
    for (name, args) in codecs {
        let small = encode(name, 24, 16, args);
        let bomb = tmp(&format!("{name}-bomb.dfc"));
        std::fs::write(&bomb, with_size(&small, 8000, 8000)).unwrap();
        assert!(
            std::fs::metadata(&bomb).unwrap().len() < 400,
            "{name}: a small file"
        );
        let (code, err, secs) = decode(&bomb, &[]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains(BOMB), "{name}: {err}");
        assert!(
            err.contains("--max-pixels"),
            "{name}: the message names the flag: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(secs < 20.0, "{name}: refused after {secs:.1} s");

        // raised past 64 Mpixel, the file reaches the decoder's own checks
        let past = tmp(&format!("{name}-bomb1.dfc"));
        std::fs::write(&past, with_one_channel(&with_size(&small, 8000, 8000))).unwrap();
        let (code, err, _) = decode(&past, &["--max-pixels", "64000000"]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(!err.contains("decode limit"), "{name}: {err}");
        assert!(err.contains("channels"), "{name}: {err}");

        // the real 24×16 file: refused under 384 pixels, decoded at 384
        let f = tmp(&format!("{name}-small.dfc"));
        std::fs::write(&f, &small).unwrap();
        let (code, err, _) = decode(&f, &["--max-pixels", "383", "--steps", "2"]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(
            err.contains("image size 24×16 = 384 exceeds the decode limit of 383 pixels"),
            "{name}: {err}"
        );
        let (code, err, _) = decode(&f, &["--max-pixels", "384", "--steps", "2"]);
        assert_eq!(code, Some(0), "{name}: {err}");
        let img = image::open(f.with_extension("png")).unwrap();
        assert_eq!((img.width(), img.height()), (24, 16));
    }
}

/// DiffC over Stable Diffusion latents (the tiny SD 1.5 fixture): a huge declared image is
/// refused before the weights are read; past the limit, the SD path's own 1-Mpixel bound.
#[test]
fn huge_declared_images_are_refused_for_latent_diffc() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd/sd15-tiny");
    let model = format!("sd:{}", dir.display());
    let spec: CodecSpec = format!("diffc-f@{model}").parse().unwrap();
    let c = registry::build(&spec, &Options::default(), &candle_core::Device::Cpu)
        .unwrap()
        .codec;
    let img = diffc::image_io::Image::zeros(diffc::image_io::Shape::new(3, 16, 24));
    let small = c.encode(&img, RateTarget::Step(1)).unwrap();
    let bomb = tmp("sd-bomb.dfc");
    std::fs::write(&bomb, with_size(&small, 8000, 8000)).unwrap();
    let (code, err, secs) = decode(&bomb, &["--model", &model]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(BOMB), "{err}");
    assert!(secs < 20.0, "refused after {secs:.1} s");
    let (code, err, _) = decode(&bomb, &["--model", &model, "--max-pixels", "64000000"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("larger than the Stable Diffusion path takes"),
        "{err}"
    );
    // the library refuses it too, typed
    let e = c
        .decode(&with_size(&small, 8000, 8000), &DecodeOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::Format(FormatError::OverLimit { .. })),
        "{e}"
    );
}

/// The library decoders carry the limit in [`DecodeOptions::max_pixels`] (default
/// [`DEFAULT_MAX_PIXELS`]) and refuse with a typed [`FormatError::OverLimit`].
#[test]
fn library_decoders_refuse_typed_and_the_default_fits_common_sizes() {
    assert_eq!(DecodeOptions::default().max_pixels, DEFAULT_MAX_PIXELS);
    const {
        assert!(DEFAULT_MAX_PIXELS >= 2048 * 2048 && DEFAULT_MAX_PIXELS >= 3840 * 2160);
        assert!(DEFAULT_MAX_PIXELS >= 768 * 512);
        assert!(DEFAULT_MAX_PIXELS < 8000 * 8000);
    }
    let cpu = candle_core::Device::Cpu;
    for spec in ["diffc-f@gauss-spectrum", "hfd-mse", "hfd"] {
        let s: CodecSpec = spec.parse().unwrap();
        let c = registry::build(&s, &Options::default(), &cpu)
            .unwrap()
            .codec;
        let img = diffc::image_io::Image::zeros(diffc::image_io::Shape::new(3, 16, 24));
        let target = if spec.starts_with("diffc") {
            RateTarget::Step(2)
        } else {
            RateTarget::Bpp(3.0)
        };
        let small = c.encode(&img, target).unwrap();
        let e = c
            .decode(&with_size(&small, 8000, 8000), &DecodeOptions::default())
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Format(FormatError::OverLimit {
                    value: 64_000_000,
                    limit: DEFAULT_MAX_PIXELS,
                    ..
                })
            ),
            "{spec}: {e}"
        );
        let tight = DecodeOptions {
            max_pixels: 383,
            steps: Some(2),
            ..DecodeOptions::default()
        };
        assert!(
            matches!(
                c.decode(&small, &tight),
                Err(Error::Format(FormatError::OverLimit { .. }))
            ),
            "{spec}"
        );
        let fits = DecodeOptions {
            max_pixels: 384,
            ..tight
        };
        assert_eq!(
            c.decode(&small, &fits).unwrap().data.len(),
            3 * 384,
            "{spec}"
        );
    }
}

/// A DiffC trajectory may take at most 64 steps per pixel of the limit: a 128-step file of
/// 16×16 pixels (32,768 pixel-steps) is refused under a 300-pixel limit (19,200 pixel-steps),
/// decodes under 512, and `info` still shows the header of a file beyond its limit.
#[test]
fn long_trajectories_are_bounded_by_the_pixel_limit() {
    let bytes = encode(
        "long",
        16,
        16,
        &[
            "--model",
            "gauss-spectrum",
            "--steps",
            "128",
            "--stop",
            "step:128",
        ],
    );
    let f = tmp("long.dfc");
    std::fs::write(&f, &bytes).unwrap();
    let (code, err, _) = decode(&f, &["--max-pixels", "300", "--steps", "2"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "a trajectory of 128 steps over 256 pixels = 32768 exceeds the decode limit of \
             19200 pixel-steps"
        ),
        "{err}"
    );
    let (code, err, _) = decode(&f, &["--max-pixels", "512", "--steps", "2"]);
    assert_eq!(code, Some(0), "{err}");
    for max in ["300", "512"] {
        let o = bin()
            .args(["info", f.to_str().unwrap(), "--json", "--max-pixels", max])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["width"], 16);
        assert_eq!(v["cuts"].is_null(), max == "300", "{v}");
    }
    let cut = tmp("long-cut.dfc");
    let o = bin()
        .args(["truncate", f.to_str().unwrap(), "-o", cut.to_str().unwrap()])
        .args(["--stop", "step:3", "--max-pixels", "300", "-q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pixel-steps"), "{}", stderr(&o));
    assert!(!cut.exists());
}

/// The step-KL code prior (the codec's `step_code_table`, rebuilt here).
fn step_code_table() -> diffc::entropy::Table {
    let w: Vec<f64> = (-255i32..=255)
        .map(|d| libm::exp(-(d.abs() as f64) / 3.0) + 1e-7)
        .collect();
    diffc::entropy::Table::from_weights(&w)
}

/// A 1×1 UQ file whose first step claims the largest KL code (2^31.9 bits over 3 dimensions):
/// its UQ tables would hold millions of entries per step, so the decoder, `info` and
/// `truncate` refuse the step before building them.
#[test]
fn a_uq_step_with_absurd_kl_is_refused_before_its_tables() {
    let cpu = candle_core::Device::Cpu;
    let model = diffc::denoiser::load("gauss-spectrum", &cpu).unwrap();
    let fp = model.fingerprint() as u16;
    let codec = DiffC::new(model);
    let mut w = diffc::entropy::Writer::new();
    w.symbol(255 + 255, &step_code_table()).unwrap();
    for _ in 0..64 {
        w.raw(0, 16).unwrap();
    }
    let mut body = Vec::new();
    DiffcHeader {
        stop: 1,
        frac: 0,
        channel: diffc::channel::ChannelKind::Uq,
    }
    .write(&mut body);
    body.extend_from_slice(&w.finish());
    let bytes = File {
        codec: CodecId::DiffC,
        model_fp: fp,
        channels: 3,
        width: 1,
        height: 1,
        seed: 0,
        params: None,
        body,
    }
    .to_bytes();
    let e = codec.decode(&bytes, &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::Format(FormatError::Corrupt { .. }))
            && e.to_string().contains("prior scale"),
        "{e}"
    );
    let e = diffc::codec::truncate::cut_points(&bytes).unwrap_err();
    assert!(e.to_string().contains("prior scale"), "{e}");
    let f = tmp("uq-bomb.dfc");
    std::fs::write(&f, &bytes).unwrap();
    let (code, err, secs) = decode(&f, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("prior scale"), "{err}");
    assert!(secs < 20.0, "refused after {secs:.1} s");
}

/// A DiffC file over `channel` (gauss-spectrum's fingerprint) of `w`×`h` with `params` and
/// a body header stopping at `stop` steps, and a payload of zeros.
fn diffc_file(
    channel: diffc::channel::ChannelKind,
    w: u32,
    h: u32,
    stop: usize,
    params: Option<&diffc::codec::diffc::DiffcParams>,
) -> Vec<u8> {
    use diffc::denoiser::Denoiser;
    let fp = diffc::denoiser::gauss_spectrum().unwrap().fingerprint() as u16;
    let mut body = Vec::new();
    DiffcHeader {
        stop,
        frac: 0,
        channel,
    }
    .write(&mut body);
    body.extend_from_slice(&[0; 16]);
    File {
        codec: CodecId::DiffC,
        model_fp: fp,
        channels: 3,
        width: w,
        height: h,
        seed: 0,
        params: params.map(|p| {
            let mut b = Vec::new();
            p.write(&mut b);
            b
        }),
        body,
    }
    .to_bytes()
}

/// Declared work beyond the limits, per codec (DiffC over PFR, UQ and mixed; HFD-MSE and HFD):
/// sizes over the pixel limit, trajectories over the step bound, step counts, PFR chunk sizes
/// and candidate counts (log2 K) over the format's, and HFD rate codes over the model's are each
/// refused with a typed error, at once (before the model runs or the latent is allocated).
#[test]
fn declared_work_beyond_the_limits_is_refused_per_codec() {
    use diffc::channel::ChannelKind;
    use diffc::codec::diffc::DiffcParams;
    let codec = DiffC::new(std::sync::Arc::new(
        diffc::denoiser::gauss_spectrum().unwrap(),
    ));
    let opts = DecodeOptions {
        steps: Some(2),
        ..DecodeOptions::default()
    };
    let quick = |what: &str, bytes: &[u8], want: &dyn Fn(&Error) -> bool| {
        let t0 = Instant::now();
        let e = codec.decode(bytes, &opts).unwrap_err();
        let secs = t0.elapsed().as_secs_f64();
        assert!(want(&e), "{what}: {e}");
        assert!(secs < 2.0, "{what}: refused after {secs:.2} s");
    };
    let over = |e: &Error| matches!(e, Error::Format(FormatError::OverLimit { .. }));
    let corrupt = |e: &Error| matches!(e, Error::Format(FormatError::Corrupt { .. }));
    for ch in [ChannelKind::Pfr, ChannelKind::Uq, ChannelKind::Mixed] {
        let base = DiffcParams {
            channel: ch,
            ..DiffcParams::default()
        };
        // a sound 16×16 file decodes (so the refusals below are the limits', not the file's)
        codec
            .decode(&diffc_file(ch, 16, 16, 0, None), &opts)
            .unwrap();
        // 8000×8000 and 4096×2049 (just over 2^23 pixels): over the pixel limit
        quick(
            &format!("{ch:?} size"),
            &diffc_file(ch, 8000, 8000, 1, None),
            &over,
        );
        quick(
            &format!("{ch:?} size"),
            &diffc_file(ch, 4096, 2049, 1, None),
            &over,
        );
        // 4096 steps over a 2048×2048 image: 2^34 pixel-steps, over 2^23 × 64
        let long = DiffcParams {
            steps: 4096,
            ..base.clone()
        };
        quick(
            &format!("{ch:?} trajectory"),
            &diffc_file(ch, 2048, 2048, 4096, Some(&long)),
            &over,
        );
        // the format's own bounds: steps, a stop beyond them, chunk KL, padding, log2 K
        let bad: [(&str, DiffcParams); 5] = [
            (
                "steps",
                DiffcParams {
                    steps: 4097,
                    ..base.clone()
                },
            ),
            (
                "chunk KL",
                DiffcParams {
                    pfr: diffc::channel::pfr::PfrParams {
                        chunk_kl: 0.0,
                        ..base.pfr
                    },
                    ..base.clone()
                },
            ),
            (
                "chunk KL",
                DiffcParams {
                    pfr: diffc::channel::pfr::PfrParams {
                        chunk_kl: 64.0,
                        ..base.pfr
                    },
                    ..base.clone()
                },
            ),
            (
                "padding",
                DiffcParams {
                    pfr: diffc::channel::pfr::PfrParams {
                        padding: 17,
                        ..base.pfr
                    },
                    ..base.clone()
                },
            ),
            (
                "log2 K",
                DiffcParams {
                    pfr: diffc::channel::pfr::PfrParams {
                        max_log2k: 25,
                        ..base.pfr
                    },
                    ..base.clone()
                },
            ),
        ];
        for (what, p) in &bad {
            quick(
                &format!("{ch:?} {what}"),
                &diffc_file(ch, 16, 16, 1, Some(p)),
                &corrupt,
            );
        }
        quick(
            &format!("{ch:?} stop beyond the schedule"),
            &diffc_file(ch, 16, 16, 25, None),
            &corrupt,
        );
        quick(
            &format!("{ch:?} stop beyond the format"),
            &diffc_file(ch, 16, 16, 5000, None),
            &corrupt,
        );
    }

    // HFD-MSE and HFD: a rate code beyond the model's, and a size over the limit
    let cpu = candle_core::Device::Cpu;
    for spec in ["hfd-mse", "hfd"] {
        let s: CodecSpec = spec.parse().unwrap();
        let c = registry::build(&s, &Options::default(), &cpu)
            .unwrap()
            .codec;
        let img = diffc::image_io::Image::zeros(diffc::image_io::Shape::new(3, 16, 16));
        let small = c.encode(&img, RateTarget::Bpp(4.0)).unwrap();
        let mut f = File::from_bytes(&small).unwrap();
        let mut cur = diffc::container::Cursor::new(&f.body);
        let h = diffc::codec::hfd_mse::HfdHeader::read(&mut cur, f.codec).unwrap();
        let rest = cur.rest().to_vec();
        let mut body = Vec::new();
        diffc::codec::hfd_mse::HfdHeader {
            rate_code: u64::MAX,
            ..h
        }
        .write(&mut body);
        body.extend_from_slice(&rest);
        f.body = body;
        let t0 = Instant::now();
        let e = c.decode(&f.to_bytes(), &opts).unwrap_err();
        assert!(
            corrupt(&e) && e.to_string().contains("rate code"),
            "{spec}: {e}"
        );
        let e = c.decode(&with_size(&small, 4096, 2049), &opts).unwrap_err();
        assert!(over(&e), "{spec}: {e}");
        assert!(t0.elapsed().as_secs_f64() < 2.0, "{spec}: slow refusal");
    }
}
