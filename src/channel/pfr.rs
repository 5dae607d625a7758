//! Gaussian channel simulation by the truncated Poisson functional representation (PFR)
//! on chunks.
//!
//! A step's dimensions are split (by a shared random permutation) into chunks carrying at
//! most `chunk_kl` bits each. Candidates u_n ~ N(0, I) (stream `(step, chunk, n)`) stand for
//! z = μ_p + σ_p u. With m = (μ_q − μ_p)/σ_q and ρ = σ_p/σ_q per dimension,
//! `log q/p(z) = Σ ρ m u − ½(ρ² − 1) u² + const`, so with arrival times
//! T_n = E_1 + … + E_n the winner is `N* = argmin_n ln T_n − Σ (a u_n − b u_n²)`,
//! a = ρm, b = ½(ρ² − 1) (b = 0 for the equal-variance proposal: a dot product),
//! over n < K = 2^(⌈chunk KL⌉ + padding) − 1; N* is range-coded under a Zipf prior. The
//! decoder regenerates u_{N*} and returns μ_p + σ_p u.
//!
//! Two scorers choose identical winners: [`Scorer::Reference`] (a plain loop over
//! materialised candidates, f64 in index order) and [`Scorer::Fast`] (rayon over chunks and
//! candidate blocks; each candidate's normals generated and scored in one fused pass, a
//! block of 64 at a time, see [`Stream::candidate_normals`], or sixteen candidates at once
//! in AVX-512 lanes where the CPU has them, see [`lanes`]).
use super::{Proposal, StepChannel, StepCtx, lanes, offsets_and_kl};
use crate::entropy::{Reader, Writer, ZipfIndex};
use crate::error::{Error, FormatError};
use crate::rng::{NormalSink, Purpose, Stream};
use rayon::prelude::*;

/// PFR settings shared by encoder and decoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PfrParams {
    /// Most KL (bits) a chunk may carry.
    pub chunk_kl: f64,
    /// Extra bits of candidates beyond the chunk KL (costs time, not rate).
    pub padding: u32,
    /// Hard cap on log2 of the candidate count.
    pub max_log2k: u32,
}

impl Default for PfrParams {
    fn default() -> Self {
        PfrParams {
            chunk_kl: 8.0,
            padding: 4,
            max_log2k: 20,
        }
    }
}

/// Which candidate scorer the encoder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scorer {
    Reference,
    #[default]
    Fast,
}

/// How a step's dimensions are split into chunks (identical on both sides).
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkPlan {
    /// Dimension indices, chunk after chunk.
    pub perm: Vec<u32>,
    /// Chunk j is `perm[bounds[j]..bounds[j+1]]`; every chunk is non-empty.
    pub bounds: Vec<usize>,
    /// Nominal KL per chunk (bits) and the resulting candidate count exponent.
    pub chunk_kl: f64,
    pub log2k: u32,
}

/// Fixed-point scale of [`expected_kl_weights`].
const WEIGHT_ONE: f64 = (1u64 << 20) as f64;

/// Integer weights ∝ each dimension's expected KL under the proposal, `ln ρ` nats (the
/// mean over x ~ p(x|z_t) of the KL in [`super::step_kl`]), for balancing chunks; None for an
/// equal-variance proposal, whose dimensions look alike to the decoder.
pub fn expected_kl_weights(p: &Proposal, sigma: f64) -> Option<Vec<u64>> {
    p.sd?;
    Some(
        (0..p.mu.len())
            .map(|i| (libm::log(p.ratio(i, sigma).max(1.0)) * WEIGHT_ONE).round() as u64 + 1)
            .collect(),
    )
}

