//! Throughput of the PFR candidate scorers (reference vs fast), in candidate·dims per second.
use crate::channel::pfr::{Coefs, Scorer, select};
use crate::rng::{Purpose, Stream};
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

#[derive(Debug, Serialize)]
pub struct RccBench {
    pub threads: usize,
    pub results: Vec<ScorerBench>,
    /// fast / reference throughput, measured in this run.
    pub speedup: f64,
    pub identical_choices: bool,
    /// Normals per second on one thread: the f64 ziggurat (one per 64-bit draw) and the
    /// f32 candidate generator (two per draw), and their ratio, measured in this run.
    pub normals_per_second_f64: f64,
    pub normals_per_second_fast: f64,
    pub generator_speedup: f64,
}

pub fn run(chunk_dims: usize, log2k: u32, chunks: usize) -> RccBench {
    let mut s = Stream::new(0, Purpose::Experiment, 2, 0, 0);
    let ms: Vec<Vec<f32>> = (0..chunks)
        .map(|_| (0..chunk_dims).map(|_| (s.normal() * 0.3) as f32).collect())
        .collect();
    let k = (1u64 << log2k) - 1;
    let mut results = Vec::new();
    let mut picks = Vec::new();
    for (name, scorer) in [("reference", Scorer::Reference), ("fast", Scorer::Fast)] {
        let t = std::time::Instant::now();
        let p: Vec<u64> = ms
            .iter()
            .enumerate()
            .map(|(j, m)| select(scorer, 1, 0, j as u64, &Coefs { a: m, b: None }, k).0)
            .collect();
        let secs = t.elapsed().as_secs_f64();
        picks.push(p);
        results.push(ScorerBench {
            scorer: name,
            chunk_dims,
            candidates: k,
            chunks,
            seconds: secs,
            candidate_dims_per_second: (k as f64 * chunk_dims as f64 * chunks as f64) / secs,
        });
    }
    let (slow, fast) = generator_rates(1 << 24);
    RccBench {
        threads: rayon::current_num_threads(),
        normals_per_second_f64: slow,
        normals_per_second_fast: fast,
        generator_speedup: fast / slow,
        speedup: results[1].candidate_dims_per_second / results[0].candidate_dims_per_second,
        identical_choices: picks[0] == picks[1],
        results,
    }
}

/// (f64 ziggurat, fast f32 generator) normals per second over `n` draws each.
fn generator_rates(n: usize) -> (f64, f64) {
    let mut buf = vec![0f32; 4096];
    let mut sink = 0f32;
    let mut s = Stream::new(0, Purpose::Experiment, 3, 0, 0);
    let t = std::time::Instant::now();
    for _ in 0..n / buf.len() {
        s.fill_normal(&mut buf);
        sink += buf[7];
    }
    let slow = n as f64 / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    for _ in 0..n / buf.len() {
        s.fill_normal_fast(&mut buf);
        sink += buf[7];
    }
    let fast = n as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    (slow, fast)
}
