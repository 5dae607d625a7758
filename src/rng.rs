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

/// The ChaCha8 key of the streams for `(seed, purpose, step, chunk)` (the sub-stream is the
/// ChaCha stream id).
pub fn stream_key(seed: u64, purpose: Purpose, step: u32, chunk: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&(purpose as u32).to_le_bytes());
    key[12..16].copy_from_slice(&step.to_le_bytes());
    key[16..24].copy_from_slice(&chunk.to_le_bytes());
    key[24..32].copy_from_slice(b"diffc-v1");
    key
}

/// The ziggurat's 257 layer edges in f32 (the candidate generator's fast path).
pub fn zig_edges() -> &'static [f32; 257] {
    &tables_f32().x
}

/// A keyed stream of portable random numbers.
pub struct Stream {
    rng: ChaCha8Rng,
}

impl Stream {
    /// The stream for `(seed, purpose, step, chunk)`, sub-stream `sub` (64-bit: candidates).
    pub fn new(seed: u64, purpose: Purpose, step: u32, chunk: u64, sub: u64) -> Self {
        let mut rng = ChaCha8Rng::from_seed(stream_key(seed, purpose, step, chunk));
        rng.set_stream(sub);
        Stream { rng }
    }

    /// Moves to 32-bit word `pos` of the stream.
    pub fn seek_word(&mut self, pos: u128) {
        self.rng.set_word_pos(pos);
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
        normal_from(self)
    }

