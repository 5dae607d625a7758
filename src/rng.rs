//! The only source of shared randomness: every stream is derived from the file's seed and
//! keyed by purpose, step and chunk, so encoder and decoder regenerate identical draws.
//!
//! Streams are ChaCha8 (rand_chacha). Normals and uniforms are made from integer bits with
//! IEEE f64 arithmetic and `libm` (a pure-Rust libm), so they are the same bits on every
//! machine. Candle's RNG is never used.
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::sync::OnceLock;

/// What a stream is for; part of the key, so streams never overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Purpose {
    /// z_T, the shared starting latent.
    InitLatent = 1,
    /// Random permutation that partitions a step's dimensions into chunks.
    ChunkPartition = 2,
    /// PFR candidate n of a chunk: stream id = n.
    PfrCandidate = 3,
    /// PFR arrival times of a chunk.
    PfrArrival = 4,
    /// Dither of a universal-quantisation step.
    UqDither = 5,
    /// Noise of free (uncommunicated) steps.
    FreeStep = 6,
    /// Ancestral-sampler noise in the decoder.
    SdeNoise = 7,
    /// Test and experiment data (never part of a bitstream).
    Experiment = 8,
    /// Dither of HFD's universally quantised latent y.
    HfdDither = 9,
    /// Starting noise of HFD's diffusion refiner.
    HfdInit = 10,
}

/// A keyed stream of portable random numbers.
pub struct Stream {
    rng: ChaCha8Rng,
}

impl Stream {
    /// The stream for `(seed, purpose, step, chunk)`, sub-stream `sub` (64-bit: candidates).
    pub fn new(seed: u64, purpose: Purpose, step: u32, chunk: u64, sub: u64) -> Self {
        let mut key = [0u8; 32];
        key[0..8].copy_from_slice(&seed.to_le_bytes());
        key[8..12].copy_from_slice(&(purpose as u32).to_le_bytes());
        key[12..16].copy_from_slice(&step.to_le_bytes());
        key[16..24].copy_from_slice(&chunk.to_le_bytes());
        key[24..32].copy_from_slice(b"diffc-v1");
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(sub);
        Stream { rng }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform on the open interval (0, 1), 53 bits.
    #[inline]
    pub fn uniform_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on [-1/2, 1/2).
    #[inline]
    pub fn uniform_centered(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) - 0.5
    }

    /// Exp(1).
    #[inline]
    pub fn exponential(&mut self) -> f64 {
        -libm::log(self.uniform_open())
    }

