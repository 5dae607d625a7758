//! Throughput of PFR candidate search, measured in one run: the raw ChaCha8 stream, the
//! candidate normal generator, and the reference and fused scorers (candidate·dims per
//! second) at several chunk sizes, on 1 thread and on every thread. Each figure is also given
//! per second of CPU time the process used (`getrusage`), which stays meaningful when other
//! jobs share the machine; the load average is recorded before and after.
use crate::channel::lanes;
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
    /// CPU seconds the process used meanwhile (all threads), and the rate per CPU second.
    pub cpu_seconds: f64,
    pub candidate_dims_per_cpu_second: f64,
}

/// Everything measured on one thread count.
#[derive(Debug, Serialize)]
pub struct ThreadBench {
    pub threads: usize,
    /// The bare ChaCha8 stream (`fill_bytes`), all threads together.
    pub chacha8_bytes_per_second: f64,
    /// The lane kernel's own ChaCha8 blocks alone (bytes/s, all threads; 0 without one).
    pub lane_chacha8_bytes_per_second: f64,
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
    /// The CPU (model name and the SIMD features the kernels use).
    pub cpu: String,
    /// The fast scorer's kernel on this CPU.
    pub kernel: &'static str,
    /// /proc/loadavg's 1, 5 and 15 minute load averages before and after the run.
    pub load_average_before: Vec<f64>,
    pub load_average_after: Vec<f64>,
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
    let load_average_before = load_average();
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
                lane_chacha8_bytes_per_second: lane_chacha_rate(t, 1 << 28),
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
        cpu: cpu_name(),
        kernel: lanes::best().map_or("block64", |k| k.name()),
        load_average_before,
        load_average_after: load_average(),
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
    let (t, cpu) = (std::time::Instant::now(), cpu_time());
    let picks: Vec<u64> = ms
        .iter()
        .enumerate()
        .map(|(j, m)| select(scorer, 1, 0, j as u64, &Coefs { a: m, b: None }, k).0)
        .collect();
    let secs = t.elapsed().as_secs_f64();
    let cpu_seconds = cpu_time() - cpu;
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
        cpu_seconds,
        candidate_dims_per_cpu_second: (k as f64 * d as f64 * chunks as f64) / cpu_seconds,
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

/// Bytes per second of the lane kernel's ChaCha8 blocks on `threads` threads, `bytes` each.
fn lane_chacha_rate(threads: usize, bytes: usize) -> f64 {
    let Some(kernel) = lanes::best() else {
        return 0.0;
    };
    let blocks = bytes / (64 * kernel.lanes());
    let t = std::time::Instant::now();
    let sink: u32 = (0..threads as u64)
        .into_par_iter()
        .map(|j| lanes::stream_blocks(kernel, j, blocks))
        .reduce(|| 0, |a, b| a ^ b);
    std::hint::black_box(sink);
    (threads * blocks * 64 * kernel.lanes()) as f64 / t.elapsed().as_secs_f64()
}

/// CPU seconds used by this process so far (user + system, all threads).
/// NaN where the platform lacks `getrusage`.
pub(crate) fn cpu_time() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: getrusage fills the zeroed struct it is given
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(r.ru_utime) + tv(r.ru_stime)
    }
    #[cfg(not(unix))]
    {
        f64::NAN
    }
}

/// The 1, 5 and 15 minute load averages (empty where /proc/loadavg is absent).
pub(crate) fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            s.split_whitespace()
                .take(3)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The CPU's model name and the SIMD features the kernels look for.
pub(crate) fn cpu_name() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    #[allow(unused_mut)]
    let mut features: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, has) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ] {
            if has {
                features.push(name);
            }
        }
    }
    format!("{model} ({})", features.join(", "))
}