impl ChunkPlan {
    /// The plan for a step of `kl_bits` over `dims` dimensions. With `weights`, the shared
    /// permutation is cut where the running weight crosses j/n of the total, so every chunk
    /// expects the same KL (else into equal numbers of dimensions).
    pub fn new(
        p: &PfrParams,
        seed: u64,
        step: u32,
        dims: usize,
        kl_bits: f64,
        weights: Option<&[u64]>,
    ) -> Self {
        assert!(dims > 0);
        let budget = p
            .chunk_kl
            .min((p.max_log2k.saturating_sub(p.padding)).max(1) as f64)
            .max(0.5);
        let n = ((kl_bits / budget).ceil() as usize).clamp(1, dims);
        let chunk_kl = kl_bits / n as f64;
        let log2k = (chunk_kl.ceil() as u32 + p.padding).clamp(1, p.max_log2k);
        let perm = Stream::new(seed, Purpose::ChunkPartition, step, 0, 0).permutation(dims);
        let bounds = match weights {
            None => (0..=n).map(|j| j * dims / n).collect(),
            Some(w) => balanced_bounds(&perm, w, n),
        };
        ChunkPlan {
            perm,
            bounds,
            chunk_kl,
            log2k,
        }
    }
    pub fn chunks(&self) -> usize {
        self.bounds.len() - 1
    }
    pub fn chunk(&self, j: usize) -> &[u32] {
        &self.perm[self.bounds[j]..self.bounds[j + 1]]
    }
    pub fn zipf(&self) -> ZipfIndex {
        ZipfIndex::new(self.log2k, ZipfIndex::exponent_for(self.chunk_kl))
    }
}

/// Cuts `perm` into `n` non-empty runs of about equal total weight (integer arithmetic).
fn balanced_bounds(perm: &[u32], w: &[u64], n: usize) -> Vec<usize> {
    let dims = perm.len();
    let total: u128 = perm.iter().map(|&i| w[i as usize] as u128).sum();
    let mut bounds = vec![0usize; n + 1];
    bounds[n] = dims;
    let (mut pos, mut cum) = (0usize, 0u128);
    for j in 1..n {
        let target = total * j as u128 / n as u128;
        while pos < dims && cum + (w[perm[pos] as usize] as u128) <= target {
            cum += w[perm[pos] as usize] as u128;
            pos += 1;
        }
        // keep every chunk non-empty: at least one dim behind, enough left for the rest
        let b = pos.max(bounds[j - 1] + 1).min(dims - (n - j));
        while pos < b {
            cum += w[perm[pos] as usize] as u128;
            pos += 1;
        }
        bounds[j] = b;
    }
    bounds
}

/// Candidate `n` of chunk `chunk` at `step`: `d` standard normals.
pub fn candidate(seed: u64, step: u32, chunk: u64, n: u64, out: &mut [f32]) {
    Stream::new(seed, Purpose::PfrCandidate, step, chunk, n).fill_normal_fast(out);
}

/// A chunk's log-ratio coefficients: log q/p(u) = Σ a u − b u² + const.
#[derive(Clone, Copy, Debug)]
pub struct Coefs<'a> {
    pub a: &'a [f32],
    /// None: equal variances (b = 0).
    pub b: Option<&'a [f32]>,
}

/// Σ a u_n − b u_n² in a fixed order (f64 accumulation), the one kernel both scorers share.
#[inline]
fn candidate_score(seed: u64, step: u32, chunk: u64, n: u64, c: &Coefs, buf: &mut [f32]) -> f64 {
    candidate(seed, step, chunk, n, buf);
    let mut acc = 0.0f64;
    match c.b {
        None => {
            for (&u, &a) in buf.iter().zip(c.a) {
                acc += u as f64 * a as f64;
            }
        }
        Some(b) => {
            for ((&u, &a), &b) in buf.iter().zip(c.a).zip(b) {
                let u = u as f64;
                acc += u * (a as f64 - b as f64 * u);
            }
        }
    }
    acc
}

/// ln T_n for n < k (arrival times of the chunk's Poisson process).
fn log_arrivals(seed: u64, step: u32, chunk: u64, k: u64) -> Vec<f64> {
    let mut s = Stream::new(seed, Purpose::PfrArrival, step, chunk, 0);
    let mut t = 0.0;
    (0..k)
        .map(|_| {
            t += s.exponential();
            libm::log(t)
        })
        .collect()
}

