//! Golden bitstreams: the encoder must write exactly the committed files, and the decoder must
//! rebuild exactly the committed latent and pixels from them. A change to anything that steers
//! the bitstream (PRNG streams, chunk plans, CDF tables, header layout) fails here first.
//!
//! The model is a pixel-diagonal Gaussian with the exact reverse-step proposal: f64 and libm
//! only, so the files are the same on every machine. After an intended format change, rewrite
//! the fixtures with `DIFFC_BLESS=1 cargo test --release --test it golden` and say why
//! in the commit.
use diffc::channel::ChannelKind;
use diffc::codec::diffc::{DiffC, DiffcParams};
use diffc::codec::{Codec, DecodeOptions, DecoderKind, RateTarget};
use diffc::denoiser::gaussian::DiagonalGaussian;
use diffc::image_io::{Image, Shape};
use std::path::PathBuf;
use std::sync::Arc;

/// An integer pattern (exact in f32), 3×12×20.
fn image() -> Image {
    let shape = Shape::new(3, 12, 20);
    let data = (0..shape.len())
        .map(|i| ((i * 37 + (i / 20) * 11) % 256) as f32 / 127.5 - 1.0)
        .collect();
    Image { shape, data }
}

fn codec(channel: ChannelKind) -> DiffC {
    let n = image().shape.len();
    let var = (0..n)
        .map(|i| 0.05 + 0.4 / (1.0 + (i % 29) as f64))
        .collect();
    let model = DiagonalGaussian::new(vec![0.0; n], var).with_exact_proposal();
    let mut c = DiffC::new(Arc::new(model));
    c.params = DiffcParams {
        channel,
        ..DiffcParams::default()
    };
    c.seed = 2026;
    c
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name)
}

/// CRC-32 of the latent (f32 LE) and of the 8-bit decoded pixels.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Decoded {
    latent_crc: u32,
    logsnr: f64,
    ode_pixels_crc: u32,
    sde_pixels_crc: u32,
}

fn decode(c: &DiffC, bytes: &[u8]) -> Decoded {
    let diffc::codec::diffc::Latent { z, logsnr, .. } = c.decode_latent(bytes).unwrap();
    let pixels = |decoder| {
        let opts = DecodeOptions {
            decoder,
            steps: Some(6),
            progress: false,
            realism: None,
            ..DecodeOptions::default()
        };
        let img = c.decode(bytes, &opts).unwrap();
        let u8s: Vec<u8> = img
            .data
            .iter()
            .map(|&v| diffc::image_io::to_u8(v))
            .collect();
        crc32fast::hash(&u8s)
    };
    Decoded {
        latent_crc: crc32fast::hash(&z.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()),
        logsnr,
        ode_pixels_crc: pixels(DecoderKind::Ode),
        sde_pixels_crc: pixels(DecoderKind::Sde),
    }
}

#[test]
fn encoder_and_decoder_match_the_committed_bitstreams() {
    let bless = std::env::var_os("DIFFC_BLESS").is_some();
    for (channel, name) in [
        (ChannelKind::Pfr, "pfr"),
        (ChannelKind::Uq, "uq"),
        (ChannelKind::Mixed, "mixed"),
    ] {
        let c = codec(channel);
        let bytes = c.encode(&image(), RateTarget::Bpp(3.0)).unwrap();
        let got = decode(&c, &bytes);
        let (dfc, json) = (
            fixture(&format!("{name}.dfc")),
            fixture(&format!("{name}.json")),
        );
        if bless {
            std::fs::write(&dfc, &bytes).unwrap();
            std::fs::write(&json, serde_json::to_string_pretty(&got).unwrap()).unwrap();
            continue;
        }
        let want = std::fs::read(&dfc).unwrap();
        assert_eq!(
            bytes, want,
            "{name}: the encoder no longer writes the committed file"
        );
        let want: Decoded = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(
            decode(&c, &std::fs::read(&dfc).unwrap()),
            want,
            "{name}: decoded differently"
        );
    }
}

/// Latent DiffC on the tiny random SD 1.5 fixture: the committed file must still be written
/// (its PFR choices depend on the networks' floats, which are deterministic on one build and
/// CPU; a different float path would show here first), and decoding it must give the
/// committed latent exactly and the committed pixels to within 1e-4 (ODE, 4 steps).
#[test]
fn latent_diffc_matches_its_committed_bitstream() {
    use diffc::codec::registry::{self, CodecSpec, Options};
    let bless = std::env::var_os("DIFFC_BLESS").is_some();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd/sd15-tiny");
    let spec: CodecSpec = format!("diffc-f@sd:{}", dir.display()).parse().unwrap();
    let opts = Options {
        seed: 7,
        ..Options::default()
    };
    let c = registry::build(&spec, &opts, &candle_core::Device::Cpu)
        .unwrap()
        .codec;
    let diffc::codec::registry::AnyCodec::DiffC(d) = &c else {
        panic!("not DiffC")
    };
    // 48×64 (padded to a 64×64 image, an 8×8 latent)
    let shape = Shape::new(3, 48, 64);
    let data = (0..shape.len())
        .map(|i| ((i % 64) as f32 * 0.09).sin() * 0.6 + ((i / 64) as f32 * 0.05).cos() * 0.3)
        .collect();
    let img = Image { shape, data };
    let bytes = c.encode(&img, RateTarget::Bpp(0.4)).unwrap();
    let decode = |bytes: &[u8]| {
        let z = d.decode_latent(bytes).unwrap().z;
        let opts = DecodeOptions {
            decoder: DecoderKind::Ode,
            steps: Some(4),
            progress: false,
            realism: None,
            ..DecodeOptions::default()
        };
        let px = c.decode(bytes, &opts).unwrap().data;
        (z, px)
    };
    let (dfc, values) = (fixture("sd15-tiny.dfc"), fixture("sd15-tiny.f32"));
    let (z, px) = decode(&bytes);
    if bless {
        std::fs::write(&dfc, &bytes).unwrap();
        let all: Vec<u8> = z.iter().chain(&px).flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&values, all).unwrap();
        return;
    }
    let want = std::fs::read(&dfc).unwrap();
    assert_eq!(
        bytes, want,
        "the latent DiffC encoder no longer writes the committed file"
    );
    let stored: Vec<f32> = std::fs::read(&values)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let (z, px) = decode(&want);
    assert_eq!(stored.len(), z.len() + px.len());
    assert_eq!(z, stored[..z.len()], "decoded a different latent");
    let worst = px
        .iter()
        .zip(&stored[z.len()..])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-4, "decoded pixels moved by {worst}");
}
