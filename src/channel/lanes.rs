//! PFR candidates many at a time: sixteen in the lanes of AVX-512 registers, or eight in
//! AVX2 registers, chosen at run time.
//!
//! Candidate n's normals come from its own ChaCha8 stream (stream id n, see
//! [`Stream::fill_normal_fast`]). Here the blocks of 16 (or 8) consecutive candidates' streams
//! run in the lanes of each register, so word k of all the candidates lands in one register:
//! the ziggurat's fast path and Σ a_k u_k − b_k u_k² then run across candidates with `a_k`
//! broadcast, without a transpose or a candidate buffer. Rejected draws are resolved
//! afterwards from each candidate's stream past its d words, as the plain generator does;
//! those words come from the same lane kernel, which simply runs each stream a few blocks
//! further (a fresh [`Stream`] takes over only if a candidate needs more). So the scored
//! candidates are exactly the ones the decoder regenerates (tested against [`Stream`] and the
//! reference scorer).
use super::pfr::Coefs;
use crate::rng::{Purpose, Stream, Words, normal_slow_given_exp, stream_key, zig_edges};

/// Most candidates scored per call (the AVX-512 kernel's lanes).
pub const LANES: usize = 16;

/// A lane kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Sixteen candidates per call in 512-bit registers (AVX-512F).
    Avx512,
    /// Eight candidates per call in 256-bit registers (AVX2 and FMA).
    Avx2,
}

impl Kernel {
    /// Candidates per call.
    pub fn lanes(self) -> usize {
        match self {
            Kernel::Avx512 => 16,
            Kernel::Avx2 => 8,
        }
    }
    /// The name reported by the benchmark.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512-16-lanes",
            Kernel::Avx2 => "avx2-8-lanes",
        }
    }
    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Kernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Kernel::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// The best lane kernel this CPU runs (None: the 64-word block generator is used instead).
pub fn best() -> Option<Kernel> {
    [Kernel::Avx512, Kernel::Avx2]
        .into_iter()
        .find(|k| k.available())
}

/// Whether this CPU runs [`score16`].
pub fn available() -> bool {
    Kernel::Avx512.available()
}

/// A rejected draw: (lane, dimension, ziggurat layer, abscissa).
pub type Rejected = (u8, u32, u8, f32);

/// Reusable space of the lane kernels.
#[derive(Default)]
pub struct Scratch {
    rejected: Vec<Rejected>,
    /// Words of each lane's stream past its d words, word-major (`lanes` words per row).
    extra: Vec<u32>,
    /// The wedge tests' `exp(-x²/2)` of the rejected draws.
    exps: Vec<f64>,
    /// The AVX-512 kernel's rejected words and their tags (16 × dimension + lane).
    raw_w: Vec<u32>,
    raw_tag: Vec<u32>,
}