/// Lanes of the fused scorer's accumulator.
const LANES: usize = 8;

/// Σ a u − b u² accumulated while the candidate's normals are generated (f64 lanes; exact
/// products of f32s, so it differs from [`candidate_score`] only in summation order).
struct FusedScore<'a> {
    c: &'a Coefs<'a>,
    acc: [f64; LANES],
}

impl NormalSink for FusedScore<'_> {
    #[inline(always)]
    fn block(&mut self, off: usize, xs: &[f32]) {
        let a = &self.c.a[off..off + xs.len()];
        let mut acc = [0f64; LANES];
        match self.c.b {
            None => {
                let (xc, ac) = (xs.chunks_exact(LANES), a.chunks_exact(LANES));
                let (xr, ar) = (xc.remainder(), ac.remainder());
                for (x, a) in xc.zip(ac) {
                    for l in 0..LANES {
                        acc[l] += x[l] as f64 * a[l] as f64;
                    }
                }
                for (l, (&x, &a)) in xr.iter().zip(ar).enumerate() {
                    acc[l] += x as f64 * a as f64;
                }
            }
            Some(b) => {
                let b = &b[off..off + xs.len()];
                for (k, ((&x, &a), &b)) in xs.iter().zip(a).zip(b).enumerate() {
                    let u = x as f64;
                    acc[k % LANES] += u * (a as f64 - b as f64 * u);
                }
            }
        }
        for (s, a) in self.acc.iter_mut().zip(acc) {
            *s += a;
        }
    }
    #[inline]
    fn fix(&mut self, i: usize, x: f32) {
        let u = x as f64;
        let b = self.c.b.map_or(0.0, |b| b[i] as f64);
        self.acc[0] += u * (self.c.a[i] as f64 - b * u);
    }
}

/// The fused scorer's Σ a u_n − b u_n² for candidate n.
#[inline]
fn fused_score(
    seed: u64,
    step: u32,
    chunk: u64,
    n: u64,
    c: &Coefs,
    scratch: &mut Vec<(u32, u8, f32)>,
) -> f64 {
    let mut sink = FusedScore {
        c,
        acc: [0.0; LANES],
    };
    Stream::new(seed, Purpose::PfrCandidate, step, chunk, n).candidate_normals(
        c.a.len(),
        &mut sink,
        scratch,
    );
    sink.acc.iter().sum()
}

/// The PFR winner among the first `k` candidates of one chunk: (index, score).
pub fn select(scorer: Scorer, seed: u64, step: u32, chunk: u64, c: &Coefs, k: u64) -> (u64, f64) {
    let lt = log_arrivals(seed, step, chunk, k);
    match scorer {
        Scorer::Reference => {
            let mut buf = vec![0f32; c.a.len()];
            let mut best = (0u64, f64::INFINITY);
            for n in 0..k {
                let s = lt[n as usize] - candidate_score(seed, step, chunk, n, c, &mut buf);
                if s < best.1 {
                    best = (n, s);
                }
            }
            best
        }
        Scorer::Fast => select_fast(lanes::best(), seed, step, chunk, c, k, &lt),
    }
}