    /// Uniform integer in [0, n) without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let lo = m as u64;
            if lo >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Standard normal via a 256-layer ziggurat with libm tails.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let t = tables();
        loop {
            let bits = self.next_u64();
            let i = (bits & 0xff) as usize;
            let f = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            let u = 2.0 * f - 1.0;
            let x = u * t.x[i];
            if x.abs() < t.x[i + 1] {
                return x;
            }
            if i == 0 {
                return self.tail(u < 0.0);
            }
            let y = t.f[i + 1] + (t.f[i] - t.f[i + 1]) * self.uniform_open();
            if y < libm::exp(-0.5 * x * x) {
                return x;
            }
        }
    }

    fn tail(&mut self, negative: bool) -> f64 {
        loop {
            let x = libm::log(self.uniform_open()) / ZIG_R;
            let y = libm::log(self.uniform_open());
            if -2.0 * y >= x * x {
                let v = ZIG_R - x;
                return if negative { -v } else { v };
            }
        }
    }

    /// Fills `out` with standard normals (as f32).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        for v in out {
            *v = self.normal() as f32;
        }
    }

    /// Fills `out` with standard normals from a single-precision ziggurat that takes two
    /// normals from each 64-bit draw (the PFR candidate generator, the encoder's hot path).
    ///
    /// Each 32-bit half picks a layer (8 bits) and a 24-bit signed abscissa; the common case
    /// (inside the layer's rectangle) is one f32 multiply and compare, exactly rounded, hence
    /// the same on every machine. The rare wedge and tail cases fall back to the f64 path.
    pub fn fill_normal_fast(&mut self, out: &mut [f32]) {
        let t = tables_f32();
        let mut pending: Option<u32> = None;
        for v in out.iter_mut() {
            let bits = match pending.take() {
                Some(b) => b,
                None => {
                    let w = self.next_u64();
                    pending = Some((w >> 32) as u32);
                    w as u32
                }
            };
            let i = (bits & 0xff) as usize;
            let u = (bits >> 8) as f32 * (1.0 / (1u32 << 23) as f32) - 1.0;
            let x = u * t.x[i];
            *v = if x.abs() < t.x[i + 1] {
                x
            } else {
                self.normal_slow(i, x as f64)
            };
        }
    }

    /// The ziggurat's rejection step for abscissa `x` in layer `i`, then fresh f64 draws.
    #[cold]
    fn normal_slow(&mut self, i: usize, x: f64) -> f32 {
        let t = tables();
        if i == 0 {
            return self.tail(x < 0.0) as f32;
        }
        let y = t.f[i + 1] + (t.f[i] - t.f[i + 1]) * self.uniform_open();
        if y < libm::exp(-0.5 * x * x) {
            x as f32
        } else {
            self.normal() as f32
        }
    }

    /// Fills `out` with uniforms on [-1/2, 1/2) (as f64, for dithers).
    pub fn fill_uniform_centered(&mut self, out: &mut [f64]) {
        for v in out {
            *v = self.uniform_centered();
        }
    }

    /// A uniformly random permutation of 0..n (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// Ziggurat constants for 256 layers (Marsaglia & Tsang 2000).
#[allow(clippy::excessive_precision)] // the published constant, digit for digit (golden)
const ZIG_R: f64 = 3.654_152_885_361_008_8;
const ZIG_V: f64 = 0.004_928_673_233_99;

struct ZigTables {
    x: [f64; 257],
    f: [f64; 257],
}

/// The layer edges rounded to f32 (for [`Stream::fill_normal_fast`]).
struct ZigTablesF32 {
    x: [f32; 257],
}

fn tables_f32() -> &'static ZigTablesF32 {
    static T: OnceLock<ZigTablesF32> = OnceLock::new();
    T.get_or_init(|| {
        let t = tables();
        let mut x = [0f32; 257];
        for (d, &s) in x.iter_mut().zip(&t.x) {
            *d = s as f32;
        }
        ZigTablesF32 { x }
    })
}

