//! The corrupt-file checks every codec's tests run: a decoder may refuse or decode a damaged
//! file, never panic, and what it refuses it refuses with a format error.
use diffc::error::{Error, Result};
use diffc::rng::{Purpose, Stream};

/// Runs `decode` on `b`, turning a panic into a test failure that names `what`; whether it
/// decoded. A refusal must be a [`diffc::error::FormatError`] (or, for a body that parses,
/// a parameter the format forbids).
fn no_panic(decode: &dyn Fn(&[u8]) -> Result<()>, b: &[u8], what: &str) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(b))) {
        Err(_) => panic!("panic on {what}"),
        Ok(Ok(())) => true,
        Ok(Err(Error::Format(_) | Error::Param(_))) => false,
        Ok(Err(e)) => panic!("{what} was refused with a non-format error: {e}"),
    }
}

/// Every truncation of `bytes` must be refused; of 1,000 random byte flips at most 9 may pass
/// the checksum; then `bodies` flips behind a recomputed CRC-32 (so the parser itself meets
/// them) may decode or fail.
pub fn check(bytes: &[u8], bodies: usize, decode: impl Fn(&[u8]) -> Result<()>) {
    for n in 0..bytes.len() {
        assert!(
            !no_panic(&decode, &bytes[..n], "a truncated file"),
            "truncated file {n} decoded"
        );
    }
    let mut s = Stream::new(5, Purpose::Experiment, 0, 0, 0);
    let mut ok = 0;
    for _ in 0..1000 {
        let mut b = bytes.to_vec();
        let i = s.below(b.len() as u64) as usize;
        b[i] ^= 1 + s.below(255) as u8;
        ok += no_panic(&decode, &b, "a flipped byte") as usize;
    }
    assert!(ok < 10, "{ok} corrupted files passed the checksum");
    for _ in 0..bodies {
        let mut b = bytes[..bytes.len() - 4].to_vec();
        let i = 6 + s.below((b.len() - 6) as u64) as usize;
        b[i] ^= 1 + s.below(255) as u8;
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        no_panic(&decode, &b, &format!("a corrupt body (byte {i})"));
    }
}
