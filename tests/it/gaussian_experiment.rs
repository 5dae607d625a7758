//! A small run of the Gaussian experiment (the committed full run is in
//! eval/results/gaussian): the real codec against closed-form theory.
use diffc::experiment::gaussian::{Config, run};

#[test]
fn quick_gaussian_experiment_tracks_theory() {
    let r = run(&Config::quick(), false).unwrap(); // also checks decoder latents == encoder's
    let top = r.points.last().unwrap();
    for p in &r.points {
        // the exact reverse-step proposal: Σ step KL ≈ I(X; Z_t) within 5 % on a 10-step grid
        if p.ideal_bits >= 500.0 {
            assert!(
                (p.kl_bits / p.ideal_bits - 1.0).abs() < 0.05,
                "KL {} vs ideal {} at λ = {}",
                p.kl_bits,
                p.ideal_bits,
                p.logsnr
            );
        }
        // 6-bit PFR chunks cost about 2.5 bits each above their KL (the index's spread; see
        // eval/results/README.md), plus the step codes
        if p.payload_bits >= 2000.0 {
            assert!(
                p.payload_bits <= 1.6 * p.kl_bits,
                "payload {} vs KL {}",
                p.payload_bits,
                p.kl_bits
            );
        }
    }
    // distortion within 5 % of theory (DiffC-A: 2·MMSE; DiffC-F: the flow), F/A near ½
    assert!(
        (top.mse_a / top.mse_a_theory - 1.0).abs() < 0.05,
        "A {} vs {}",
        top.mse_a,
        top.mse_a_theory
    );
    assert!(
        (top.mse_f / top.mse_f_theory - 1.0).abs() < 0.05,
        "F {} vs {}",
        top.mse_f,
        top.mse_f_theory
    );
    // the realism knob: MSE at each R within 5 % of its closed form ((1 + R²)·mmse for A)
    for q in &top.realism {
        for (m, t, what) in [
            (q.mse_a, q.mse_a_theory, "A"),
            (q.mse_f, q.mse_f_theory, "F"),
        ] {
            assert!(
                (m / t - 1.0).abs() < 0.05,
                "{what} at R = {}: {m} vs {t}",
                q.r
            );
        }
    }
    assert_eq!(top.realism.first().unwrap().r, 0.0);
    assert!(
        top.mse_f / top.mse_a < 0.56,
        "F/A = {}",
        top.mse_f / top.mse_a
    );
}
