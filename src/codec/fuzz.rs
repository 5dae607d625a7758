//! Entry points for the fuzzer (`fuzz/`, cargo-fuzz) and its replay test: each takes arbitrary
//! bytes and must never panic, hang or allocate beyond its limits; a malformed input is an
//! `Err`. The decoder targets use the cheapest models (DiffC: the built-in `gauss-spectrum`;
//! HFD: its shipped checkpoints) and a [`MAX_PIXELS`] limit, so one execution takes
//! milliseconds.
//!
//! The structure-aware targets ([`diffc_pfr`], [`diffc_uq`], [`diffc_mixed`], [`hfd_mse`],
//! [`hfd`]) read their input as a `.dfc` file and repair what would stop a mutated file at the
//! door: the magic, version, codec id, model fingerprint, channel count, the DiffC channel or
//! HFD refiner in the body header, and the CRC. The fuzzer's mutations of the body (and of the
//! sizes, seed and parameters) then reach the decoders.
use super::diffc::{DiffC, DiffcHeader};
use super::hfd::Hfd;
use super::hfd_mse::{DEFAULT_MSE_MODEL, HfdHeader, HfdMse};
use super::{Codec, DecodeOptions};
use crate::channel::ChannelKind;
use crate::container::{CodecId, Cursor, File, MAGIC, VERSION};
use crate::error::Result;
use crate::image_io::Image;
use candle_core::Device;
use std::sync::{Arc, OnceLock};

/// The pixel limit of the decoder targets (a 64×64 image).
pub const MAX_PIXELS: u64 = 64 * 64;
/// Decoder steps of the decoder targets.
pub const STEPS: usize = 2;

fn opts() -> DecodeOptions {
    DecodeOptions {
        steps: Some(STEPS),
        max_pixels: MAX_PIXELS,
        ..DecodeOptions::default()
    }
}

/// The container parser; a parsed file must write back to bytes that parse to it.
pub fn container(data: &[u8]) -> Result<File> {
    let f = File::from_bytes(data)?;
    let again = File::from_bytes(&f.to_bytes());
    assert_eq!(again.as_ref(), Ok(&f), "container round trip");
    Ok(f)
}

/// `diffc info`'s description (no model is loaded), as text.
pub fn info(data: &[u8]) -> Result<String> {
    let v = super::info::describe(data, MAX_PIXELS)?;
    Ok(super::info::to_text(&v))
}

fn diffc_codec() -> &'static DiffC {
    static C: OnceLock<DiffC> = OnceLock::new();
    C.get_or_init(|| {
        let m = crate::denoiser::gauss_spectrum().expect("the built-in model loads");
        DiffC::new(Arc::new(m))
    })
}

fn hfd_mse_codec() -> Result<&'static HfdMse> {
    static C: OnceLock<std::result::Result<HfdMse, String>> = OnceLock::new();
    C.get_or_init(|| HfdMse::load(DEFAULT_MSE_MODEL, &Device::Cpu).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| crate::error::Error::Unsupported(e.clone()))
}

fn hfd_codec() -> Result<&'static Hfd> {
    static C: OnceLock<std::result::Result<Hfd, String>> = OnceLock::new();
    C.get_or_init(|| Hfd::load(None, None, &Device::Cpu).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| crate::error::Error::Unsupported(e.clone()))
}

/// The 16-bit model fingerprint DiffC targets write (gauss-spectrum's).
pub fn diffc_fingerprint() -> u16 {
    diffc_codec().model.fingerprint() as u16
}

/// Any DiffC file, decoded with `gauss-spectrum` (no repair: most inputs stop at the CRC).
pub fn diffc_decode(data: &[u8]) -> Result<Image> {
    diffc_codec().decode(data, &opts())
}

/// Any HFD-MSE file (no repair).
pub fn hfd_decode(data: &[u8]) -> Result<Image> {
    hfd_mse_codec()?.decode(data, &opts())
}

