//! The `.dfc` container: bytes only, no maths.
//!
//! ```text
//! magic "DF" | version<<4 | codec | model fingerprint (u16 LE) | flags
//! | width−1, height−1, seed (LEB128 varints) | [params: len varint + bytes, if flag]
//! | body (codec-defined) | CRC-32 of everything before (u32 LE)
//! ```
//! Defaults (schedule, channel settings) are implied by the format version; only
//! non-default parameters are written. A 256×256 file costs ~13 bytes of container.
use crate::error::FormatError;

type Result<T> = std::result::Result<T, FormatError>;

pub const MAGIC: [u8; 2] = *b"DF";
/// Format version. 2: a PFR candidate's rejected ziggurat draws are resolved after all of
/// its words (what lets the encoder generate and score candidates in one pass); version-1
/// files are refused with [`FormatError::UnsupportedVersion`].
pub const VERSION: u8 = 2;

/// Which codec wrote the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum CodecId {
    DiffC = 0,
    HfdMse = 1,
    Hfd = 2,
}

impl CodecId {
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => CodecId::DiffC,
            1 => CodecId::HfdMse,
            2 => CodecId::Hfd,
            _ => return Err(FormatError::UnknownCodec(v)),
        })
    }

    /// Fails unless this is `expected` (a decoder checks the file is its own).
    pub fn expect(self, expected: CodecId) -> Result<()> {
        if self == expected {
            Ok(())
        } else {
            Err(FormatError::WrongCodec {
                found: self.name(),
                expected: expected.name(),
            })
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            CodecId::DiffC => "diffc",
            CodecId::HfdMse => "hfd-mse",
            CodecId::Hfd => "hfd",
        }
    }
}

/// Everything in a `.dfc` file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub codec: CodecId,
    /// Low 16 bits of the model's fingerprint.
    pub model_fp: u16,
    pub channels: u8,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Non-default codec parameters (codec-defined bytes), `None` = version defaults.
    pub params: Option<Vec<u8>>,
    pub body: Vec<u8>,
}

/// Largest accepted side, so a corrupt header cannot ask for a huge allocation.
pub const MAX_SIDE: u32 = crate::image_io::MAX_SIDE;

impl File {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 16);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION << 4 | self.codec as u8);
        out.extend_from_slice(&self.model_fp.to_le_bytes());
        let flags = self.params.is_some() as u8 | ((self.channels.saturating_sub(1) & 3) << 1);
        out.push(flags);
        put_varint(&mut out, self.width as u64 - 1);
        put_varint(&mut out, self.height as u64 - 1);
        put_varint(&mut out, self.seed);
        if let Some(p) = &self.params {
            put_varint(&mut out, p.len() as u64);
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&self.body);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Container bytes around a body of `body_len` bytes.
    pub fn overhead(&self) -> usize {
        self.to_bytes().len() - self.body.len()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 2 || bytes[..2] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if bytes.len() < 12 {
            return Err(FormatError::Truncated("shorter than the smallest header"));
        }
        let (data, crc) = bytes.split_at(bytes.len() - 4);
        let version = data[2] >> 4;
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(data) != crc {
            return Err(FormatError::Checksum);
        }
        let codec = CodecId::from_u8(data[2] & 0x0f)?;
        let model_fp = u16::from_le_bytes([data[3], data[4]]);
        let flags = data[5];
        if flags >> 3 != 0 {
            return Err(FormatError::corrupt(
                "flags",
                format!("unknown bits {flags:#x}"),
            ));
        }
        let mut cur = Cursor { b: data, pos: 6 };
        // a varint may be u64::MAX: checked arithmetic, so a hostile header is an error
        let width = cur.varint()?.saturating_add(1);
        let height = cur.varint()?.saturating_add(1);
        if width > MAX_SIDE as u64
            || height > MAX_SIDE as u64
            || width
                .checked_mul(height)
                .is_none_or(|n| n > crate::image_io::MAX_PIXELS)
        {
            return Err(FormatError::TooLarge {
                width,
                height,
                limit: format!(
                    "{MAX_SIDE} px a side, {} pixels",
                    crate::image_io::MAX_PIXELS
                ),
            });
        }
        let seed = cur.varint()?;
        let params = if flags & 1 != 0 {
            let n = usize::try_from(cur.varint()?).unwrap_or(usize::MAX);
            Some(cur.take(n)?.to_vec())
        } else {
            None
        };
        let body = data[cur.pos..].to_vec();
        Ok(File {
            codec,
            model_fp,
            channels: ((flags >> 1) & 3) + 1,
            width: width as u32,
            height: height as u32,
            seed,
            params,
            body,
        })
    }
}

