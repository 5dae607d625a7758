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
                realism: None,
                ..DecodeOptions::default()
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
        save_images: Some(false),
        image_crop: None,
        realism_ref: None,
        jobs: Some(2),
        max_pixels: diffc::codec::DEFAULT_MAX_PIXELS,
        progress: false,
    };
    diffc::eval::run(&cfg).unwrap();
    let mut rd = csv::Reader::from_path(out.join("results.csv")).unwrap();
    let rows: Vec<diffc::eval::Row> = rd.deserialize().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].codec, codec);
    assert!(rows[0].bytes > 0 && rows[0].bpp <= 0.5, "{:?}", rows[0]);
}

/// An SD file records its space (family, prediction, 16 more fingerprint bits, latent shape);
/// a file whose record disagrees with the decoder's model is refused before any model work.
#[test]
fn an_sd_file_records_its_space_and_a_mismatch_is_refused() {
    use diffc::codec::diffc::DiffcParams;
    use diffc::codec::space::SpaceTag;
    use diffc::container::File;
    use diffc::nn::sd::{Family, PredictionType};
    let img = image();
    for (name, family, prediction) in [
        ("sd15-tiny", Family::Sd1, PredictionType::Epsilon),
        ("sd2v-tiny", Family::Sd2, PredictionType::VPrediction),
    ] {
        let c = codec(name);
        let bytes = c.encode(&img, RateTarget::Step(2)).unwrap();
        let f = File::from_bytes(&bytes).unwrap();
        let header =
            diffc::codec::diffc::DiffcHeader::read(&mut diffc::container::Cursor::new(&f.body))
                .unwrap();
        let (params, tag) =
            DiffcParams::read_block(f.params.as_ref().unwrap(), header.channel).unwrap();
        assert_eq!(
            params.pfr,
            registry::SD_PFR,
            "{name}: SD files use SD's PFR chunks"
        );
        let SpaceTag::SdVae {
            family: fam,
            prediction: pred,
            latent,
            ..
        } = tag
        else {
            panic!("{name}: no SD space tag")
        };
        assert_eq!(
            (fam, pred, latent),
            (family, prediction, Shape::new(4, 8, 8))
        );
        // the tag is the params block's tail: head, 2 fingerprint bytes, c, h, w
        let at = f.params.as_ref().unwrap().len() - 6;
        for (offset, flip) in [(0, 0x10u8), (1, 0x01), (4, 0x03)] {
            let mut g = f.clone();
            g.params.as_mut().unwrap()[at + offset] ^= flip;
            let err = c
                .decode(&g.to_bytes(), &DecodeOptions::default())
                .unwrap_err();
            assert!(
                matches!(err, Error::Format(FormatError::WrongSpace { .. })),
                "{name}, byte {offset}: {err}"
            );
        }
    }
    // a pixel model refuses an SD file
    let bytes = codec("sd15-tiny")
        .encode(&img, RateTarget::Step(2))
        .unwrap();
    let pixel: CodecSpec = "diffc-f".parse().unwrap();
    let pixel = registry::build(&pixel, &Options::default(), &candle_core::Device::Cpu)
        .unwrap()
        .codec;
    assert!(pixel.decode(&bytes, &DecodeOptions::default()).is_err());
}

/// Other weights (one byte of one tensor changed) are refused from the folder's headers, before
/// the weights are loaded, by the library and by the CLI, and nothing is written.
#[test]
fn other_weights_are_refused_before_loading() {
    let tmp = std::env::temp_dir().join(format!("diffc-sd-other-{}", std::process::id()));
    let copy = tmp.join("sd15-other");
    copy_dir(std::path::Path::new(&dir("sd15-tiny")), &copy);
    let weights = copy.join("vae/diffusion_pytorch_model.safetensors");
    let mut b = std::fs::read(&weights).unwrap();
    let header_len = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    b[8 + header_len] ^= 0x40; // the first byte of the first tensor's data
    std::fs::write(&weights, b).unwrap();

    let img = image();
    let bytes = codec("sd15-tiny")
        .encode(&img, RateTarget::Step(2))
        .unwrap();
    let f = diffc::container::File::from_bytes(&bytes).unwrap();
    let spec: CodecSpec = format!("diffc-f@sd:{}", copy.display()).parse().unwrap();
    let opts = Options {
        fingerprint: Some(f.model_fp),
        ..Options::default()
    };
    let err = registry::build(&spec, &opts, &candle_core::Device::Cpu)
        .err()
        .expect("other weights accepted");
    assert!(
        matches!(err, Error::Format(FormatError::WrongModel { .. })),
        "{err}"
    );

    let (dfc, out) = (tmp.join("a.dfc"), tmp.join("out.png"));
    std::fs::write(&dfc, &bytes).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_diffc"))
        .args([
            "decode",
            dfc.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ])
        .args(["--model", &format!("sd:{}", copy.display())])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong model"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&tmp).ok();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