/// Repairs the container of `data` for codec `codec` and model fingerprint `fp`: magic,
/// version, codec id, fingerprint, 3 channels and the CRC. `None`: too short to be a file.
pub fn repair(data: &[u8], codec: CodecId, fp: u16) -> Option<Vec<u8>> {
    if data.len() < 12 {
        return None;
    }
    let mut d = data.to_vec();
    d[..2].copy_from_slice(&MAGIC);
    d[2] = VERSION << 4 | codec as u8;
    d[3..5].copy_from_slice(&fp.to_le_bytes());
    d[5] = (d[5] & 1) | (2 << 1);
    let n = d.len() - 4;
    let crc = crc32fast::hash(&d[..n]);
    d[n..].copy_from_slice(&crc.to_le_bytes());
    Some(d)
}

/// A DiffC file (repaired) whose body header is rewritten to use `channel`.
fn diffc_with(data: &[u8], channel: ChannelKind) -> Result<Image> {
    let Some(d) = repair(data, CodecId::DiffC, diffc_fingerprint()) else {
        return Err(crate::error::FormatError::Truncated("fuzz input").into());
    };
    let mut f = File::from_bytes(&d)?;
    let mut c = Cursor::new(&f.body);
    let h = DiffcHeader::read(&mut c)?;
    let mut body = Vec::with_capacity(f.body.len());
    DiffcHeader { channel, ..h }.write(&mut body);
    body.extend_from_slice(c.rest());
    f.body = body;
    diffc_codec().decode(&f.to_bytes(), &opts())
}

/// DiffC over PFR (structure-aware).
pub fn diffc_pfr(data: &[u8]) -> Result<Image> {
    diffc_with(data, ChannelKind::Pfr)
}

/// DiffC over UQ (structure-aware).
pub fn diffc_uq(data: &[u8]) -> Result<Image> {
    diffc_with(data, ChannelKind::Uq)
}

/// DiffC over the mixed channel (structure-aware).
pub fn diffc_mixed(data: &[u8]) -> Result<Image> {
    diffc_with(data, ChannelKind::Mixed)
}

/// An HFD or HFD-MSE file (repaired), its refiner fingerprint rewritten for `hfd`.
fn hfd_with(data: &[u8], codec: CodecId) -> Result<Image> {
    let mse = match codec {
        CodecId::Hfd => &hfd_codec()?.mse,
        _ => hfd_mse_codec()?,
    };
    let Some(d) = repair(data, codec, mse.fingerprint() as u16) else {
        return Err(crate::error::FormatError::Truncated("fuzz input").into());
    };
    let mut f = File::from_bytes(&d)?;
    let mut c = Cursor::new(&f.body);
    let h = HfdHeader::read(&mut c, codec)?;
    let refiner_fp = match codec {
        CodecId::Hfd => Some(hfd_codec()?.refiner_fp()),
        _ => None,
    };
    let mut body = Vec::with_capacity(f.body.len());
    HfdHeader { refiner_fp, ..h }.write(&mut body);
    body.extend_from_slice(c.rest());
    f.body = body;
    let bytes = f.to_bytes();
    match codec {
        CodecId::Hfd => hfd_codec()?.decode(&bytes, &opts()),
        _ => hfd_mse_codec()?.decode(&bytes, &opts()),
    }
}

/// HFD's MSE codec (structure-aware).
pub fn hfd_mse(data: &[u8]) -> Result<Image> {
    hfd_with(data, CodecId::HfdMse)
}

/// HFD, refiner included (structure-aware).
pub fn hfd(data: &[u8]) -> Result<Image> {
    hfd_with(data, CodecId::Hfd)
}

/// Every target by name (the fuzz crate's and the replay test's one list).
pub const TARGETS: &[&str] = &[
    "container",
    "info",
    "diffc_pfr",
    "diffc_uq",
    "diffc_mixed",
    "hfd_mse",
    "hfd",
];

/// Runs target `name` on `data`: `Some(true)` if it decoded, `Some(false)` if it was refused
/// with an error, `None` for an unknown target.
pub fn run(name: &str, data: &[u8]) -> Option<bool> {
    Some(match name {
        "container" => container(data).is_ok(),
        "info" => info(data).is_ok(),
        "diffc_pfr" => diffc_pfr(data).is_ok(),
        "diffc_uq" => diffc_uq(data).is_ok(),
        "diffc_mixed" => diffc_mixed(data).is_ok(),
        "hfd_mse" => hfd_mse(data).is_ok(),
        "hfd" => hfd(data).is_ok(),
        _ => return None,
    })
}