/// The fast scorer with lane kernel `kernel` (None: the 64-word block generator).
fn select_fast(
    kernel: Option<lanes::Kernel>,
    seed: u64,
    step: u32,
    chunk: u64,
    c: &Coefs,
    k: u64,
    lt: &[f64],
) -> (u64, f64) {
    const BLOCK: u64 = 256;
    let blocks = k.div_ceil(BLOCK);
    (0..blocks)
        .into_par_iter()
        .map_init(
            || (Vec::new(), lanes::Scratch::default()),
            |(scratch, wide_scratch), b| {
                let mut best = (u64::MAX, f64::INFINITY);
                let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(k));
                if let Some(kernel) = kernel {
                    let mut out = [0f64; lanes::LANES];
                    for n0 in (start..end).step_by(kernel.lanes()) {
                        lanes::score(kernel, seed, step, chunk, n0, c, wide_scratch, &mut out);
                        for (l, &sc) in out[..kernel.lanes()].iter().enumerate() {
                            let n = n0 + l as u64;
                            if n < end && lt[n as usize] - sc < best.1 {
                                best = (n, lt[n as usize] - sc);
                            }
                        }
                    }
                    return best;
                }
                for n in start..end {
                    let s = lt[n as usize] - fused_score(seed, step, chunk, n, c, scratch);
                    if s < best.1 {
                        best = (n, s);
                    }
                }
                best
            },
        )
        .reduce(
            || (u64::MAX, f64::INFINITY),
            |a, b| {
                if b.1 < a.1 || (b.1 == a.1 && b.0 < a.0) {
                    b
                } else {
                    a
                }
            },
        )
}

/// Per-step statistics of the PFR encoder.
#[derive(Clone, Copy, Debug, Default)]
pub struct PfrStats {
    pub chunks: usize,
    /// Chunks whose winner among 8K candidates lies beyond K (only when diagnosing).
    pub truncated: usize,
    pub candidates_times_dims: u128,
}

/// The PFR channel.
#[derive(Clone, Debug, Default)]
pub struct Pfr {
    pub params: PfrParams,
    pub scorer: Scorer,
    /// Also score candidates K..8K to count truncated chunks (experiments only: 8× slower).
    pub diagnose: bool,
    pub stats: std::sync::Arc<std::sync::Mutex<PfrStats>>,
}

impl Pfr {
    pub fn new(params: PfrParams) -> Self {
        Pfr {
            params,
            ..Default::default()
        }
    }

    /// The step's chunk plan, from what both sides know.
    fn plan(&self, ctx: &StepCtx, p: &Proposal) -> ChunkPlan {
        let weights = expected_kl_weights(p, ctx.sigma);
        ChunkPlan::new(
            &self.params,
            ctx.seed,
            ctx.step,
            p.mu.len(),
            ctx.kl_bits,
            weights.as_deref(),
        )
    }
}

impl StepChannel for Pfr {
    fn encode(
        &self,
        ctx: &StepCtx,
        p: &Proposal,
        mu_q: &[f32],
        w: &mut Writer,
    ) -> Result<Vec<f32>, Error> {
        let (a, b) = coefficients(p, mu_q, ctx.sigma);
        let plan = self.plan(ctx, p);
        let zipf = plan.zipf();
        let k = zipf.k();
        let pick = |j: usize, scorer: Scorer| {
            let gather =
                |v: &[f32]| -> Vec<f32> { plan.chunk(j).iter().map(|&i| v[i as usize]).collect() };
            let (aj, bj) = (gather(&a), b.as_deref().map(gather));
            let c = Coefs {
                a: &aj,
                b: bj.as_deref(),
            };
            let (n, s) = select(scorer, ctx.seed, ctx.step, j as u64, &c, k);
            let trunc = self.diagnose && {
                let (n8, s8) = select(scorer, ctx.seed, ctx.step, j as u64, &c, 8 * k);
                s8 < s && n8 >= k
            };
            (n, trunc)
        };
        let picks: Vec<(u64, bool)> = match self.scorer {
            Scorer::Reference => (0..plan.chunks())
                .map(|j| pick(j, Scorer::Reference))
                .collect(),
            Scorer::Fast => (0..plan.chunks())
                .into_par_iter()
                .map(|j| pick(j, Scorer::Fast))
                .collect(),
        };
        let mut z = vec![0f32; a.len()];
        for (j, &(n, _)) in picks.iter().enumerate() {
            w.index(n, &zipf)?;
            write_candidate(ctx, &plan, j, n, p, &mut z);
        }
        let mut st = self.stats.lock().unwrap();
        st.chunks += plan.chunks();
        st.truncated += picks.iter().filter(|p| p.1).count();
        st.candidates_times_dims += k as u128 * a.len() as u128;
        Ok(z)
    }

