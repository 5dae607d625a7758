//! HFD's MSE codec on the shipped checkpoint: JAX parity of every network, exact latent
//! rebuild for both quantisers and thread counts, budgets, and corrupt files.
use candle_core::{Device, Tensor};
use diffc::codec::hfd_mse::{HfdMse, Quant, RATE_STEPS};
use diffc::codec::{Codec, DecodeOptions, RateTarget};
use diffc::container::{CodecId, File};
use diffc::error::{Error, FormatError};
use diffc::image_io::{Image, Shape};
use diffc::nn::hyperprior::{Hyperprior, scale_channels};
use std::path::Path;

use crate::common;

const CKPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/checkpoints/hfd-mse.safetensors"
);
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hfd_mse_parity.safetensors"
);

fn photo(h: usize, w: usize, y0: usize, x0: usize) -> Image {
    let img = diffc::image_io::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/eval/samples/astronaut-256.png"
    )))
    .unwrap();
    let s = img.shape;
    let mut out = Image::zeros(Shape::new(3, h, w));
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                out.data[(c * h + y) * w + x] = img.data[(c * s.h + y0 + y) * s.w + x0 + x];
            }
        }
    }
    out
}

fn codec(quant: Quant) -> HfdMse {
    let mut c = HfdMse::load(CKPT, &Device::Cpu).unwrap();
    c.quant = quant;
    c.seed = 9;
    c
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Each network, fed the JAX inputs of its stage, reproduces the JAX outputs.
#[test]
fn networks_match_jax() {
    let bytes = std::fs::read(FIXTURE)
        .expect("fixture (python notebooks/train_hfd_mse.py --resume --write-fixture ...)");
    let ckpt = std::fs::read(CKPT).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let crc = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("checkpoint_crc32"))
        .cloned();
    assert_eq!(
        crc,
        Some(crc32fast::hash(&ckpt).to_string()),
        "fixture was written for another checkpoint"
    );
    let t = |k: &str| -> Tensor {
        let v = st.tensor(k).unwrap();
        Tensor::from_raw_buffer(v.data(), candle_core::DType::F32, v.shape(), &Device::Cpu).unwrap()
    };
    let (net, _) = Hyperprior::load(Path::new(CKPT), &Device::Cpu).unwrap();
    let r = t("rate").to_vec1::<f32>().unwrap()[0];
    let (g, gi) = net.gains(r);
    let yg = scale_channels(&net.analysis(&t("x")).unwrap(), &g).unwrap();
    assert!(
        max_rel(&yg, &t("y")) < 1e-4,
        "g_a: {}",
        max_rel(&yg, &t("y"))
    );
    let z = net.hyper_analysis(&t("y")).unwrap();
    assert!(max_rel(&z, &t("z")) < 1e-4, "h_a: {}", max_rel(&z, &t("z")));
    let (mu, ls) = net.hyper_synthesis(&t("z_hat")).unwrap();
    assert!(
        max_rel(&mu, &t("mu")) < 1e-4,
        "h_s μ: {}",
        max_rel(&mu, &t("mu"))
    );
    assert!(
        max_rel(&ls, &t("log_scale")) < 1e-4,
        "h_s σ: {}",
        max_rel(&ls, &t("log_scale"))
    );
    let x = net
        .synthesis(&scale_channels(&t("y_hat"), &gi).unwrap())
        .unwrap();
    assert!(
        max_rel(&x, &t("x_hat")) < 1e-4,
        "g_s: {}",
        max_rel(&x, &t("x_hat"))
    );
}