/// Σ a u − b u² of candidates `n0..n0 + kernel.lanes()` of chunk `chunk` at `step`, into
/// `out[..kernel.lanes()]`. Panics unless the kernel is available.
#[allow(clippy::too_many_arguments)]
pub fn score(
    kernel: Kernel,
    seed: u64,
    step: u32,
    chunk: u64,
    n0: u64,
    c: &Coefs,
    scratch: &mut Scratch,
    out: &mut [f64; LANES],
) {
    assert!(kernel.available(), "{} is not available", kernel.name());
    let key = stream_key(seed, Purpose::PfrCandidate, step, chunk);
    let d = c.a.len();
    let lanes = kernel.lanes();
    // the main pass: fast-path draws scored, rejected draws noted, and each lane's stream
    // run on past word d far enough for its fix-ups (two words per wedge test and a margin)
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the kernel's CPU features were asserted above.
    unsafe {
        match kernel {
            Kernel::Avx512 => avx512::main_pass(&key, n0, c, scratch, out),
            Kernel::Avx2 => avx2::main_pass(&key, n0, c, scratch, out),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (&key, n0, &mut *out);
    // the rare rejected draws: each lane reads its own words in dimension order (the list is
    // in dimension order already, and lanes' streams are independent)
    let base = d / 16 * 16;
    let end = base + scratch.extra.len() / lanes;
    let mut src: [LaneWords; LANES] = std::array::from_fn(|l| LaneWords {
        extra: &scratch.extra,
        lanes,
        lane: l,
        base,
        end,
        pos: d,
        fallback: None,
        key: (seed, step, chunk, n0.wrapping_add(l as u64)),
    });
    wedge_exps(&scratch.rejected, &mut scratch.exps);
    for (&(lane, k, layer, x), &e) in scratch.rejected.iter().zip(&scratch.exps) {
        let src = &mut src[lane as usize];
        let u = normal_slow_given_exp(src, layer as usize, x as f64, e) as f64;
        let b = c.b.map_or(0.0, |b| b[k as usize] as f64);
        out[lane as usize] += u * (c.a[k as usize] as f64 - b * u);
    }
}

/// The sixteen-lane kernel: [`score`] with [`Kernel::Avx512`].
pub fn score16(
    seed: u64,
    step: u32,
    chunk: u64,
    n0: u64,
    c: &Coefs,
    scratch: &mut Scratch,
    out: &mut [f64; LANES],
) {
    score(Kernel::Avx512, seed, step, chunk, n0, c, scratch, out)
}

/// The eight-lane kernel: [`score`] with [`Kernel::Avx2`] (`out[..8]`).
pub fn score8(
    seed: u64,
    step: u32,
    chunk: u64,
    n0: u64,
    c: &Coefs,
    scratch: &mut Scratch,
    out: &mut [f64; LANES],
) {
    score(Kernel::Avx2, seed, step, chunk, n0, c, scratch, out)
}

/// XOR of every word of ChaCha8 blocks `0..blocks` of the kernel's lanes' streams (keyed by
/// `chunk`): the lane kernel's generator alone, for the benchmark. Panics unless available.
pub fn stream_blocks(kernel: Kernel, chunk: u64, blocks: usize) -> u32 {
    assert!(kernel.available(), "{} is not available", kernel.name());
    let rows = rows(&stream_key(0, Purpose::Experiment, 5, chunk));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the kernel's CPU features were asserted above.
    unsafe {
        match kernel {
            Kernel::Avx512 => avx512::stream_blocks(&rows, blocks),
            Kernel::Avx2 => avx2::stream_blocks(&rows, blocks),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, blocks);
        unreachable!()
    }
}

/// `libm::exp(-0.5 x²)` for each rejected draw's abscissa x, bit for bit: libm's own
/// algorithm (fdlibm's `exp`: reduction by k ln 2, a degree-5 rational step, scaling by
/// 2^k), eight draws at a time on AVX-512 CPUs, with the same IEEE operations in the same
/// order and no fused multiply-adds; `libm::exp` itself elsewhere.
fn wedge_exps(rejected: &[Rejected], out: &mut Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    let kernel = best();
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = None;
    wedge_exps_with(kernel, rejected, out)
}

/// [`wedge_exps`] with a given kernel's vector width (None: `libm::exp` one at a time).
fn wedge_exps_with(kernel: Option<Kernel>, rejected: &[Rejected], out: &mut Vec<f64>) {
    out.clear();
    out.extend(rejected.iter().map(|r| {
        let x = r.3 as f64;
        -0.5 * x * x
    }));
    let width = kernel.map_or(1, |k| k.lanes() / 2);
    let mut chunks = out.chunks_exact_mut(width);
    for c in &mut chunks {
        match kernel {
            // SAFETY: the kernel's CPU features (callers pass available kernels only)
            #[cfg(target_arch = "x86_64")]
            Some(Kernel::Avx512) => unsafe { avx512::exp8(c.try_into().expect("8 lanes")) },
            #[cfg(target_arch = "x86_64")]
            Some(Kernel::Avx2) => unsafe { avx2::exp4(c.try_into().expect("4 lanes")) },
            _ => c[0] = libm::exp(c[0]),
        }
    }
    for v in chunks.into_remainder() {
        *v = libm::exp(*v);
    }
}

/// One lane's stream from word d on: the kernel's extra words, then a fresh stream.
struct LaneWords<'a> {
    extra: &'a [u32],
    lanes: usize,
    lane: usize,
    /// Stream word of `extra`'s first row, and one past its last.
    base: usize,
    end: usize,
    /// Next stream word.
    pos: usize,
    fallback: Option<Stream>,
    key: (u64, u32, u64, u64),
}

impl LaneWords<'_> {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        if self.pos < self.end {
            let w = self.extra[(self.pos - self.base) * self.lanes + self.lane];
            self.pos += 1;
            return w;
        }
        self.fallback
            .get_or_insert_with(|| {
                let (seed, step, chunk, n) = self.key;
                let mut s = Stream::new(seed, Purpose::PfrCandidate, step, chunk, n);
                s.seek_word(self.pos as u128);
                s
            })
            .next_u32()
    }
}

impl Words for LaneWords<'_> {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        let lo = self.next_u32() as u64;
        let hi = self.next_u32() as u64;
        (hi << 32) | lo
    }
}

/// The constant rows of the ChaCha8 state for `key`: constants, key (rand_chacha's layout).
fn rows(key: &[u8; 32]) -> [u32; 12] {
    let mut rows = [0u32; 12];
    rows[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for (i, r) in rows[4..].iter_mut().enumerate() {
        *r = u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]);
    }
    rows
}

/// Layer i's (x_i 2^-23, x_i+1) as the low and high halves of entry i (f32 bits).
fn edge_pairs() -> &'static [u64; 256] {
    static T: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let x = zig_edges();
        std::array::from_fn(|i| {
            let lo = (x[i] * (1.0 / (1u32 << 23) as f32)).to_bits() as u64;
            ((x[i + 1].to_bits() as u64) << 32) | lo
        })
    })
}

/// Words of fix-up stream each lane gets past word d, given its most rejected draws `r`
/// (each wedge test reads two words; the margin covers most failed tests and tails).
fn extra_words(r: usize) -> usize {
    2 * r + 16
}