    /// Fills `out` with standard normals (as f32).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        for v in out {
            *v = self.normal() as f32;
        }
    }

    /// The next `out.len()` 32-bit words of the stream, in order.
    #[inline]
    pub fn fill_words(&mut self, out: &mut [u32]) {
        let mut bytes = [0u8; 4 * WORD_BLOCK];
        for block in out.chunks_mut(WORD_BLOCK) {
            let b = &mut bytes[..4 * block.len()];
            self.rng.fill_bytes(b);
            for (w, c) in block.iter_mut().zip(b.chunks_exact(4)) {
                *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }

    /// Fills `out` with standard normals, the PFR candidates' generator: the plain definition
    /// that [`Stream::candidate_normals`] computes block by block.
    ///
    /// Normal i is made from the stream's 32-bit word i alone: 8 bits pick a ziggurat layer,
    /// 24 bits a signed abscissa, and in the common case (inside the layer's rectangle) it is
    /// one exactly rounded f32 multiply, the same on every machine. Only after all
    /// `out.len()` words are the rare rejected ones resolved, in order, from the stream's
    /// next draws (wedge test and tail in f64 with libm): so a candidate's first pass is
    /// branch-free over a fixed word layout, which is what makes the fused scorer possible.
    pub fn fill_normal_fast(&mut self, out: &mut [f32]) {
        let t = tables_f32();
        let mut rejected = Vec::new();
        for (i, v) in out.iter_mut().enumerate() {
            let w = self.rng.next_u32();
            let (x, ok) = zig_fast(t, w);
            *v = x;
            if !ok {
                rejected.push((i, (w & 0xff) as u8));
            }
        }
        for (i, layer) in rejected {
            out[i] = self.normal_slow(layer as usize, out[i] as f64);
        }
    }

    /// The normals of [`Stream::fill_normal_fast`] for `d` dimensions, handed to `sink` a
    /// block of [`WORD_BLOCK`] at a time (rejected lanes as 0.0) and then, one by one, the
    /// resolved rejected lanes: generation and use in one pass, with no buffer beyond a block.
    /// `rejected` is scratch space (about 1.2 % of the lanes), reused across calls. On x86-64
    /// with AVX2 the same arithmetic runs with 8-lane table gathers (bit-identical: only
    /// exactly rounded f32 products and compares).
    #[inline]
    pub fn candidate_normals<S: NormalSink>(
        &mut self,
        d: usize,
        sink: &mut S,
        rejected: &mut Vec<(u32, u8, f32)>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { self.candidate_normals_avx2(d, sink, rejected) };
            return;
        }
        self.candidate_normals_impl(d, sink, rejected)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn candidate_normals_avx2<S: NormalSink>(
        &mut self,
        d: usize,
        sink: &mut S,
        rejected: &mut Vec<(u32, u8, f32)>,
    ) {
        self.candidate_normals_impl(d, sink, rejected)
    }

    #[inline(always)]
    fn candidate_normals_impl<S: NormalSink>(
        &mut self,
        d: usize,
        sink: &mut S,
        rejected: &mut Vec<(u32, u8, f32)>,
    ) {
        let t = tables_f32();
        let mut words = [0u32; WORD_BLOCK];
        let mut xs = [0f32; WORD_BLOCK];
        rejected.clear();
        let mut off = 0;
        while off < d {
            let n = WORD_BLOCK.min(d - off);
            self.fill_words(&mut words[..n]);
            // lanes past a short last block hold stale words: never report them
            let mut mask = zig_block(t, &words, &mut xs) & (u64::MAX >> (WORD_BLOCK - n));
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let x = zig_fast(t, words[k]).0;
                rejected.push(((off + k) as u32, (words[k] & 0xff) as u8, x));
            }
            sink.block(off, &xs[..n]);
            off += n;
        }
        for &(i, layer, x) in rejected.iter() {
            let v = self.normal_slow(layer as usize, x as f64);
            sink.fix(i as usize, v);
        }
    }

    /// The ziggurat's rejection step for abscissa `x` in layer `i`, then fresh f64 draws.
    #[cold]
    pub fn normal_slow(&mut self, i: usize, x: f64) -> f32 {
        normal_slow_from(self, i, x)
    }

    /// The next 32-bit word of the stream.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
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

/// A stream's 32-bit words in order, read two at a time (low word first, as ChaCha8's
/// `next_u64`): what the ziggurat's slow path consumes. [`Stream`] is one; the lane kernels
/// hand out the words their own ChaCha blocks already made past a candidate's d words.
pub trait Words {
    /// The next two words, the first in the low half.
    fn next_u64(&mut self) -> u64;
}

impl Words for Stream {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

#[inline]
fn uniform_open_from<W: Words + ?Sized>(w: &mut W) -> f64 {
    ((w.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// [`Stream::normal`] from any word source.
#[inline]
pub fn normal_from<W: Words + ?Sized>(w: &mut W) -> f64 {
    let t = tables();
    loop {
        let bits = w.next_u64();
        let i = (bits & 0xff) as usize;
        let f = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let u = 2.0 * f - 1.0;
        let x = u * t.x[i];
        if x.abs() < t.x[i + 1] {
            return x;
        }
        if i == 0 {
            return tail_from(w, u < 0.0);
        }
        let y = t.f[i + 1] + (t.f[i] - t.f[i + 1]) * uniform_open_from(w);
        if y < libm::exp(-0.5 * x * x) {
            return x;
        }
    }
}

fn tail_from<W: Words + ?Sized>(w: &mut W, negative: bool) -> f64 {
    loop {
        let x = libm::log(uniform_open_from(w)) / ZIG_R;
        let y = libm::log(uniform_open_from(w));
        if -2.0 * y >= x * x {
            let v = ZIG_R - x;
            return if negative { -v } else { v };
        }
    }
}

/// [`Stream::normal_slow`] from any word source: the rejection step for abscissa `x` in
/// layer `i`, then fresh f64 draws.
#[cold]
pub fn normal_slow_from<W: Words + ?Sized>(w: &mut W, i: usize, x: f64) -> f32 {
    if i == 0 {
        return tail_from(w, x < 0.0) as f32;
    }
    normal_slow_given_exp(w, i, x, libm::exp(-0.5 * x * x))
}

/// [`normal_slow_from`] given `e = libm::exp(-0.5 * x * x)` (the lane kernels compute it
/// for many draws at once, bit for bit, see the PFR lane kernels, `channel::lanes`).
#[inline]
pub fn normal_slow_given_exp<W: Words + ?Sized>(w: &mut W, i: usize, x: f64, e: f64) -> f32 {
    let t = tables();
    if i == 0 {
        return tail_from(w, x < 0.0) as f32;
    }
    let y = t.f[i + 1] + (t.f[i] - t.f[i + 1]) * uniform_open_from(w);
    if y < e {
        x as f32
    } else {
        normal_from(w) as f32
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

/// Words per block of [`Stream::candidate_normals`] (four ChaCha blocks).
pub const WORD_BLOCK: usize = 64;

/// Receives candidate normals from [`Stream::candidate_normals`].
pub trait NormalSink {
    /// Normals `off..off + xs.len()`, rejected lanes as 0.0 (they arrive later by `fix`).
    fn block(&mut self, off: usize, xs: &[f32]);
    /// The resolved value of rejected lane `i`.
    fn fix(&mut self, i: usize, x: f32);
}

/// The ziggurat's fast path for one 32-bit word: (abscissa, inside the layer's rectangle).
#[inline(always)]
fn zig_fast(t: &ZigTablesF32, w: u32) -> (f32, bool) {
    let i = (w & 0xff) as usize;
    let u = (w >> 8) as f32 * (1.0 / (1u32 << 23) as f32) - 1.0;
    let x = u * t.x[i];
    (x, x.abs() < t.x[i + 1])
}

/// [`zig_fast`] over a block: the accepted abscissae (rejected lanes 0.0) and a bit mask of
/// the rejected lanes. The AVX2 kernel, when the CPU has it, computes the same bits.
#[inline(always)]
fn zig_block(t: &ZigTablesF32, w: &[u32; WORD_BLOCK], xs: &mut [f32; WORD_BLOCK]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { zig_block_avx2(t, w, xs) };
    }
    zig_block_plain(t, w, xs)
}

/// The plain version of [`zig_block`].
#[inline(always)]
fn zig_block_plain(t: &ZigTablesF32, w: &[u32; WORD_BLOCK], xs: &mut [f32; WORD_BLOCK]) -> u64 {
    let mut mask = 0u64;
    for k in 0..WORD_BLOCK {
        let (x, ok) = zig_fast(t, w[k]);
        xs[k] = if ok { x } else { 0.0 };
        mask |= ((!ok) as u64) << k;
    }
    mask
}

/// [`zig_block`] eight lanes at a time: two table gathers, one f32 multiply, one compare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn zig_block_avx2(t: &ZigTablesF32, w: &[u32; WORD_BLOCK], xs: &mut [f32; WORD_BLOCK]) -> u64 {
    use std::arch::x86_64::*;
    let mut mask = 0u64;
    let scale = _mm256_set1_ps(1.0 / (1u32 << 23) as f32);
    let one = _mm256_set1_ps(1.0);
    let low = _mm256_set1_epi32(0xff);
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    for g in 0..WORD_BLOCK / 8 {
        // SAFETY: in bounds: lanes 8g..8g+8 of 64-element arrays; gather indices are
        // ≤ 255 (+1 for the second table read) in a 257-entry table.
        unsafe {
            let v = _mm256_loadu_si256(w.as_ptr().add(8 * g) as *const __m256i);
            let i = _mm256_and_si256(v, low);
            let xi = _mm256_i32gather_ps::<4>(t.x.as_ptr(), i);
            let xn = _mm256_i32gather_ps::<4>(t.x.as_ptr().add(1), i);
            // (w >> 8) < 2^24 converts exactly through i32
            let u = _mm256_sub_ps(
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32::<8>(v)), scale),
                one,
            );
            let x = _mm256_mul_ps(u, xi);
            let ok = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(x, abs), xn);
            _mm256_storeu_ps(xs.as_mut_ptr().add(8 * g), _mm256_and_ps(x, ok));
            let bad = !(_mm256_movemask_ps(ok) as u32) & 0xff;
            mask |= (bad as u64) << (8 * g);
        }
    }
    mask
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

    /// The AVX2 block kernel equals the plain one on random words and on every layer's edges.
    #[test]
    fn zig_block_kernels_agree() {
        let t = tables_f32();
        let mut s = Stream::new(6, Purpose::Experiment, 0, 0, 0);
        for round in 0..2000u32 {
            let mut w = [0u32; WORD_BLOCK];
            if round < 1000 {
                s.fill_words(&mut w);
            } else {
                // abscissae at the extremes of each layer
                for (k, v) in w.iter_mut().enumerate() {
                    let hi = [0u32, 1, 0xff_fffe, 0xff_ffff, 0x80_0000][k % 5];
                    *v = (hi << 8) | ((round * 64 + k as u32) & 0xff);
                }
            }
            let (mut a, mut b) = ([0f32; WORD_BLOCK], [0f32; WORD_BLOCK]);
            let ma = zig_block_plain(t, &w, &mut a);
            let mb = zig_block(t, &w, &mut b);
            assert_eq!(ma, mb);
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
        }
    }

    /// The block generator (what the fused scorer sees) equals the plain definition, bit for
    /// bit, at sizes around the block length, and the stream is left at the same place.
    #[test]
    fn block_normals_equal_the_plain_generator() {
        struct Collect(Vec<f32>);
        impl NormalSink for Collect {
            fn block(&mut self, off: usize, xs: &[f32]) {
                self.0[off..off + xs.len()].copy_from_slice(xs);
            }
            fn fix(&mut self, i: usize, x: f32) {
                self.0[i] = x;
            }
        }
        let mut scratch = Vec::new();
        for &d in &[1usize, 2, 63, 64, 65, 128, 1000, 4097] {
            for sub in [0u64, 1 << 40] {
                let mut plain = vec![0f32; d];
                let mut a = Stream::new(5, Purpose::PfrCandidate, 1, 2, sub);
                a.fill_normal_fast(&mut plain);
                let mut c = Collect(vec![f32::NAN; d]);
                let mut b = Stream::new(5, Purpose::PfrCandidate, 1, 2, sub);
                b.candidate_normals(d, &mut c, &mut scratch);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&plain), bits(&c.0), "d {d}");
                assert_eq!(a.next_u64(), b.next_u64());
            }
        }
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