/// LEB128 unsigned varint (golden bytes: the format depends on them).
///
/// ```
/// let mut b = Vec::new();
/// diffc::container::put_varint(&mut b, 300);
/// diffc::container::put_varint(&mut b, 5);
/// assert_eq!(b, [0xac, 0x02, 0x05]);
/// let mut c = diffc::container::Cursor::new(&b);
/// assert_eq!((c.varint().unwrap(), c.varint().unwrap()), (300, 5));
/// assert!(c.varint().is_err());
/// ```
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Bounds-checked reading of a body.
pub struct Cursor<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }
    pub fn u8(&mut self) -> Result<u8> {
        let v = *self.b.get(self.pos).ok_or(FormatError::Truncated("body"))?;
        self.pos += 1;
        Ok(v)
    }
    pub fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(FormatError::corrupt("varint", "overflow"));
            }
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FormatError::corrupt("varint", "overflow"))
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len().saturating_sub(self.pos) {
            return Err(FormatError::Truncated("field"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// Whether every byte has been read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.b.get(self.pos..).unwrap_or_default();
        self.pos = self.b.len();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> File {
        File {
            codec: CodecId::DiffC,
            model_fp: 0xbeef,
            channels: 3,
            width: 768,
            height: 511,
            seed: 300,
            params: Some(vec![1, 2, 3]),
            body: vec![9; 40],
        }
    }

    #[test]
    fn round_trip_and_small_header() {
        let f = sample();
        let b = f.to_bytes();
        assert_eq!(File::from_bytes(&b).unwrap(), f);
        let mut g = f.clone();
        g.params = None;
        g.seed = 0;
        assert_eq!(g.overhead(), 2 + 1 + 2 + 1 + 2 + 2 + 1 + 4);
    }

    #[test]
    fn golden_bytes() {
        let mut f = sample();
        f.body = vec![0xaa, 0x55];
        let hex: String = f.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN_HEX);
    }
    const GOLDEN_HEX: &str = "444620efbe05ff05fe03ac0203010203aa555c983adb";

    #[test]
    fn every_truncation_and_flip_is_an_error() {
        let b = sample().to_bytes();
        for n in 0..b.len() {
            assert!(File::from_bytes(&b[..n]).is_err(), "truncation to {n}");
        }
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(File::from_bytes(&c).is_err(), "flip {i}:{bit}");
            }
        }
    }

    #[test]
    fn each_failure_has_its_variant() {
        let b = sample().to_bytes();
        assert_eq!(File::from_bytes(b"PNG..."), Err(FormatError::BadMagic));
        assert!(matches!(
            File::from_bytes(&b[..8]),
            Err(FormatError::Truncated(_))
        ));
        let mut v = b.clone();
        v[2] = (7 << 4) | (v[2] & 15);
        assert_eq!(
            File::from_bytes(&v),
            Err(FormatError::UnsupportedVersion {
                found: 7,
                supported: VERSION
            })
        );
        let mut c = b.clone();
        c[10] ^= 1;
        assert_eq!(File::from_bytes(&c), Err(FormatError::Checksum));
        // with the checksum fixed up: an unknown codec id, a huge image
        let fix = |mut d: Vec<u8>| {
            d.truncate(d.len() - 4);
            let crc = crc32fast::hash(&d);
            d.extend_from_slice(&crc.to_le_bytes());
            d
        };
        let mut u = b.clone();
        u[2] = (VERSION << 4) | 9;
        assert_eq!(File::from_bytes(&fix(u)), Err(FormatError::UnknownCodec(9)));
        let mut big = sample();
        big.width = MAX_SIDE;
        big.height = MAX_SIDE;
        assert!(matches!(
            File::from_bytes(&big.to_bytes()),
            Err(FormatError::TooLarge { .. })
        ));
        assert_eq!(
            CodecId::Hfd.expect(CodecId::DiffC),
            Err(FormatError::WrongCodec {
                found: "hfd",
                expected: "diffc"
            })
        );
    }

    /// Fixes up the CRC of `d` (whose last 4 bytes are a CRC).
    fn with_crc(mut d: Vec<u8>) -> Vec<u8> {
        d.truncate(d.len() - 4);
        let crc = crc32fast::hash(&d);
        d.extend_from_slice(&crc.to_le_bytes());
        d
    }

    /// A header whose width, height and params-length varints are `w`, `h` and `n`.
    fn header_with(w: u64, h: u64, n: Option<u64>) -> Vec<u8> {
        let mut d = vec![b'D', b'F', VERSION << 4, 0, 0, n.is_some() as u8 | (2 << 1)];
        put_varint(&mut d, w);
        put_varint(&mut d, h);
        put_varint(&mut d, 0);
        if let Some(n) = n {
            put_varint(&mut d, n);
        }
        d.extend_from_slice(&[0; 4]);
        with_crc(d)
    }

    #[test]
    fn huge_varint_sides_are_too_large_not_an_overflow() {
        for (w, h) in [
            (u64::MAX, 0),
            (0, u64::MAX),
            (u64::MAX, u64::MAX),
            (1 << 33, 1 << 33),
        ] {
            assert!(
                matches!(
                    File::from_bytes(&header_with(w, h, None)),
                    Err(FormatError::TooLarge { .. })
                ),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn huge_params_length_is_truncated_not_an_overflow() {
        for n in [u64::MAX, u64::MAX / 2, 1 << 40, 5] {
            assert!(
                matches!(
                    File::from_bytes(&header_with(9, 9, Some(n))),
                    Err(FormatError::Truncated(_))
                ),
                "params length {n}"
            );
        }
        let mut c = Cursor::new(&[1, 2]);
        c.pos = 5;
        assert!(c.take(1).is_err());
        assert!(c.rest().is_empty());
    }

    #[test]
    fn varint_overflow_is_an_error() {
        let b = [0xffu8; 11];
        assert!(Cursor::new(&b).varint().is_err());
    }
}