/// Layer edges computed once with libm, hence identical on every machine.
fn tables() -> &'static ZigTables {
    static T: OnceLock<ZigTables> = OnceLock::new();
    T.get_or_init(|| {
        let pdf = |x: f64| libm::exp(-0.5 * x * x);
        let mut x = [0.0; 257];
        x[0] = ZIG_V / pdf(ZIG_R);
        x[1] = ZIG_R;
        for i in 2..256 {
            let prev = x[i - 1];
            x[i] = libm::sqrt(-2.0 * libm::log(ZIG_V / prev + pdf(prev)));
        }
        x[256] = 0.0;
        let mut f = [0.0; 257];
        for i in 0..257 {
            f[i] = pdf(x[i]);
        }
        ZigTables { x, f }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_keyed_and_reproducible() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut s = Stream::new(7, Purpose::PfrCandidate, 3, 9, 1 << 40);
                move |_| s.next_u64()
            })
            .collect();
        let mut s = Stream::new(7, Purpose::PfrCandidate, 3, 9, 1 << 40);
        let b: Vec<u64> = (0..4).map(|_| s.next_u64()).collect();
        assert_eq!(a, b);
        let mut other = Stream::new(7, Purpose::PfrCandidate, 3, 9, (1 << 40) + 1);
        assert_ne!(a[0], other.next_u64(), "64-bit sub-streams must differ");
        let mut other = Stream::new(7, Purpose::PfrArrival, 3, 9, 1 << 40);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn ziggurat_tables_close_at_zero() {
        let t = tables();
        // the recursion should land (almost) on 0 at the top layer
        assert!(t.x[255] > 0.0 && t.x[255] < 0.3, "{}", t.x[255]);
        assert!((t.x[0] - 3.910_757_959_537_09).abs() < 1e-9);
    }

    #[test]
    fn normals_have_the_right_moments_and_tails() {
        let mut s = Stream::new(1, Purpose::Experiment, 0, 0, 0);
        let n = 2_000_000;
        let (mut m1, mut m2, mut m4, mut tail) = (0.0, 0.0, 0.0, 0usize);
        for _ in 0..n {
            let x = s.normal();
            m1 += x;
            m2 += x * x;
            m4 += x * x * x * x;
            if x.abs() > 3.0 {
                tail += 1;
            }
        }
        let n = n as f64;
        assert!((m1 / n).abs() < 0.003, "mean {}", m1 / n);
        assert!((m2 / n - 1.0).abs() < 0.005, "var {}", m2 / n);
        assert!((m4 / n - 3.0).abs() < 0.05, "kurtosis {}", m4 / n);
        // P(|x| > 3) = 0.0026998
        let p = tail as f64 / n;
        assert!((p - 0.0026998).abs() < 0.0002, "tail {p}");
    }

    /// The fast generator has the moments and tails of N(0, 1) too.
    #[test]
    fn fast_normals_have_the_right_moments_and_tails() {
        let mut s = Stream::new(2, Purpose::Experiment, 0, 0, 0);
        let mut v = vec![0f32; 2_000_001];
        s.fill_normal_fast(&mut v);
        let n = v.len() as f64;
        let m1 = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let m2 = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n;
        let m4 = v.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / n;
        let tail = v.iter().filter(|x| x.abs() > 3.0).count() as f64 / n;
        let far = v.iter().filter(|x| x.abs() > 4.0).count() as f64 / n;
        assert!(m1.abs() < 0.003, "mean {m1}");
        assert!((m2 - 1.0).abs() < 0.005, "var {m2}");
        assert!((m4 - 3.0).abs() < 0.05, "kurtosis {m4}");
        assert!((tail - 0.0026998).abs() < 0.0002, "tail {tail}");
        assert!((far - 6.334e-5).abs() < 2.5e-5, "far tail {far}");
    }

    /// Golden values: any change to key derivation or the normal sampler breaks old files.
    #[test]
    fn golden_stream_values() {
        let mut s = Stream::new(0, Purpose::InitLatent, 0, 0, 0);
        let v: Vec<f64> = (0..3).map(|_| s.normal()).collect();
        let bits: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
        let golden = std::env::var("DIFFC_PRINT_GOLDEN").is_ok();
        if golden {
            eprintln!("{bits:?}");
        }
        assert_eq!(bits, GOLDEN_NORMALS.to_vec());
        let mut s = Stream::new(0, Purpose::PfrCandidate, 1, 2, 3);
        let mut f = [0f32; 5];
        s.fill_normal_fast(&mut f);
        let fb: Vec<u32> = f.iter().map(|x| x.to_bits()).collect();
        if golden {
            eprintln!("{fb:?}");
        }
        assert_eq!(fb, GOLDEN_FAST.to_vec());
    }
    const GOLDEN_FAST: [u32; 5] = [3217633986, 1051469210, 1062940387, 1058992297, 1064593362];
    const GOLDEN_NORMALS: [u64; 3] = [
        4606127970925663137,
        13813944531990653749,
        13830274391711635355,
    ];

    #[test]
    fn permutation_is_a_permutation() {
        let mut s = Stream::new(3, Purpose::ChunkPartition, 1, 0, 0);
        let mut p = s.permutation(1000);
        p.sort();
        assert!(p.iter().enumerate().all(|(i, &v)| i as u32 == v));
    }
}
