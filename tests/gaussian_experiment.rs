//! A small run of the Gaussian experiment (the committed full run is in
//! eval/results/gaussian): the real codec against closed-form theory.
use diffc::experiment::gaussian::{Config, run};

#[test]
fn quick_gaussian_experiment_tracks_theory() {
    let r = run(&Config::quick(), false).unwrap(); // also checks decoder latents == encoder's
    let top = r.points.last().unwrap();
    // rates: ideal ≤ Σ KL (discretisation only adds), coded within a bounded overhead of Σ KL
    for p in &r.points {
        assert!(
            p.kl_bits >= 0.9 * p.ideal_bits,
            "KL {} below ideal {}",
            p.kl_bits,
            p.ideal_bits
        );
        if p.payload_bits >= 2000.0 {
            assert!(
                p.coded_bits <= 1.4 * p.kl_bits,
                "coded {} vs KL {}",
                p.coded_bits,
                p.kl_bits
            );
        }
    }
    // distortion: DiffC-A ≈ 2·MMSE, flow beats ancestral, approaching the 1/2 ratio
    assert!(
        (top.mse_a / top.mse_a_theory - 1.0).abs() < 0.15,
        "A {} vs {}",
        top.mse_a,
        top.mse_a_theory
    );
    assert!(
        (top.mse_f / top.mse_f_theory - 1.0).abs() < 0.35,
        "F {} vs {}",
        top.mse_f,
        top.mse_f_theory
    );
    assert!(
        top.mse_f / top.mse_a < 0.7,
        "F/A = {}",
        top.mse_f / top.mse_a
    );
}