    fn decode(&self, ctx: &StepCtx, p: &Proposal, r: &mut Reader) -> Result<Vec<f32>, FormatError> {
        let plan = self.plan(ctx, p);
        let zipf = plan.zipf();
        let mut z = vec![0f32; p.mu.len()];
        for j in 0..plan.chunks() {
            let n = r.index(&zipf)?;
            if n >= zipf.k() {
                return Err(FormatError::corrupt(
                    "payload",
                    "candidate index out of range",
                ));
            }
            write_candidate(ctx, &plan, j, n, p, &mut z);
        }
        Ok(z)
    }
}

/// Reads one step's candidate indices from `r` and writes them unchanged to `w`, with the
/// chunk plan of the equal-variance proposal (it depends only on the step's KL code, `dims`
/// and the seeded permutation, not on the model): how a file is truncated without its model.
pub fn transcode(
    params: &PfrParams,
    ctx: &StepCtx,
    dims: usize,
    r: &mut Reader,
    w: &mut Writer,
) -> Result<(), Error> {
    let plan = ChunkPlan::new(params, ctx.seed, ctx.step, dims, ctx.kl_bits, None);
    let zipf = plan.zipf();
    for _ in 0..plan.chunks() {
        let n = r.index(&zipf)?;
        if n >= zipf.k() {
            return Err(FormatError::corrupt("payload", "candidate index out of range").into());
        }
        w.index(n, &zipf)?;
    }
    Ok(())
}

/// The step's coefficients (a, b) over all dimensions (b: None for equal variances).
fn coefficients(p: &Proposal, mu_q: &[f32], sigma: f64) -> (Vec<f32>, Option<Vec<f32>>) {
    let (m, _) = offsets_and_kl(p.mu, mu_q, sigma);
    if p.sd.is_none() {
        return (m, None);
    }
    let rho: Vec<f64> = (0..m.len()).map(|i| p.ratio(i, sigma)).collect();
    let a = m
        .iter()
        .zip(&rho)
        .map(|(&m, &r)| (r * m as f64) as f32)
        .collect();
    let b = rho.iter().map(|&r| (0.5 * (r * r - 1.0)) as f32).collect();
    (a, Some(b))
}