/// The decoder rebuilds exactly the encoder's ŷ, for rounding and the shared dither,
/// with 1 and 2 threads, on an odd-sized image.
#[test]
fn decoder_rebuilds_the_encoders_latent() {
    let img = photo(77, 131, 30, 60);
    for quant in [Quant::Round, Quant::Dither] {
        let c = codec(quant);
        let code = RATE_STEPS + 5;
        let mut outs = vec![];
        for threads in [1, 2] {
            outs.push(pool(threads).install(|| {
                let y = c.analyse(&img).unwrap();
                let (payload, yq) = c.encode_payload(&y, code, c.seed).unwrap();
                let bytes = c
                    .file(CodecId::HfdMse, img.shape, code, None, &payload)
                    .to_bytes();
                let p = c.parse(&bytes, CodecId::HfdMse).unwrap();
                let dec = c.decode_latent(&p).unwrap();
                assert!(
                    yq.iter().zip(&dec).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{quant:?}: ŷ differs"
                );
                let img = c.decode(&bytes, &DecodeOptions::default()).unwrap();
                (bytes, img)
            }));
        }
        assert_eq!(
            outs[0].0, outs[1].0,
            "{quant:?}: bitstream depends on the thread count"
        );
        assert_eq!(
            outs[0].1, outs[1].1,
            "{quant:?}: decode depends on the thread count"
        );
    }
}

fn psnr(a: &Image, b: &Image) -> f64 {
    let (x, y) = (a.to_rgb8(), b.to_rgb8());
    let mse = x
        .iter()
        .zip(&y)
        .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
        .sum::<f64>()
        / x.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-10)).log10()
}

/// `--bpp` files fit their budget, more bits give less error, and a budget below the
/// model's lowest rate is a clear error.
#[test]
fn budgets_are_respected_and_rate_buys_quality() {
    let img = photo(128, 192, 64, 32);
    let c = codec(Quant::Round);
    let px = img.shape.pixels() as f64;
    let lo = c.encode(&img, RateTarget::Step(0)).unwrap().len() as f64 * 8.0 / px;
    let hi = c
        .encode(&img, RateTarget::Step(c.max_rate_code() as usize))
        .unwrap()
        .len() as f64
        * 8.0
        / px;
    assert!(hi > 2.0 * lo, "rates span {lo}..{hi} bpp");
    let mut last = 0.0;
    for f in [0.0, 0.3, 0.7, 1.0] {
        let b = lo + f * (hi - lo);
        let bytes = c.encode(&img, RateTarget::Bpp(b)).unwrap();
        assert!(
            bytes.len() as f64 * 8.0 <= b * px + 1e-9,
            "{} bytes over {b} bpp",
            bytes.len()
        );
        let q = psnr(&img, &c.decode(&bytes, &DecodeOptions::default()).unwrap());
        assert!(q > last, "{b} bpp gave {q} dB, less than {last}");
        last = q;
    }
    let err = c.encode(&img, RateTarget::Bpp(lo * 0.5)).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported(m) if m.contains("lowest rate")),
        "{err}"
    );
    assert!(c.encode(&img, RateTarget::LogSnr(1.0)).is_err());
}

/// Every truncation and 1,000 byte flips (CRC caught), plus 300 body corruptions behind a
/// recomputed CRC: errors or decodes, never a panic.
#[test]
fn corrupt_files_never_panic() {
    let img = photo(64, 64, 0, 0);
    for quant in [Quant::Round, Quant::Dither] {
        let c = codec(quant);
        let bytes = c.encode(&img, RateTarget::Step(40)).unwrap();
        let opts = DecodeOptions::default();
        common::corrupt::check(&bytes, 300, |b| c.decode(b, &opts).map(drop));
    }
}

#[test]
fn wrong_codec_or_model_is_refused() {
    let img = photo(64, 64, 0, 0);
    let c = codec(Quant::Round);
    let bytes = c.encode(&img, RateTarget::Step(10)).unwrap();
    let mut f = File::from_bytes(&bytes).unwrap();
    f.model_fp ^= 0x5a5a;
    let err = c
        .decode(&f.to_bytes(), &DecodeOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::Format(FormatError::WrongModel { .. })),
        "{err}"
    );
    f.model_fp ^= 0x5a5a;
    f.codec = CodecId::DiffC;
    let err = c
        .decode(&f.to_bytes(), &DecodeOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Format(FormatError::WrongCodec {
                found: "diffc",
                expected: "hfd-mse"
            })
        ),
        "{err}"
    );
}

