//! Golden bitstreams: the encoder must write exactly the committed files, and the decoder must
//! rebuild exactly the committed latent and pixels from them. A change to anything that steers
//! the bitstream (PRNG streams, chunk plans, CDF tables, header layout) fails here first.
//!
//! The model is a pixel-diagonal Gaussian with the exact reverse-step proposal: f64 and libm
//! only, so the files are the same on every machine. After an intended format change, rewrite
//! the fixtures with `DIFFC_BLESS=1 cargo test --release --test golden_bitstream` and say why
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
