//! Latent DiffC over Stable Diffusion (`--model sd:DIR`) on the tiny random-weight SD 1.5 and
//! SD 2.1-v fixtures: real files within budget, deterministic decoding, the model checked.
use diffc::codec::Codec;
use diffc::codec::registry::{self, AnyCodec, CodecSpec, Options};
use diffc::codec::{DecodeOptions, DecoderKind, RateTarget};
use diffc::error::{Error, FormatError};
use diffc::image_io::{Image, Shape};
use std::path::PathBuf;

fn dir(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sd")
        .join(name)
        .display()
        .to_string()
}

fn codec(name: &str) -> AnyCodec {
    let spec: CodecSpec = format!("diffc-f@sd:{}", dir(name)).parse().unwrap();
    registry::build(&spec, &Options::default(), &candle_core::Device::Cpu)
        .unwrap()
        .codec
}

/// A smooth 48×64 test image (not a multiple of 64 high: the space pads it).
fn image() -> Image {
    let shape = Shape::new(3, 48, 64);
    let mut img = Image::zeros(shape);
    for c in 0..3 {
        for y in 0..48 {
            for x in 0..64 {
                img.data[(c * 48 + y) * 64 + x] = ((x as f32 * 0.1 + c as f32).sin() * 0.5
                    + (y as f32 * 0.07).cos() * 0.3)
                    .clamp(-1.0, 1.0);
            }
        }
    }
    img
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

#[test]
fn latent_diffc_round_trips_within_budget_and_decodes_deterministically() {
    let img = image();
    for name in ["sd15-tiny", "sd2v-tiny"] {
        let c = codec(name);
        let AnyCodec::DiffC(d) = &c else {
            panic!("not DiffC")
        };
        assert_eq!(
            d.space.latent_shape(img.shape).unwrap(),
            Shape::new(4, 8, 8),
            "48×64 pads to 64×64, an 8×8 latent"
        );
        let bpp = 0.5;
        let bytes = c.encode(&img, RateTarget::Bpp(bpp)).unwrap();
        assert!(
            bytes.len() * 8 <= (bpp * 48.0 * 64.0) as usize,
            "{name}: {} bytes over the budget",
            bytes.len()
        );
        let parsed = d.parse(&bytes).unwrap();
        assert!(
            parsed.header.stop_steps() > 0.0,
            "{name}: no step was coded"
        );
        for decoder in [DecoderKind::Ode, DecoderKind::Sde] {
            let opts = DecodeOptions {
                decoder,
                steps: Some(4),
                progress: false,
            };
            let a = pool(1).install(|| c.decode(&bytes, &opts).unwrap());
            let b = pool(2).install(|| c.decode(&bytes, &opts).unwrap());
            assert_eq!(a.shape, img.shape);
            assert_eq!(
                a, b,
                "{name} {decoder:?}: decode depends on the thread count"
            );
            assert_eq!(
                a,
                c.decode(&bytes, &opts).unwrap(),
                "{name}: not repeatable"
            );
        }
    }
    // a file of one model is refused by the other before any work
    let bytes = codec("sd15-tiny")
        .encode(&img, RateTarget::Step(3))
        .unwrap();
    let err = codec("sd2v-tiny")
        .decode(&bytes, &DecodeOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::Format(FormatError::WrongModel { .. })),
        "{err}"
    );
}

#[test]
fn the_cli_needs_the_same_sd_folder_to_decode() {
    let tmp = std::env::temp_dir().join(format!("diffc-sd-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let png = tmp.join("in.png");
    diffc::image_io::save_png(&image(), &png).unwrap();
    let (dfc, out) = (tmp.join("a.dfc"), tmp.join("out.png"));
    let model = format!("sd:{}", dir("sd15-tiny"));
    let bin = env!("CARGO_BIN_EXE_diffc");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let o = run(&[
        "encode",
        png.to_str().unwrap(),
        "-o",
        dfc.to_str().unwrap(),
        "--model",
        &model,
        "--bpp",
        "0.5",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "decode",
        dfc.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--model sd:DIR"));
    assert!(!out.exists());
    let o = run(&[
        "decode",
        dfc.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        &model,
        "--steps",
        "3",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (64, 48));
}

/// `--dtype f16` runs the SD networks in half precision: still a real, deterministic file.
#[test]
fn half_precision_latent_diffc_is_deterministic() {
    let spec: CodecSpec = format!("diffc-f@sd:{}", dir("sd15-tiny")).parse().unwrap();
    let opts = Options {
        sd_dtype: Some(candle_core::DType::F16),
        ..Options::default()
    };
    let c = registry::build(&spec, &opts, &candle_core::Device::Cpu)
        .unwrap()
        .codec;
    let img = image();
    let bytes = c.encode(&img, RateTarget::Bpp(0.5)).unwrap();
    assert!(bytes.len() * 8 <= (0.5 * 48.0 * 64.0) as usize);
    assert_eq!(bytes, c.encode(&img, RateTarget::Bpp(0.5)).unwrap());
    let opts = DecodeOptions {
        steps: Some(3),
        ..DecodeOptions::default()
    };
    let a = c.decode(&bytes, &opts).unwrap();
    assert_eq!(a, c.decode(&bytes, &opts).unwrap());
    assert!(a.data.iter().all(|v| v.is_finite()));
}

/// The harness takes `diffc-f@sd:DIR` like any codec spec: real file sizes within the target.
#[test]
fn the_harness_runs_latent_diffc() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    diffc::image_io::save_png(&image(), &data.join("a.png")).unwrap();
    let out = t.path().join("out");
    let codec = format!("diffc-f:4@sd:{}", dir("sd15-tiny"));
    let cfg = diffc::eval::EvalConfig {
        device: Default::default(),
        data,
        codecs: vec![codec.clone()],
        bpp: vec![0.5],
        out: out.clone(),
        shard: None,
        model: None,
        limit: None,
        patch: 16,
        features: diffc::eval::FeatureKind::None,
        inception_weights: None,
        save_images: false,
        jobs: Some(2),
        progress: false,
    };
    diffc::eval::run(&cfg).unwrap();
    let mut rd = csv::Reader::from_path(out.join("results.csv")).unwrap();
    let rows: Vec<diffc::eval::Row> = rd.deserialize().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].codec, codec);
    assert!(rows[0].bytes > 0 && rows[0].bpp <= 0.5, "{:?}", rows[0]);
}
