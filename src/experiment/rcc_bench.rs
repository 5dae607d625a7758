//! Throughput of PFR candidate search, measured in one run: the raw ChaCha8 stream, the
//! candidate normal generator, and the reference and fused scorers (candidate·dims per
//! second) at several chunk sizes, on 1 thread and on every thread.
use crate::channel::pfr::{Coefs, Scorer, select};
use crate::rng::{NormalSink, Purpose, Stream};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ScorerBench {
    pub scorer: &'static str,
    pub chunk_dims: usize,
    pub candidates: u64,
    pub chunks: usize,
    pub seconds: f64,
    pub candidate_dims_per_second: f64,
}

/// Everything measured on one thread count.
#[derive(Debug, Serialize)]
pub struct ThreadBench {
    pub threads: usize,
    /// The bare ChaCha8 stream (`fill_bytes`), all threads together.
    pub chacha8_bytes_per_second: f64,
    /// Candidate normals per second: the plain generator and the fused block generator.
    pub normals_per_second_plain: f64,
    pub normals_per_second_fused: f64,
    /// The fused generator's random words alone: a fresh stream per 1,024-dim candidate.
    pub candidate_words_per_second: f64,
    pub scorers: Vec<ScorerBench>,
    /// fast / reference candidate·dims per second, per chunk size (same order as `chunk_dims`).
    pub fast_over_reference: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct RccBench {
    pub chunk_dims: Vec<usize>,
    pub runs: Vec<ThreadBench>,
    /// Both scorers chose the same candidate in every chunk of every run.
    pub identical_choices: bool,
    /// Fused scorer's candidate·dims/s ÷ (ChaCha8 32-bit words/s) at the largest thread
    /// count and each chunk size: 1.0 would be one normal scored per random word at the
    /// stream's own speed.
    pub fast_over_stream_words: Vec<f64>,
}

/// Runs the bench with about `work` candidate·dims per scorer and chunk size.
pub fn run(chunk_dims: &[usize], work: u64) -> anyhow::Result<RccBench> {
    let all = rayon::current_num_threads();
    let mut threads = vec![1];
    if all > 1 {
        threads.push(all);
    }
    let mut identical = true;
    let mut runs = Vec::new();
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
        let run = pool.install(|| {
            let (plain, fused, words) = generator_rates(t, 1 << 24);
            let mut scorers = Vec::new();
            let mut ratio = Vec::new();
            for &d in chunk_dims {
                let (r, rp) = scorer_bench(Scorer::Reference, d, work);
                let (f, fp) = scorer_bench(Scorer::Fast, d, work);
                identical &= rp == fp;
                ratio.push(f.candidate_dims_per_second / r.candidate_dims_per_second);
                scorers.push(r);
                scorers.push(f);
            }
            ThreadBench {
                threads: t,
                chacha8_bytes_per_second: chacha_rate(t, 1 << 28),
                normals_per_second_plain: plain,
                normals_per_second_fused: fused,
                candidate_words_per_second: words,
                scorers,
                fast_over_reference: ratio,
            }
        });
        runs.push(run);
    }
    let last = runs.last().expect("one run at least");
    let words = last.chacha8_bytes_per_second / 4.0;
    let fast_over_stream_words = last
        .scorers
        .iter()
        .filter(|s| s.scorer == "fast")
        .map(|s| s.candidate_dims_per_second / words)
        .collect();
    Ok(RccBench {
        chunk_dims: chunk_dims.to_vec(),
        runs,
        identical_choices: identical,
        fast_over_stream_words,
    })
}

/// One scorer on chunks of `d` dims, K chosen so chunks·K·d ≈ `work`: (result, winners).
fn scorer_bench(scorer: Scorer, d: usize, work: u64) -> (ScorerBench, Vec<u64>) {
    let chunks = if d <= 1024 { 8 } else { 2 };
    let k = (work / (chunks as u64 * d as u64)).max(1);
    let mut s = Stream::new(0, Purpose::Experiment, 2, d as u64, 0);
    let ms: Vec<Vec<f32>> = (0..chunks)
        .map(|_| (0..d).map(|_| (s.normal() * 0.3) as f32).collect())
        .collect();
    let t = std::time::Instant::now();
    let picks: Vec<u64> = ms
        .iter()
        .enumerate()
        .map(|(j, m)| select(scorer, 1, 0, j as u64, &Coefs { a: m, b: None }, k).0)
        .collect();
    let secs = t.elapsed().as_secs_f64();
    let name = match scorer {
        Scorer::Reference => "reference",
        Scorer::Fast => "fast",
    };
    let bench = ScorerBench {
        scorer: name,
        chunk_dims: d,
        candidates: k,
        chunks,
        seconds: secs,
        candidate_dims_per_second: (k as f64 * d as f64 * chunks as f64) / secs,
    };
    (bench, picks)
}

/// Bytes per second of `threads` bare ChaCha8 streams filling `bytes` bytes each.
fn chacha_rate(threads: usize, bytes: usize) -> f64 {
    let t = std::time::Instant::now();
    let sink: u64 = (0..threads as u64)
        .into_par_iter()
        .map(|j| {
            let mut s = Stream::new(0, Purpose::Experiment, 4, j, 0);
            let mut buf = vec![0u32; 1 << 14];
            let mut x = 0u64;
            for _ in 0..bytes / (4 << 14) {
                s.fill_words(&mut buf);
                x ^= buf[3] as u64;
            }
            x
        })
        .sum();
    std::hint::black_box(sink);
    (threads * bytes) as f64 / t.elapsed().as_secs_f64()
}

/// Sums what it is given (keeps the fused generator's output alive).
struct SumSink(f32);
impl NormalSink for SumSink {
    fn block(&mut self, _off: usize, xs: &[f32]) {
        self.0 += xs[0];
    }
    fn fix(&mut self, _i: usize, x: f32) {
        self.0 += x;
    }
}

/// (plain, fused, words only) candidate normals per second over `threads` × `n` draws, in
/// candidate-sized pieces of 1,024 (each from its own stream, as in the search).
fn generator_rates(threads: usize, n: usize) -> (f64, f64, f64) {
    const D: usize = 1024;
    let per = |mode: u8| {
        let t = std::time::Instant::now();
        let sink: f32 = (0..threads as u64)
            .into_par_iter()
            .map(|j| {
                let (mut buf, mut scratch, mut sum) = (vec![0f32; D], Vec::new(), SumSink(0.0));
                let mut words = vec![0u32; D];
                for c in 0..(n / D) as u64 {
                    let mut s = Stream::new(0, Purpose::Experiment, 3, j, c);
                    match mode {
                        0 => {
                            s.fill_normal_fast(&mut buf);
                            sum.0 += buf[7];
                        }
                        1 => s.candidate_normals(D, &mut sum, &mut scratch),
                        _ => {
                            s.fill_words(&mut words);
                            sum.0 += words[7] as f32;
                        }
                    }
                }
                sum.0
            })
            .sum();
        std::hint::black_box(sink);
        (threads * n) as f64 / t.elapsed().as_secs_f64()
    };
    (per(0), per(1), per(2))
}