/// fdlibm's `exp` constants, as libm has them (digit for digit).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::excessive_precision)]
mod fdlibm {
    pub const LN2HI: f64 = 6.931_471_803_691_238_164_90e-1;
    pub const LN2LO: f64 = 1.908_214_929_270_587_700_02e-10;
    pub const INVLN2: f64 = std::f64::consts::LOG2_E;
    pub const P1: f64 = 1.666_666_666_666_660_190_37e-1;
    pub const P2: f64 = -2.777_777_777_701_559_338_42e-3;
    pub const P3: f64 = 6.613_756_321_437_934_361_17e-5;
    pub const P4: f64 = -1.653_390_220_546_525_153_90e-6;
    pub const P5: f64 = 4.138_136_797_057_238_460_39e-8;
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::fdlibm::*;
    use super::*;
    use std::arch::x86_64::*;

    /// ChaCha8 block `blk` of the sixteen lanes' streams: word i of every lane in `x[i]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn block(rows: &[u32; 12], blk: u64, id: (__m512i, __m512i)) -> [__m512i; 16] {
        let mut x = [_mm512_setzero_si512(); 16];
        for i in 0..12 {
            x[i] = _mm512_set1_epi32(rows[i] as i32);
        }
        let (c_lo, c_hi) = (
            _mm512_set1_epi32(blk as u32 as i32),
            _mm512_set1_epi32((blk >> 32) as u32 as i32),
        );
        x[12] = c_lo;
        x[13] = c_hi;
        x[14] = id.0;
        x[15] = id.1;
        macro_rules! qr {
            ($a:expr, $b:expr, $c:expr, $d:expr) => {
                x[$a] = _mm512_add_epi32(x[$a], x[$b]);
                x[$d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[$d], x[$a]));
                x[$c] = _mm512_add_epi32(x[$c], x[$d]);
                x[$b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[$b], x[$c]));
                x[$a] = _mm512_add_epi32(x[$a], x[$b]);
                x[$d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[$d], x[$a]));
                x[$c] = _mm512_add_epi32(x[$c], x[$d]);
                x[$b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[$b], x[$c]));
            };
        }
        for _ in 0..4 {
            qr!(0, 4, 8, 12);
            qr!(1, 5, 9, 13);
            qr!(2, 6, 10, 14);
            qr!(3, 7, 11, 15);
            qr!(0, 5, 10, 15);
            qr!(1, 6, 11, 12);
            qr!(2, 7, 8, 13);
            qr!(3, 4, 9, 14);
        }
        for i in 0..12 {
            x[i] = _mm512_add_epi32(x[i], _mm512_set1_epi32(rows[i] as i32));
        }
        x[12] = _mm512_add_epi32(x[12], c_lo);
        x[13] = _mm512_add_epi32(x[13], c_hi);
        x[14] = _mm512_add_epi32(x[14], id.0);
        x[15] = _mm512_add_epi32(x[15], id.1);
        x
    }

    /// `libm::exp` of eight values in place, for |v| < 708 (others: `libm::exp`).
    #[target_feature(enable = "avx512f")]
    pub(super) fn exp8(v: &mut [f64; 8]) {
        // SAFETY: an 8-lane load and store of the 8-element array
        let x0 = unsafe { _mm512_loadu_pd(v.as_ptr()) };
        let bits = _mm512_castpd_si512(x0);
        let hx = _mm512_and_si512(
            _mm512_srli_epi64::<32>(bits),
            _mm512_set1_epi64(0x7fff_ffff),
        );
        let neg = _mm512_test_epi64_mask(bits, _mm512_set1_epi64(i64::MIN));
        let out_of_range = _mm512_cmpge_epi64_mask(hx, _mm512_set1_epi64(0x4086_232b));
        let big = _mm512_cmpgt_epi64_mask(hx, _mm512_set1_epi64(0x3fd6_2e42));
        let huge = _mm512_cmpge_epi64_mask(hx, _mm512_set1_epi64(0x3ff0_a2b2));
        let tiny = _mm512_cmple_epi64_mask(hx, _mm512_set1_epi64(0x3e30_0000));
        // k = (INVLN2 x + ±½) truncated where |x| ≥ 1.5 ln 2, else ±1 (0 where not big),
        // held as an exact f64
        let half = _mm512_mask_blend_pd(neg, _mm512_set1_pd(0.5), _mm512_set1_pd(-0.5));
        let kt = _mm512_cvtepi32_pd(_mm512_cvttpd_epi32(_mm512_add_pd(
            _mm512_mul_pd(_mm512_set1_pd(INVLN2), x0),
            half,
        )));
        let k_mid = _mm512_mask_blend_pd(neg, _mm512_set1_pd(1.0), _mm512_set1_pd(-1.0));
        let kd = _mm512_maskz_mov_pd(big, _mm512_mask_blend_pd(huge, k_mid, kt));
        let k = _mm512_cvtpd_epi32(kd);
        let hi = _mm512_mask_sub_pd(x0, big, x0, _mm512_mul_pd(kd, _mm512_set1_pd(LN2HI)));
        let lo = _mm512_maskz_mul_pd(big, kd, _mm512_set1_pd(LN2LO));
        let x = _mm512_mask_sub_pd(x0, big, hi, lo);
        let xx = _mm512_mul_pd(x, x);
        let mut p = _mm512_mul_pd(xx, _mm512_set1_pd(P5));
        for c in [P4, P3, P2] {
            p = _mm512_mul_pd(xx, _mm512_add_pd(_mm512_set1_pd(c), p));
        }
        let p = _mm512_mul_pd(xx, _mm512_add_pd(_mm512_set1_pd(P1), p));
        let c = _mm512_sub_pd(x, p);
        let t = _mm512_div_pd(_mm512_mul_pd(x, c), _mm512_sub_pd(_mm512_set1_pd(2.0), c));
        let y = _mm512_add_pd(_mm512_set1_pd(1.0), _mm512_add_pd(_mm512_sub_pd(t, lo), hi));
        // y 2^k (exact: y 2^k is a normal number here), libm's scalbn
        let scale = _mm512_slli_epi64::<52>(_mm512_add_epi64(
            _mm512_cvtepi32_epi64(k),
            _mm512_set1_epi64(1023),
        ));
        let r = _mm512_mul_pd(y, _mm512_castsi512_pd(scale));
        let r = _mm512_mask_add_pd(r, tiny, _mm512_set1_pd(1.0), x0);
        // SAFETY: as above
        unsafe { _mm512_storeu_pd(v.as_mut_ptr(), r) };
        let mut odd = out_of_range;
        while odd != 0 {
            let l = odd.trailing_zeros() as usize;
            odd &= odd - 1;
            v[l] = libm::exp(v[l]);
        }
    }

    /// XOR of blocks `0..blocks` of lanes 0..16's streams.
    #[target_feature(enable = "avx512f")]
    pub(super) fn stream_blocks(rows: &[u32; 12], blocks: usize) -> u32 {
        let id = (
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_setzero_si512(),
        );
        let mut acc = _mm512_setzero_si512();
        for blk in 0..blocks {
            for w in block(rows, blk as u64, id) {
                acc = _mm512_xor_si512(acc, w);
            }
        }
        _mm512_reduce_or_epi32(acc) as u32
    }

    /// The fast path and the scores over d words; rejected draws into `scratch.rejected`,
    /// each lane's next words into `scratch.extra`.
    #[target_feature(enable = "avx512f")]
    pub(super) fn main_pass(
        key: &[u8; 32],
        n0: u64,
        c: &Coefs,
        scratch: &mut Scratch,
        out: &mut [f64; LANES],
    ) {
        scratch.rejected.clear();
        let d = c.a.len();
        let rows = rows(key);
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // stream ids n0 + lane as 64-bit (low, high) words with the carry
        let id_lo = _mm512_add_epi32(_mm512_set1_epi32(n0 as u32 as i32), lanes);
        let carry = _mm512_cmplt_epu32_mask(id_lo, _mm512_set1_epi32(n0 as u32 as i32));
        let id_hi = _mm512_mask_add_epi32(
            _mm512_set1_epi32((n0 >> 32) as u32 as i32),
            carry,
            _mm512_set1_epi32((n0 >> 32) as u32 as i32),
            _mm512_set1_epi32(1),
        );
        let id = (id_lo, id_hi);
        let pairs = edge_pairs();
        let sign = _mm512_set1_epi32(i32::MIN);
        let low = _mm512_set1_epi32(0xff);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        let mut acc_lo = _mm512_setzero_pd();
        let mut acc_hi = _mm512_setzero_pd();
        // rejected draws, branch-free: each word's rejected lanes' words and tags (16 k + lane)
        // compressed to the front of a register and stored at the running count
        let mut cnt = 0usize;
        let mut tag = lanes;
        for blk in 0..d.div_ceil(16) {
            if scratch.raw_w.len() < cnt + 16 * 17 {
                scratch.raw_w.resize(2 * cnt + 16 * 17, 0);
                scratch.raw_tag.resize(2 * cnt + 16 * 17, 0);
            }
            let x = block(&rows, blk as u64, id);
            for (i, &w) in x.iter().enumerate() {
                let k = 16 * blk + i;
                if k >= d {
                    break;
                }
                let idx = _mm512_and_si512(w, low);
                // the layer's (x_i 2^-23, x_i+1) as one 64-bit load per lane, split by two
                // permutes. SAFETY: indices ≤ 255 in the 256-entry table
                let (xi, xn) = unsafe {
                    let p_lo = _mm512_i32gather_epi64::<8>(
                        _mm512_castsi512_si256(idx),
                        pairs.as_ptr() as *const i64,
                    );
                    let p_hi = _mm512_i32gather_epi64::<8>(
                        _mm512_extracti64x4_epi64::<1>(idx),
                        pairs.as_ptr() as *const i64,
                    );
                    (
                        _mm512_castsi512_ps(_mm512_permutex2var_epi32(p_lo, even, p_hi)),
                        _mm512_castsi512_ps(_mm512_permutex2var_epi32(p_lo, odd, p_hi)),
                    )
                };
                // u 2^23 = (w >> 8) − 2^23, exact in i32 and f32, and u x_i = (u 2^23)(x_i 2^-23)
                // exactly, so v is the same rounded product as the plain generator's
                let q = _mm512_srai_epi32::<8>(_mm512_xor_si512(w, sign));
                let v = _mm512_mul_ps(_mm512_cvtepi32_ps(q), xi);
                let ok = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(v), xn);
                let vz = _mm512_maskz_mov_ps(ok, v);
                let bad = !ok;
                // SAFETY: cnt + 16 ≤ the buffers' lengths (resized per block above)
                unsafe {
                    _mm512_storeu_si512(
                        scratch.raw_w.as_mut_ptr().add(cnt) as *mut __m512i,
                        _mm512_maskz_compress_epi32(bad, w),
                    );
                    _mm512_storeu_si512(
                        scratch.raw_tag.as_mut_ptr().add(cnt) as *mut __m512i,
                        _mm512_maskz_compress_epi32(bad, tag),
                    );
                }
                cnt += bad.count_ones() as usize;
                tag = _mm512_add_epi32(tag, _mm512_set1_epi32(16));
                let vl = _mm512_cvtps_pd(_mm512_castps512_ps256(vz));
                let vh = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(vz),
                )));
                let a = _mm512_set1_pd(c.a[k] as f64);
                match c.b {
                    None => {
                        acc_lo = _mm512_fmadd_pd(vl, a, acc_lo);
                        acc_hi = _mm512_fmadd_pd(vh, a, acc_hi);
                    }
                    Some(b) => {
                        let b = _mm512_set1_pd(b[k] as f64);
                        let t_lo = _mm512_fnmadd_pd(b, vl, a);
                        let t_hi = _mm512_fnmadd_pd(b, vh, a);
                        acc_lo = _mm512_fmadd_pd(vl, t_lo, acc_lo);
                        acc_hi = _mm512_fmadd_pd(vh, t_hi, acc_hi);
                    }
                }
            }
        }
        // SAFETY: two 8-lane stores into the 16-element output
        unsafe {
            _mm512_storeu_pd(out.as_mut_ptr(), acc_lo);
            _mm512_storeu_pd(out.as_mut_ptr().add(8), acc_hi);
        }
        // each lane's stream from block d / 16 on, far enough for its fix-ups
        let mut count = [0u32; 16];
        let pairs = edge_pairs();
        for (&w, &t) in scratch.raw_w[..cnt].iter().zip(&scratch.raw_tag[..cnt]) {
            let (l, k) = ((t & 15) as usize, t >> 4);
            count[l] += 1;
            // the vector lane's product again (the same exactly rounded f32 multiply)
            let xs = f32::from_bits(pairs[(w & 0xff) as usize] as u32);
            let v = (((w ^ 0x8000_0000) as i32) >> 8) as f32 * xs;
            scratch.rejected.push((l as u8, k, (w & 0xff) as u8, v));
        }
        let r = count.iter().copied().max().unwrap_or(0) as usize;
        scratch.extra.clear();
        if r == 0 {
            return;
        }
        let base = d / 16;
        let blocks = (d + extra_words(r)).div_ceil(16) - base;
        scratch.extra.resize(blocks * 256, 0);
        for j in 0..blocks {
            let x = block(&rows, (base + j) as u64, id);
            for (i, &w) in x.iter().enumerate() {
                // SAFETY: row 16 j + i of `blocks` × 16 rows of 16 words
                unsafe {
                    _mm512_storeu_si512(
                        scratch.extra.as_mut_ptr().add(256 * j + 16 * i) as *mut __m512i,
                        w,
                    )
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::fdlibm::*;
    use super::*;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn rol<const L: i32, const R: i32>(v: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi32::<L>(v), _mm256_srli_epi32::<R>(v))
    }

    /// ChaCha8 block `blk` of the eight lanes' streams: word i of every lane in `x[i]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn block(rows: &[u32; 12], blk: u64, id: (__m256i, __m256i)) -> [__m256i; 16] {
        let rot16 = _mm256_setr_epi8(
            2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11,
            8, 9, 14, 15, 12, 13,
        );
        let rot8 = _mm256_setr_epi8(
            3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9,
            10, 15, 12, 13, 14,
        );
        let mut x = [_mm256_setzero_si256(); 16];
        for i in 0..12 {
            x[i] = _mm256_set1_epi32(rows[i] as i32);
        }
        let (c_lo, c_hi) = (
            _mm256_set1_epi32(blk as u32 as i32),
            _mm256_set1_epi32((blk >> 32) as u32 as i32),
        );
        x[12] = c_lo;
        x[13] = c_hi;
        x[14] = id.0;
        x[15] = id.1;
        macro_rules! qr {
            ($a:expr, $b:expr, $c:expr, $d:expr) => {
                x[$a] = _mm256_add_epi32(x[$a], x[$b]);
                x[$d] = _mm256_shuffle_epi8(_mm256_xor_si256(x[$d], x[$a]), rot16);
                x[$c] = _mm256_add_epi32(x[$c], x[$d]);
                x[$b] = rol::<12, 20>(_mm256_xor_si256(x[$b], x[$c]));
                x[$a] = _mm256_add_epi32(x[$a], x[$b]);
                x[$d] = _mm256_shuffle_epi8(_mm256_xor_si256(x[$d], x[$a]), rot8);
                x[$c] = _mm256_add_epi32(x[$c], x[$d]);
                x[$b] = rol::<7, 25>(_mm256_xor_si256(x[$b], x[$c]));
            };
        }
        for _ in 0..4 {
            qr!(0, 4, 8, 12);
            qr!(1, 5, 9, 13);
            qr!(2, 6, 10, 14);
            qr!(3, 7, 11, 15);
            qr!(0, 5, 10, 15);
            qr!(1, 6, 11, 12);
            qr!(2, 7, 8, 13);
            qr!(3, 4, 9, 14);
        }
        for i in 0..12 {
            x[i] = _mm256_add_epi32(x[i], _mm256_set1_epi32(rows[i] as i32));
        }
        x[12] = _mm256_add_epi32(x[12], c_lo);
        x[13] = _mm256_add_epi32(x[13], c_hi);
        x[14] = _mm256_add_epi32(x[14], id.0);
        x[15] = _mm256_add_epi32(x[15], id.1);
        x
    }

    /// `libm::exp` of four values in place, for |v| < 708 (others: `libm::exp`): the
    /// AVX-512 version's operations, four lanes wide.
    #[target_feature(enable = "avx2")]
    pub(super) fn exp4(v: &mut [f64; 4]) {
        // SAFETY: a 4-lane load and store of the 4-element array
        let x0 = unsafe { _mm256_loadu_pd(v.as_ptr()) };
        let bits = _mm256_castpd_si256(x0);
        let hx = _mm256_and_si256(
            _mm256_srli_epi64::<32>(bits),
            _mm256_set1_epi64x(0x7fff_ffff),
        );
        let gt = |c: i64| _mm256_castsi256_pd(_mm256_cmpgt_epi64(hx, _mm256_set1_epi64x(c)));
        // all-ones lanes as masks
        let neg = _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_setzero_si256(), bits));
        let out_of_range = _mm256_movemask_pd(gt(0x4086_232b - 1));
        let big = gt(0x3fd6_2e42);
        let huge = gt(0x3ff0_a2b2 - 1);
        let tiny = _mm256_xor_pd(gt(0x3e30_0000), _mm256_castsi256_pd(_mm256_set1_epi64x(-1)));
        let half = _mm256_blendv_pd(_mm256_set1_pd(0.5), _mm256_set1_pd(-0.5), neg);
        let kt = _mm256_cvtepi32_pd(_mm256_cvttpd_epi32(_mm256_add_pd(
            _mm256_mul_pd(_mm256_set1_pd(INVLN2), x0),
            half,
        )));
        let k_mid = _mm256_blendv_pd(_mm256_set1_pd(1.0), _mm256_set1_pd(-1.0), neg);
        let kd = _mm256_and_pd(big, _mm256_blendv_pd(k_mid, kt, huge));
        let k = _mm256_cvtpd_epi32(kd);
        let hi = _mm256_blendv_pd(
            x0,
            _mm256_sub_pd(x0, _mm256_mul_pd(kd, _mm256_set1_pd(LN2HI))),
            big,
        );
        let lo = _mm256_and_pd(big, _mm256_mul_pd(kd, _mm256_set1_pd(LN2LO)));
        let x = _mm256_blendv_pd(x0, _mm256_sub_pd(hi, lo), big);
        let xx = _mm256_mul_pd(x, x);
        let mut p = _mm256_mul_pd(xx, _mm256_set1_pd(P5));
        for c in [P4, P3, P2] {
            p = _mm256_mul_pd(xx, _mm256_add_pd(_mm256_set1_pd(c), p));
        }
        let p = _mm256_mul_pd(xx, _mm256_add_pd(_mm256_set1_pd(P1), p));
        let c = _mm256_sub_pd(x, p);
        let t = _mm256_div_pd(_mm256_mul_pd(x, c), _mm256_sub_pd(_mm256_set1_pd(2.0), c));
        let y = _mm256_add_pd(_mm256_set1_pd(1.0), _mm256_add_pd(_mm256_sub_pd(t, lo), hi));
        let scale = _mm256_slli_epi64::<52>(_mm256_add_epi64(
            _mm256_cvtepi32_epi64(k),
            _mm256_set1_epi64x(1023),
        ));
        let r = _mm256_mul_pd(y, _mm256_castsi256_pd(scale));
        let r = _mm256_blendv_pd(r, _mm256_add_pd(_mm256_set1_pd(1.0), x0), tiny);
        // SAFETY: as above
        unsafe { _mm256_storeu_pd(v.as_mut_ptr(), r) };
        for (l, v) in v.iter_mut().enumerate() {
            if (out_of_range >> l) & 1 != 0 {
                *v = libm::exp(*v);
            }
        }
    }

    /// XOR of blocks `0..blocks` of lanes 0..8's streams.
    #[target_feature(enable = "avx2")]
    pub(super) fn stream_blocks(rows: &[u32; 12], blocks: usize) -> u32 {
        let id = (
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_setzero_si256(),
        );
        let mut acc = _mm256_setzero_si256();
        for blk in 0..blocks {
            for w in block(rows, blk as u64, id) {
                acc = _mm256_xor_si256(acc, w);
            }
        }
        let mut v = [0u32; 8];
        // SAFETY: an 8-lane store into an 8-element array
        unsafe { _mm256_storeu_si256(v.as_mut_ptr() as *mut __m256i, acc) };
        v.iter().fold(0, |a, &b| a ^ b)
    }

    /// The eight-lane version of the AVX-512 main pass (`out[..8]`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn main_pass(
        key: &[u8; 32],
        n0: u64,
        c: &Coefs,
        scratch: &mut Scratch,
        out: &mut [f64; LANES],
    ) {
        scratch.rejected.clear();
        let d = c.a.len();
        let rows = rows(key);
        // stream ids n0 + lane as 64-bit (low, high) words with the carry
        let ids: [u64; 8] = std::array::from_fn(|l| n0.wrapping_add(l as u64));
        let id = (
            _mm256_setr_epi32(
                ids[0] as i32,
                ids[1] as i32,
                ids[2] as i32,
                ids[3] as i32,
                ids[4] as i32,
                ids[5] as i32,
                ids[6] as i32,
                ids[7] as i32,
            ),
            _mm256_setr_epi32(
                (ids[0] >> 32) as i32,
                (ids[1] >> 32) as i32,
                (ids[2] >> 32) as i32,
                (ids[3] >> 32) as i32,
                (ids[4] >> 32) as i32,
                (ids[5] >> 32) as i32,
                (ids[6] >> 32) as i32,
                (ids[7] >> 32) as i32,
            ),
        );
        let tx = zig_edges();
        let scale = _mm256_set1_ps(1.0 / (1u32 << 23) as f32);
        let one = _mm256_set1_ps(1.0);
        let low = _mm256_set1_epi32(0xff);
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut acc_lo = _mm256_setzero_pd();
        let mut acc_hi = _mm256_setzero_pd();
        let mut count = [0u32; 8];
        for blk in 0..d.div_ceil(16) {
            let x = block(&rows, blk as u64, id);
            for (i, &w) in x.iter().enumerate() {
                let k = 16 * blk + i;
                if k >= d {
                    break;
                }
                let idx = _mm256_and_si256(w, low);
                // SAFETY: indices ≤ 255 (+1) in the 257-entry table
                let (xi, xn) = unsafe {
                    (
                        _mm256_i32gather_ps::<4>(tx.as_ptr(), idx),
                        _mm256_i32gather_ps::<4>(tx.as_ptr().add(1), idx),
                    )
                };
                // (w >> 8) < 2^24 converts exactly through i32
                let u = _mm256_sub_ps(
                    _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32::<8>(w)), scale),
                    one,
                );
                let v = _mm256_mul_ps(u, xi);
                let ok = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(v, abs), xn);
                let vz = _mm256_and_ps(v, ok);
                let mut bad = !(_mm256_movemask_ps(ok) as u32) & 0xff;
                if bad != 0 {
                    let mut ws = [0u32; 8];
                    let mut vs = [0f32; 8];
                    // SAFETY: 8-lane stores into 8-element arrays
                    unsafe {
                        _mm256_storeu_si256(ws.as_mut_ptr() as *mut __m256i, w);
                        _mm256_storeu_ps(vs.as_mut_ptr(), v);
                    }
                    while bad != 0 {
                        let l = bad.trailing_zeros() as usize;
                        bad &= bad - 1;
                        count[l] += 1;
                        scratch
                            .rejected
                            .push((l as u8, k as u32, (ws[l] & 0xff) as u8, vs[l]));
                    }
                }
                let vl = _mm256_cvtps_pd(_mm256_castps256_ps128(vz));
                let vh = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(vz));
                let a = _mm256_set1_pd(c.a[k] as f64);
                match c.b {
                    None => {
                        acc_lo = _mm256_fmadd_pd(vl, a, acc_lo);
                        acc_hi = _mm256_fmadd_pd(vh, a, acc_hi);
                    }
                    Some(b) => {
                        let b = _mm256_set1_pd(b[k] as f64);
                        let t_lo = _mm256_fnmadd_pd(b, vl, a);
                        let t_hi = _mm256_fnmadd_pd(b, vh, a);
                        acc_lo = _mm256_fmadd_pd(vl, t_lo, acc_lo);
                        acc_hi = _mm256_fmadd_pd(vh, t_hi, acc_hi);
                    }
                }
            }
        }
        // SAFETY: two 4-lane stores into the first 8 of 16 outputs
        unsafe {
            _mm256_storeu_pd(out.as_mut_ptr(), acc_lo);
            _mm256_storeu_pd(out.as_mut_ptr().add(4), acc_hi);
        }
        let r = count.iter().copied().max().unwrap_or(0) as usize;
        scratch.extra.clear();
        if r == 0 {
            return;
        }
        let base = d / 16;
        let blocks = (d + extra_words(r)).div_ceil(16) - base;
        scratch.extra.resize(blocks * 128, 0);
        for j in 0..blocks {
            let x = block(&rows, (base + j) as u64, id);
            for (i, &w) in x.iter().enumerate() {
                // SAFETY: row 16 j + i of `blocks` × 16 rows of 8 words
                unsafe {
                    _mm256_storeu_si256(
                        scratch.extra.as_mut_ptr().add(128 * j + 8 * i) as *mut __m256i,
                        w,
                    )
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::pfr::candidate;

    /// Every available kernel scores exactly the candidates the decoder regenerates, at sizes
    /// around the block length, across a 32-bit stream-id boundary, and with chunks long
    /// enough that some lanes run out of the kernel's extra words (d = 16,384 with few
    /// coefficients rejected far more often: layer 255 always rejects).
    #[test]
    fn lanes_score_the_regenerated_candidates() {
        let kernels: Vec<Kernel> = [Kernel::Avx512, Kernel::Avx2]
            .into_iter()
            .filter(|k| k.available())
            .collect();
        if kernels.is_empty() {
            eprintln!("no lane kernel on this CPU: skipped");
            return;
        }
        let mut s = Stream::new(8, Purpose::Experiment, 0, 0, 0);
        let mut scratch = Scratch::default();
        for &d in &[1usize, 15, 16, 17, 64, 100, 1024, 4099] {
            let a: Vec<f32> = (0..d).map(|_| s.normal() as f32).collect();
            let b: Vec<f32> = (0..d).map(|_| (s.uniform_open() * 0.4) as f32).collect();
            for bb in [None, Some(&b[..])] {
                let c = Coefs { a: &a, b: bb };
                for n0 in [0u64, 48, (1u64 << 32) - 5, u64::MAX - 20] {
                    let mut u = vec![0f32; d];
                    let want: Vec<f64> = (0..LANES as u64)
                        .map(|l| {
                            candidate(2, 3, 4, n0.wrapping_add(l), &mut u);
                            (0..d)
                                .map(|k| {
                                    let x = u[k] as f64;
                                    x * (a[k] as f64 - bb.map_or(0.0, |b| b[k] as f64) * x)
                                })
                                .sum()
                        })
                        .collect();
                    for &kernel in &kernels {
                        let mut out = [0f64; LANES];
                        score(kernel, 2, 3, 4, n0, &c, &mut scratch, &mut out);
                        for l in 0..kernel.lanes() {
                            let (want, got) = (want[l], out[l]);
                            assert!(
                                (want - got).abs() <= 1e-9 * (1.0 + want.abs()),
                                "{kernel:?} d {d} n {}: {want} vs {got}",
                                n0.wrapping_add(l as u64)
                            );
                        }
                    }
                }
            }
        }
    }

    /// The batched wedge exponentials are libm's, bit for bit, over the wedge tests' range and
    /// at libm's branch points.
    #[test]
    fn wedge_exps_are_libms() {
        let mut s = Stream::new(12, Purpose::Experiment, 0, 0, 0);
        let mut rejected: Vec<Rejected> = (0..200_000)
            .map(|i| {
                let x = match i % 3 {
                    0 => 4.0 * s.uniform_open(),
                    1 => 1e-3 * s.uniform_open(),
                    _ => (s.normal() * 2.0).clamp(-40.0, 40.0),
                };
                (0, 0, 1, x as f32)
            })
            .collect();
        // x with -x²/2 at or near ±½ ln 2, 1.5 ln 2, 2^-28 and 0
        for v in [
            0.5f64 * std::f64::consts::LN_2,
            1.5 * std::f64::consts::LN_2,
            2f64.powi(-28),
        ] {
            let x = (2.0 * v).sqrt() as f32;
            for d in -3i32..=3 {
                rejected.push((0, 0, 1, f32::from_bits((x.to_bits() as i32 + d) as u32)));
            }
        }
        rejected.extend([0.0f32, -0.0, 1e-30, 38.0, -38.5].map(|x| (0, 0, 1, x)));
        let mut got = Vec::new();
        for kernel in [Some(Kernel::Avx512), Some(Kernel::Avx2), None] {
            if kernel.is_some_and(|k| !k.available()) {
                continue;
            }
            wedge_exps_with(kernel, &rejected, &mut got);
            for (r, g) in rejected.iter().zip(&got) {
                let x = r.3 as f64;
                let want = libm::exp(-0.5 * x * x);
                assert_eq!(
                    want.to_bits(),
                    g.to_bits(),
                    "{kernel:?} x {x}: {want} vs {g}"
                );
            }
        }
    }

    /// The words a lane hands to its fix-ups are its stream's words past d, including the
    /// hand-over to a fresh stream when the kernel's extra words run out.
    #[test]
    fn lane_words_continue_the_stream() {
        let extra: Vec<u32> = Vec::new();
        for d in [0usize, 5, 16, 1000] {
            let mut lw = LaneWords {
                extra: &extra,
                lanes: 16,
                lane: 3,
                base: d,
                end: d,
                pos: d,
                fallback: None,
                key: (1, 2, 3, 77),
            };
            let mut s = Stream::new(1, Purpose::PfrCandidate, 2, 3, 77);
            let mut skip = vec![0u32; d];
            s.fill_words(&mut skip);
            for _ in 0..40 {
                assert_eq!(Words::next_u64(&mut lw), Words::next_u64(&mut s));
            }
        }
    }
}