/// z[i] = μ_p[i] + σ_p[i] u_n[i] over chunk j.
fn write_candidate(ctx: &StepCtx, plan: &ChunkPlan, j: usize, n: u64, p: &Proposal, z: &mut [f32]) {
    let idx = plan.chunk(j);
    let mut u = vec![0f32; idx.len()];
    candidate(ctx.seed, ctx.step, j as u64, n, &mut u);
    for (&i, &u) in idx.iter().zip(&u) {
        z[i as usize] = p.point(i as usize, ctx.sigma, u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_plans_cover_every_dim_once_and_no_chunk_is_empty() {
        let p = PfrParams::default();
        for &(dims, kl) in &[
            (1usize, 50.0),
            (7, 1e6),
            (1000, 0.01),
            (1000, 123.4),
            (4097, 9999.0),
        ] {
            // equal runs, and runs balanced by weights that include one dominant dimension
            let w: Vec<u64> = (0..dims as u64).map(|i| 1 + (i % 5) * 1000).collect();
            let mut heavy = w.clone();
            heavy[dims / 2] = 1 << 40;
            for weights in [None, Some(&w[..]), Some(&heavy[..])] {
                let plan = ChunkPlan::new(&p, 5, 2, dims, kl, weights);
                assert!(plan.chunks() >= 1 && plan.chunks() <= dims);
                assert!((0..plan.chunks()).all(|j| !plan.chunk(j).is_empty()));
                assert_eq!(*plan.bounds.last().unwrap(), dims);
                let mut all = plan.perm.clone();
                all.sort();
                assert_eq!(all, (0..dims as u32).collect::<Vec<_>>());
                assert!(plan.log2k <= p.max_log2k);
            }
        }
    }

    #[test]
    fn reference_and_fast_scorers_agree() {
        let mut s = Stream::new(9, Purpose::Experiment, 0, 0, 0);
        for trial in 0..8u64 {
            let d = [1usize, 3, 17, 64, 200, 5, 65, 1024][trial as usize];
            let m: Vec<f32> = (0..d).map(|_| (s.normal() * 0.8) as f32).collect();
            let b: Vec<f32> = (0..d).map(|_| (s.uniform_open() * 0.5) as f32).collect();
            let k = [1u64, 255, 1000, 4095, 513, 70000, 3000, 600][trial as usize];
            for b in [None, Some(&b[..])] {
                let c = Coefs { a: &m, b };
                let r = select(Scorer::Reference, 1, 2, trial, &c, k);
                let lt = log_arrivals(1, 2, trial, k);
                // every kernel this CPU has (AVX-512 16 lanes, AVX2 8 lanes, 64-word blocks)
                for kernel in [Some(lanes::Kernel::Avx512), Some(lanes::Kernel::Avx2), None] {
                    if kernel.is_some_and(|k| !k.available()) {
                        continue;
                    }
                    let f = select_fast(kernel, 1, 2, trial, &c, k, &lt);
                    assert_eq!(r.0, f.0, "{kernel:?} d {d} k {k}");
                    // the same candidates: scores differ only by summation order
                    assert!((r.1 - f.1).abs() <= 1e-9 * (1.0 + r.1.abs()), "{r:?} {f:?}");
                }
            }
        }
    }

    /// The fused scorer scores exactly the candidate the decoder regenerates.
    #[test]
    fn fused_scores_are_the_materialised_candidates_scores() {
        let mut s = Stream::new(4, Purpose::Experiment, 0, 0, 0);
        for &d in &[1usize, 63, 64, 65, 129, 1000] {
            let a: Vec<f32> = (0..d).map(|_| s.normal() as f32).collect();
            let c = Coefs { a: &a, b: None };
            let mut buf = vec![0f32; d];
            let mut scratch = Vec::new();
            for n in [0u64, 7, 1 << 33] {
                let r = candidate_score(3, 1, 2, n, &c, &mut buf);
                let f = fused_score(3, 1, 2, n, &c, &mut scratch);
                assert!((r - f).abs() <= 1e-9 * (1.0 + r.abs()), "d {d}: {r} {f}");
            }
        }
    }

    /// Balanced runs carry about equal weight (within one dimension's weight).
    #[test]
    fn balanced_chunks_carry_equal_weight() {
        let dims = 3000;
        let w: Vec<u64> = (0..dims as u64).map(|i| 1 + (i * i) % 997).collect();
        let plan = ChunkPlan::new(&PfrParams::default(), 1, 0, dims, 400.0, Some(&w));
        let sums: Vec<u64> = (0..plan.chunks())
            .map(|j| plan.chunk(j).iter().map(|&i| w[i as usize]).sum())
            .collect();
        let mean = sums.iter().sum::<u64>() as f64 / sums.len() as f64;
        assert!(sums.len() == 50);
        assert!(
            sums.iter().all(|&s| (s as f64 - mean).abs() <= 997.0 + 1.0),
            "{sums:?}"
        );
    }

    /// Candidates at 64-bit indices are distinct and regenerable (the anchor used 32-bit offsets).
    #[test]
    fn candidates_beyond_u32_are_distinct() {
        let (mut a, mut b, mut c) = (vec![0f32; 4], vec![0f32; 4], vec![0f32; 4]);
        candidate(1, 1, 1, 5, &mut a);
        candidate(1, 1, 1, 5 + (1u64 << 32), &mut b);
        candidate(1, 1, 1, 5 + (1u64 << 32), &mut c);
        assert_ne!(a, b);
        assert_eq!(b, c);
    }
}
