//! DiffC end to end on the built-in spectrum model: the decoder must rebuild exactly the
//! encoder's latent, files respect their budget, and no corrupt file makes the decoder panic.
use diffc::channel::ChannelKind;
use diffc::codec::diffc::{DiffC, DiffcParams};
use diffc::codec::{Codec, DecodeOptions, DecoderKind, RateTarget};
use diffc::error::{Error, FormatError};
use diffc::image_io::{Image, Shape};
use diffc::rng::{Purpose, Stream};
use std::sync::Arc;

use crate::common;

/// A smooth, photo-like test image (gradients + texture), any size.
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

fn codec(channel: ChannelKind) -> DiffC {
    let mut c = DiffC::new(Arc::new(diffc::denoiser::gauss_spectrum().unwrap()));
    c.params = DiffcParams {
        channel,
        ..DiffcParams::default()
    };
    c.seed = 42;
    c
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

#[test]
fn decoder_rebuilds_the_encoders_latent_for_every_channel_and_thread_count() {
    let img = test_image(21, 34, 1);
    for channel in [ChannelKind::Pfr, ChannelKind::Uq, ChannelKind::Mixed] {
        assert_latents_agree(codec(channel), &img, channel);
    }
}

/// The same with a model that reports its posterior variance: the proposal then has a
/// variance per dimension, which PFR, UQ and free steps must all apply identically.
#[test]
fn decoder_rebuilds_the_latent_under_the_exact_reverse_step_proposal() {
    let img = test_image(21, 34, 2);
    let n = img.shape.len();
    let var: Vec<f64> = (0..n)
        .map(|i| 0.1 + 0.3 / (1.0 + (i % 37) as f64))
        .collect();
    let model = diffc::denoiser::gaussian::DiagonalGaussian::new(vec![0.0; n], var);
    for channel in [ChannelKind::Pfr, ChannelKind::Uq, ChannelKind::Mixed] {
        let mut c = DiffC::new(Arc::new(model.clone().with_exact_proposal()));
        c.params = DiffcParams {
            channel,
            ..DiffcParams::default()
        };
        c.seed = 7;
        assert_latents_agree(c, &img, channel);
    }
}

/// Encodes with 1 and 2 threads (same file) and decodes with both: the latent must be the
/// encoder's, bit for bit.
fn assert_latents_agree(c: DiffC, img: &Image, channel: ChannelKind) {
    let enc = |threads| {
        pool(threads).install(|| c.encode_trace(img, RateTarget::Bpp(1.5), true).unwrap())
    };
    let (r1, r2) = (enc(1), enc(2));
    let last = r1.last().unwrap();
    assert!(last.step >= 3, "{channel:?}: only {} steps", last.step);
    assert_eq!(
        last.file,
        r2.last().unwrap().file,
        "{channel:?}: files differ between 1 and 2 threads"
    );
    for threads in [1, 2] {
        let lat = pool(threads).install(|| c.decode_latent(&last.file).unwrap());
        let (z, l) = (lat.z, lat.logsnr);
        assert_eq!((lat.image, lat.latent), (img.shape, img.shape));
        assert_eq!(l, last.logsnr);
        assert_eq!(
            Some(&z),
            last.z.as_ref(),
            "{channel:?}: latent differs ({threads} threads)"
        );
    }
    if channel == ChannelKind::Mixed {
        let used: Vec<_> = r1.iter().filter_map(|r| r.channel).collect();
        assert!(
            used.contains(&ChannelKind::Pfr) && used.contains(&ChannelKind::Uq),
            "mixed used {used:?}"
        );
    }
}

#[test]
fn files_never_exceed_the_budget_and_more_bits_means_less_error() {
    let img = test_image(32, 48, 2);
    let c = codec(ChannelKind::Mixed);
    let mut last_mse = f64::INFINITY;
    for bpp in [0.1, 0.5, 2.0] {
        let bytes = c.encode(&img, RateTarget::Bpp(bpp)).unwrap();
        let got = bytes.len() as f64 * 8.0 / (32.0 * 48.0);
        assert!(got <= bpp, "{got} > {bpp}");
        assert!(got >= 0.6 * bpp, "budget badly used: {got} for {bpp}");
        let out = c
            .decode(
                &bytes,
                &DecodeOptions {
                    decoder: DecoderKind::Ode,
                    steps: Some(10),
                    progress: false,
                    realism: None,
                    ..DecodeOptions::default()
                },
            )
            .unwrap();
        let mse = out
            .data
            .iter()
            .zip(&img.data)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / img.data.len() as f64;
        assert!(
            mse < last_mse,
            "mse {mse} at {bpp} bpp not below {last_mse}"
        );
        last_mse = mse;
    }
    assert!(
        c.encode(&img, RateTarget::Bpp(0.001)).is_err(),
        "a budget below the header must be refused"
    );
}

#[test]
fn one_shared_trajectory_gives_each_targets_own_file() {
    let img = test_image(32, 48, 3);
    let c = codec(ChannelKind::Mixed);
    // Unsorted targets, a repeat, one above what the whole schedule needs, and one whose cut
    // falls inside the first communicated steps.
    let targets = [2.0, 0.1, 0.5, 0.1, 200.0, 0.12];
    let shared = c.encode_targets(&img, &targets).unwrap();
    assert_eq!(shared.len(), targets.len());
    for (&t, (bytes, secs)) in targets.iter().zip(&shared) {
        assert_eq!(
            bytes,
            &c.encode(&img, RateTarget::Bpp(t)).unwrap(),
            "target {t}: files differ"
        );
        assert!(*secs >= 0.0 && secs.is_finite());
    }
    assert!(
        c.encode_targets(&img, &[0.5, 0.001]).is_err(),
        "a budget below the header must be refused"
    );
}

#[test]
fn both_decoders_are_deterministic_and_differ() {
    let img = test_image(16, 24, 3);
    let c = codec(ChannelKind::Mixed);
    let bytes = c.encode(&img, RateTarget::Bpp(1.0)).unwrap();
    let dec = |k| {
        c.decode(
            &bytes,
            &DecodeOptions {
                decoder: k,
                steps: Some(8),
                progress: false,
                realism: None,
                ..DecodeOptions::default()
            },
        )
        .unwrap()
    };
    assert_eq!(dec(DecoderKind::Sde), dec(DecoderKind::Sde));
    assert_eq!(dec(DecoderKind::Ode), dec(DecoderKind::Ode));
    assert_ne!(dec(DecoderKind::Sde), dec(DecoderKind::Ode));
}

/// Without `--steps`, each decoder takes its own default: the SDE more steps than the ODE,
/// because ancestral sampling converges more slowly (see `default_decode_steps`).
#[test]
fn each_decoder_takes_its_own_default_step_count() {
    use diffc::codec::diffc::default_decode_steps;
    let img = test_image(16, 24, 5);
    let c = codec(ChannelKind::Mixed);
    let bytes = c.encode(&img, RateTarget::Bpp(1.0)).unwrap();
    let dec = |decoder, steps| {
        c.decode(
            &bytes,
            &DecodeOptions {
                decoder,
                steps,
                progress: false,
                realism: None,
                ..DecodeOptions::default()
            },
        )
        .unwrap()
        .data
    };
    let (sde, ode) = (
        default_decode_steps(DecoderKind::Sde),
        default_decode_steps(DecoderKind::Ode),
    );
    assert!(sde > ode);
    for (k, n) in [(DecoderKind::Sde, sde), (DecoderKind::Ode, ode)] {
        assert_eq!(dec(k, None), dec(k, Some(n)), "{k:?}");
    }
    assert_ne!(
        dec(DecoderKind::Sde, None),
        dec(DecoderKind::Sde, Some(ode))
    );
}

/// Every truncation, 1,000 random byte flips and 300 corrupt bodies behind a valid checksum
/// give an error or a decode, never a panic.
#[test]
fn corrupt_files_never_panic() {
    let img = test_image(12, 17, 4);
    for channel in [ChannelKind::Pfr, ChannelKind::Uq, ChannelKind::Mixed] {
        let c = codec(channel);
        let bytes = c.encode(&img, RateTarget::Bpp(2.0)).unwrap();
        let opts = DecodeOptions {
            decoder: DecoderKind::Ode,
            steps: Some(2),
            progress: false,
            realism: None,
            ..DecodeOptions::default()
        };
        common::corrupt::check(&bytes, 300, |b| c.decode(b, &opts).map(drop));
    }
}

#[test]
fn wrong_model_is_refused() {
    let img = test_image(8, 8, 8);
    let c = codec(ChannelKind::Mixed);
    let bytes = c.encode(&img, RateTarget::Bpp(2.0)).unwrap();
    let other = diffc::denoiser::gaussian::DiagonalGaussian::new(vec![0.0], vec![0.1]);
    let d = DiffC::new(Arc::new(other));
    let err = d.decode(&bytes, &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::Format(FormatError::WrongModel { .. })),
        "{err}"
    );
}

/// Why a DiffC file cannot desynchronise across builds (issue 17): its chunk plans, Zipf priors
/// and UQ tables follow from the transmitted step-KL codes, the seed and libm alone, unless the
/// model reports a posterior variance (then PFR's chunk weights and UQ's prior scale come from
/// the model's floats, rounded). No model a file can name does: every known model proposes
/// with equal variances, so a float difference between builds only moves the latent.
#[test]
fn no_known_model_makes_the_tables_depend_on_its_floats() {
    let cpu = candle_core::Device::Cpu;
    let shape = Shape::new(3, 8, 8);
    let z = vec![0.1f32; shape.len()];
    let known = diffc::denoiser::known_models();
    assert!(known.len() >= 2, "{known:?}");
    for name in known {
        let m = diffc::denoiser::load(&name, &cpu).unwrap();
        assert!(
            m.posterior_var(&z, shape, 0.0).is_none(),
            "{name} reports a posterior variance: its PFR and UQ tables would depend on floats"
        );
    }
}
