//! PFR candidates sixteen at a time, on x86-64 CPUs with AVX-512F.
//!
//! Candidate n's normals come from its own ChaCha8 stream (stream id n, see
//! [`Stream::fill_normal_fast`]). Here the blocks of sixteen consecutive candidates' streams
//! run in the sixteen lanes of each register, so word k of all sixteen lands in one register:
//! the ziggurat's fast path and Σ a_k u_k − b_k u_k² then run across candidates with `a_k`
//! broadcast, without a transpose or a candidate buffer. Rejected draws are resolved
//! afterwards from each candidate's stream past its d words, as the plain generator does, so
//! the scored candidates are exactly the ones the decoder regenerates (tested against
//! [`crate::rng::Stream`] and the reference scorer).
use super::pfr::Coefs;
use crate::rng::{Purpose, Stream, stream_key, zig_edges};

/// Candidates scored per call.
pub const LANES: usize = 16;

/// Whether this CPU runs [`score16`].
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A rejected draw: (lane, dimension, ziggurat layer, abscissa).
pub type Rejected = (u8, u32, u8, f32);

/// Σ a u − b u² of candidates `n0..n0 + 16` of chunk `chunk` at `step`, into `out`.
/// Panics unless [`available`].
pub fn score16(
    seed: u64,
    step: u32,
    chunk: u64,
    n0: u64,
    c: &Coefs,
    scratch: &mut Vec<Rejected>,
    out: &mut [f64; LANES],
) {
    assert!(available(), "score16 needs AVX-512F");
    #[cfg(target_arch = "x86_64")]
    {
        let key = stream_key(seed, Purpose::PfrCandidate, step, chunk);
        // SAFETY: the CPU has AVX-512F (asserted above).
        unsafe { score16_avx512(&key, n0, c, scratch, out) };
        // the rare rejected draws, candidate by candidate in dimension order
        let d = c.a.len();
        scratch.sort_by_key(|r| (r.0, r.1));
        let mut i = 0;
        while i < scratch.len() {
            let lane = scratch[i].0;
            let mut s = Stream::new(seed, Purpose::PfrCandidate, step, chunk, n0 + lane as u64);
            s.seek_word(d as u128);
            while i < scratch.len() && scratch[i].0 == lane {
                let (_, k, layer, x) = scratch[i];
                let u = s.normal_slow(layer as usize, x as f64) as f64;
                let b = c.b.map_or(0.0, |b| b[k as usize] as f64);
                out[lane as usize] += u * (c.a[k as usize] as f64 - b * u);
                i += 1;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn score16_avx512(
    key: &[u8; 32],
    n0: u64,
    c: &Coefs,
    scratch: &mut Vec<Rejected>,
    out: &mut [f64; LANES],
) {
    use std::arch::x86_64::*;
    scratch.clear();
    let d = c.a.len();
    let word =
        |i: usize| u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]);
    // the state's rows: constants, key, block counter, stream id (rand_chacha's layout); the
    // constant rows stay scalars (broadcast operands), so the 16 working rows keep the registers
    let mut rows = [0u32; 12];
    rows[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for i in 0..8 {
        rows[4 + i] = word(i);
    }
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
    let tx = zig_edges();
    let scale = _mm512_set1_ps(1.0 / (1u32 << 23) as f32);
    let one = _mm512_set1_ps(1.0);
    let low = _mm512_set1_epi32(0xff);
    let mut acc_lo = _mm512_setzero_pd();
    let mut acc_hi = _mm512_setzero_pd();
    let blocks = d.div_ceil(16);
    for blk in 0..blocks {
        let (c_lo, c_hi) = (blk as u32, (blk as u64 >> 32) as u32);
        let mut x = [_mm512_setzero_si512(); 16];
        for i in 0..12 {
            x[i] = _mm512_set1_epi32(rows[i] as i32);
        }
        x[12] = _mm512_set1_epi32(c_lo as i32);
        x[13] = _mm512_set1_epi32(c_hi as i32);
        x[14] = id_lo;
        x[15] = id_hi;
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
        for i in 0..16 {
            let k = 16 * blk + i;
            if k >= d {
                break;
            }
            let w = _mm512_add_epi32(
                x[i],
                match i {
                    0..12 => _mm512_set1_epi32(rows[i] as i32),
                    12 => _mm512_set1_epi32(c_lo as i32),
                    13 => _mm512_set1_epi32(c_hi as i32),
                    14 => id_lo,
                    _ => id_hi,
                },
            );
            let idx = _mm512_and_si512(w, low);
            // SAFETY: indices ≤ 255 (+1) in the 257-entry table
            let (xi, xn) = unsafe {
                (
                    _mm512_i32gather_ps::<4>(idx, tx.as_ptr()),
                    _mm512_i32gather_ps::<4>(idx, tx.as_ptr().add(1)),
                )
            };
            // (w >> 8) < 2^24 converts exactly through i32
            let u = _mm512_sub_ps(
                _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<8>(w)), scale),
                one,
            );
            let v = _mm512_mul_ps(u, xi);
            let ok = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(v), xn);
            let v = _mm512_maskz_mov_ps(ok, v);
            let mut bad = !ok;
            if bad != 0 {
                let mut ws = [0u32; 16];
                let mut vs = [0f32; 16];
                // SAFETY: 16-lane stores into 16-element arrays
                unsafe {
                    _mm512_storeu_si512(ws.as_mut_ptr() as *mut __m512i, w);
                    _mm512_storeu_ps(vs.as_mut_ptr(), _mm512_mul_ps(u, xi));
                }
                while bad != 0 {
                    let l = bad.trailing_zeros() as usize;
                    bad &= bad - 1;
                    scratch.push((l as u8, k as u32, (ws[l] & 0xff) as u8, vs[l]));
                }
            }
            let vl = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            let vh = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(v),
            )));
            let a = _mm512_set1_pd(c.a[k] as f64);
            match c.b {
                None => {
                    acc_lo = _mm512_add_pd(acc_lo, _mm512_mul_pd(vl, a));
                    acc_hi = _mm512_add_pd(acc_hi, _mm512_mul_pd(vh, a));
                }
                Some(b) => {
                    let b = _mm512_set1_pd(b[k] as f64);
                    let t_lo = _mm512_sub_pd(a, _mm512_mul_pd(b, vl));
                    let t_hi = _mm512_sub_pd(a, _mm512_mul_pd(b, vh));
                    acc_lo = _mm512_add_pd(acc_lo, _mm512_mul_pd(vl, t_lo));
                    acc_hi = _mm512_add_pd(acc_hi, _mm512_mul_pd(vh, t_hi));
                }
            }
        }
    }
    // SAFETY: two 8-lane stores into the 16-element output
    unsafe {
        _mm512_storeu_pd(out.as_mut_ptr(), acc_lo);
        _mm512_storeu_pd(out.as_mut_ptr().add(8), acc_hi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::pfr::candidate;

    /// Sixteen lanes score exactly the candidates the decoder regenerates, at sizes around
    /// the block length and across a 32-bit stream-id boundary.
    #[test]
    fn lanes_score_the_regenerated_candidates() {
        if !available() {
            eprintln!("no AVX-512F: skipped");
            return;
        }
        let mut s = Stream::new(8, Purpose::Experiment, 0, 0, 0);
        let mut scratch = Vec::new();
        for &d in &[1usize, 15, 16, 17, 64, 100, 1024] {
            let a: Vec<f32> = (0..d).map(|_| s.normal() as f32).collect();
            let b: Vec<f32> = (0..d).map(|_| (s.uniform_open() * 0.4) as f32).collect();
            for bb in [None, Some(&b[..])] {
                let c = Coefs { a: &a, b: bb };
                for n0 in [0u64, 48, (1u64 << 32) - 5] {
                    let mut out = [0f64; LANES];
                    score16(2, 3, 4, n0, &c, &mut scratch, &mut out);
                    let mut u = vec![0f32; d];
                    for (l, &got) in out.iter().enumerate() {
                        candidate(2, 3, 4, n0 + l as u64, &mut u);
                        let want: f64 = (0..d)
                            .map(|k| {
                                let x = u[k] as f64;
                                x * (a[k] as f64 - bb.map_or(0.0, |b| b[k] as f64) * x)
                            })
                            .sum();
                        assert!(
                            (want - got).abs() <= 1e-9 * (1.0 + want.abs()),
                            "d {d} n {}: {want} vs {got}",
                            n0 + l as u64
                        );
                    }
                }
            }
        }
    }
}
