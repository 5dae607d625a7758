//! PFR samples must follow q = N(μ_q, σ²): checked over many seeds with a test that
//! rejects a biased sampler (the negative control below proves it can fail).
use diffc::channel::pfr::{Pfr, PfrParams};
use diffc::channel::{Proposal, StepChannel, StepCtx, code_to_kl, kl_to_code, step_kl};
use diffc::entropy::{Reader, Writer};

/// Largest |z-score| of the per-dimension mean and variance of (z − μ_q)/σ over seeds, with
/// the proposal N(μ_p, sd²) (`sd`: None for σ in every dimension).
fn worst_z(params: PfrParams, seeds: u64, sd: Option<&[f32]>) -> f64 {
    let mu_p = [0.1f32, -0.2, 0.0, 0.3];
    let mu_q = [0.34f32, -0.36, 0.1, 0.54];
    let sigma = 0.2;
    let p = Proposal { mu: &mu_p, sd };
    let kl = step_kl(&p, &mu_q, sigma);
    let pfr = Pfr::new(params);
    let d = mu_p.len();
    let (mut s1, mut s2) = (vec![0.0f64; d], vec![0.0f64; d]);
    for seed in 0..seeds {
        let ctx = StepCtx {
            seed,
            step: 0,
            sigma,
            kl_bits: code_to_kl(kl_to_code(kl)),
        };
        let mut w = Writer::new();
        let z = pfr.encode(&ctx, &p, &mu_q, &mut w).unwrap();
        let z2 = pfr
            .decode(&ctx, &p, &mut Reader::new(&w.finish()).unwrap())
            .unwrap();
        assert_eq!(z, z2, "decoder regenerated a different sample");
        for i in 0..d {
            let e = (z[i] as f64 - mu_q[i] as f64) / sigma;
            s1[i] += e;
            s2[i] += e * e;
        }
    }
    let n = seeds as f64;
    let mut worst: f64 = 0.0;
    for i in 0..d {
        let mean = s1[i] / n;
        let var = s2[i] / n - mean * mean;
        worst = worst.max((mean / (1.0 / n.sqrt())).abs()); // SE of the mean = 1/√n
        worst = worst.max(((var - 1.0) / (2.0f64 / n).sqrt()).abs()); // SE of the variance ≈ √(2/n)
    }
    worst
}

#[test]
fn pfr_samples_match_q() {
    // KL ≈ 4.4 bits in one chunk, default padding: samples must be indistinguishable from q.
    let z = worst_z(
        PfrParams {
            chunk_kl: 8.0,
            padding: 6,
            max_log2k: 20,
        },
        3000,
        None,
    );
    assert!(z < 4.0, "PFR samples are biased: worst z-score {z:.2}");
}

/// The exact reverse step's proposal is wider than q (σ_p > σ): samples must still follow q,
/// so the quadratic term of the log-ratio must be right.
#[test]
fn pfr_samples_match_q_under_a_wider_proposal() {
    let params = PfrParams {
        chunk_kl: 8.0,
        padding: 6,
        max_log2k: 20,
    };
    let sd = [0.3f32, 0.2, 0.45, 0.25];
    let z = worst_z(params, 3000, Some(&sd));
    assert!(z < 4.0, "PFR samples are biased: worst z-score {z:.2}");
}

#[test]
fn the_test_rejects_a_heavily_truncated_sampler() {
    // 2 candidates for a 4.4-bit chunk: the winner is dragged towards p.
    let z = worst_z(
        PfrParams {
            chunk_kl: 8.0,
            padding: 0,
            max_log2k: 1,
        },
        3000,
        None,
    );
    assert!(z > 6.0, "a biased sampler went unnoticed (worst z {z:.2})");
}