/// HFD decoding (MSE reconstruction + refiner) is deterministic across runs and thread
/// counts for both samplers, changes the MSE reconstruction, and refuses another refiner.
#[test]
fn hfd_decoding_is_deterministic_and_checks_its_refiner() {
    use diffc::codec::DecoderKind;
    use diffc::codec::hfd::Hfd;
    let img = photo(40, 56, 100, 100);
    let hfd = Hfd::load(Some(CKPT), None, &Device::Cpu).unwrap();
    let bytes = hfd.encode(&img, RateTarget::Step(40)).unwrap();
    let mse = hfd
        .mse
        .reconstruct(&hfd.mse.parse(&bytes, CodecId::Hfd).unwrap())
        .unwrap();
    for decoder in [DecoderKind::Ode, DecoderKind::Sde] {
        let opts = DecodeOptions {
            decoder,
            steps: Some(3),
            progress: false,
            realism: None,
            ..DecodeOptions::default()
        };
        let a = pool(1).install(|| hfd.decode(&bytes, &opts).unwrap());
        let b = pool(2).install(|| hfd.decode(&bytes, &opts).unwrap());
        assert_eq!(a, b, "{decoder:?}: decode depends on the thread count");
        assert_ne!(a, mse, "{decoder:?}: the refiner changed nothing");
    }
    // an hfd file is not an hfd-mse file, and a different refiner fingerprint is refused
    let err = hfd
        .mse
        .decode(&bytes, &DecodeOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Format(FormatError::WrongCodec { found: "hfd", .. })
        ),
        "{err}"
    );
    let mut f = File::from_bytes(&bytes).unwrap();
    let n = f.body.iter().position(|&b| b < 0x80).unwrap() + 2; // after the rate varint and quant byte
    f.body[n] ^= 0xff;
    let err = hfd
        .decode(&f.to_bytes(), &DecodeOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Format(FormatError::WrongModel {
                what: "refiner",
                ..
            })
        ),
        "{err}"
    );
}

/// A decoder whose entropy model computes other scales than the encoder's (another build, CPU
/// or device: injected here as a relative error on every scale) would pick other tables for
/// some symbols and decode garbage silently; the file's level checksum turns that into an
/// error naming the cause. A perturbation too small to move any level decodes bit-identically.
#[test]
fn a_decoder_with_other_scales_reports_the_mismatch() {
    let img = photo(48, 64, 40, 80);
    for quant in [Quant::Round, Quant::Dither] {
        let enc = codec(quant);
        let bytes = enc
            .encode(&img, RateTarget::Step(RATE_STEPS as usize + 5))
            .unwrap();
        let f = File::from_bytes(&bytes).unwrap();
        let mut cur = diffc::container::Cursor::new(&f.body);
        let h = diffc::codec::hfd_mse::HfdHeader::read(&mut cur, CodecId::HfdMse).unwrap();
        assert!(h.levels_checked, "{quant:?}: files carry the check");
        let want = enc.decode(&bytes, &DecodeOptions::default()).unwrap();
        let mut dec = codec(quant);
        dec.scale_perturbation = 1e-12;
        assert_eq!(
            dec.decode(&bytes, &DecodeOptions::default()).unwrap(),
            want,
            "{quant:?}: a perturbation below every level gap changes nothing"
        );
        for eps in [1e-2, -3e-3] {
            dec.scale_perturbation = eps;
            let e = dec.decode(&bytes, &DecodeOptions::default()).unwrap_err();
            assert!(
                matches!(
                    &e,
                    Error::Format(FormatError::Corrupt {
                        field: "scale levels",
                        ..
                    })
                ) && e.to_string().contains("another build"),
                "{quant:?} {eps}: {e}"
            );
        }
    }
}
