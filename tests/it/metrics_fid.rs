//! FID and KID estimators: self-distance, agreement of the two exact square-root routes,
//! closed forms, and unbiasedness of KID.
use diffc::metrics::fid::{Features, SqrtMethod, fid, fid_with, kid, kid_two_sample, kid_unpaired};

struct Rng(u64);
impl Rng {
    fn u(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.u().max(1e-300), self.u());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

fn gaussian(rng: &mut Rng, n: usize, d: usize, shift: f64, scale: f64) -> Features {
    Features::new(
        d,
        (0..n * d)
            .map(|_| (rng.normal() * scale + shift) as f32)
            .collect(),
    )
    .unwrap()
}

#[test]
fn fid_of_a_set_with_itself_is_zero() {
    let mut r = Rng(1);
    // n < d: nuclear-norm route (the harness's usual case); n > d: eigen route.
    for (n, d) in [(40, 2048), (30, 64), (200, 16)] {
        let a = gaussian(&mut r, n, d, 0.3, 1.0);
        let f = fid(&a, &a).unwrap();
        let scale = fid(&a, &gaussian(&mut r, n, d, 0.0, 1.0)).unwrap();
        assert!(
            f.abs() < 1e-9 * scale.max(1.0),
            "n={n} d={d}: FID(a, a) = {f}"
        );
    }
}

#[test]
fn nuclear_and_eigen_routes_agree() {
    let mut r = Rng(2);
    for (n1, n2, d) in [(12, 15, 10), (40, 40, 24), (8, 30, 32)] {
        let a = gaussian(&mut r, n1, d, 0.0, 1.0);
        let b = gaussian(&mut r, n2, d, 0.5, 1.3);
        let x = fid_with(&a, &b, SqrtMethod::Nuclear).unwrap();
        let y = fid_with(&a, &b, SqrtMethod::Eigen).unwrap();
        // The eigen route clips tiny negative eigenvalues of rank-deficient covariances (n < d).
        assert!(
            (x - y).abs() < 1e-6 * x.abs().max(1.0),
            "{n1}×{n2}×{d}: nuclear {x} vs eigen {y}"
        );
    }
}

#[test]
fn fid_one_dimensional_closed_form() {
    // d = 1: FID = (μ₁−μ₂)² + (s₁ − s₂)² with unbiased variances.
    let a = Features::new(1, vec![0.0, 1.0, 2.0, 3.0]).unwrap();
    let b = Features::new(1, vec![1.0, 3.0, 5.0, 7.0, 9.0]).unwrap();
    let (m1, v1) = (1.5f64, (2.25 + 0.25 + 0.25 + 2.25) / 3.0f64);
    let (m2, v2) = (5.0, (16.0 + 4.0 + 0.0 + 4.0 + 16.0) / 4.0f64);
    let want = (m1 - m2) * (m1 - m2) + (v1.sqrt() - v2.sqrt()).powi(2);
    for m in [SqrtMethod::Nuclear, SqrtMethod::Eigen] {
        let got = fid_with(&a, &b, m).unwrap();
        assert!((got - want).abs() < 1e-10, "{m:?}: {got} vs {want}");
    }
}

#[test]
fn kid_is_exactly_zero_for_identical_paired_sets() {
    let mut r = Rng(3);
    let a = gaussian(&mut r, 64, 2048, 0.2, 1.0);
    let k = kid(&a, &a).unwrap();
    assert_eq!(k.kid, 0.0);
    assert_eq!(k.kid_std, 0.0);
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    (m, (var / v.len() as f64).sqrt())
}

#[test]
fn kid_is_unbiased_under_the_null() {
    // Paired sets from the same distribution: E[KID] = 0. The mean over many independent
    // draws must lie within 4 standard errors of 0 (both the paired and unpaired estimators).
    let mut r = Rng(4);
    let (draws, n, d) = (300, 24, 16);
    let mut paired = Vec::new();
    let mut unpaired = Vec::new();
    for _ in 0..draws {
        let x = gaussian(&mut r, n, d, 0.0, 1.0);
        let y = gaussian(&mut r, n, d, 0.0, 1.0);
        paired.push(kid(&x, &y).unwrap().kid);
        let y2 = gaussian(&mut r, n + 7, d, 0.0, 1.0);
        unpaired.push(kid_unpaired(&x, &y2).unwrap());
    }
    for (name, v) in [("paired", &paired), ("unpaired", &unpaired)] {
        let (m, se) = mean_se(v);
        eprintln!("{name}: mean KID {m:.3e} ± {se:.3e} over {draws} draws");
        assert!(
            m.abs() < 4.0 * se,
            "{name}: mean {m} not within 4 SE ({se}) of 0"
        );
    }
    // A real difference is detected: shifted distribution, KID well above its spread.
    let x = gaussian(&mut r, 200, d, 0.0, 1.0);
    let y = gaussian(&mut r, 200, d, 0.5, 1.0);
    let k = kid(&x, &y).unwrap();
    assert!(k.kid > 5.0 * k.kid_std && k.kid_std > 0.0, "{k:?}");
}

#[test]
fn paired_kid_differs_from_biased_formula_on_paired_sets() {
    // Decoded ≈ original + small noise: the paired estimator stays near 0, while keeping the
    // i = j cross terms (clean-fid's formula) rewards the pairing with a negative value.
    let mut r = Rng(5);
    let (n, d) = (100, 32);
    let y = gaussian(&mut r, n, d, 0.0, 1.0);
    let x = Features::new(
        d,
        y.data
            .iter()
            .map(|v| v + 0.05 * r.normal() as f32)
            .collect(),
    )
    .unwrap();
    let paired = kid(&x, &y).unwrap().kid;
    let unp = kid_unpaired(&x, &y).unwrap();
    assert!(paired.abs() < 1e-3, "paired {paired}");
    assert!(
        unp < paired - 1e-3,
        "unpaired {unp} should be clearly negative (biased by pairing)"
    );
}

#[test]
fn two_sample_kid_is_unbiased_and_detects_a_shift() {
    // The unpaired realism protocol's estimator (mean over split directions): under the null
    // (all four sets from one distribution, equal sizes so nothing is treated as paired) the
    // mean over many draws is within 4 standard errors of 0; a shifted decoded distribution
    // gives a KID well above its subset spread.
    let mut r = Rng(11);
    let (draws, n, d) = (300, 20, 16);
    let mut v = Vec::new();
    for _ in 0..draws {
        let (xa, yb) = (
            gaussian(&mut r, n, d, 0.0, 1.0),
            gaussian(&mut r, n, d, 0.0, 1.0),
        );
        let (xb, ya) = (
            gaussian(&mut r, n, d, 0.0, 1.0),
            gaussian(&mut r, n, d, 0.0, 1.0),
        );
        v.push(kid_two_sample(&[(&xa, &yb), (&xb, &ya)]).unwrap().kid);
    }
    let (m, se) = mean_se(&v);
    eprintln!("two-sample: mean KID {m:.3e} ± {se:.3e} over {draws} draws");
    assert!(m.abs() < 4.0 * se, "mean {m} not within 4 SE ({se}) of 0");
    // Identical distributions, large sets: ≈ 0 within a few subset spreads.
    let (x, y) = (
        gaussian(&mut r, 200, d, 0.0, 1.0),
        gaussian(&mut r, 200, d, 0.0, 1.0),
    );
    let k0 = kid_two_sample(&[(&x, &y)]).unwrap();
    assert!(
        k0.kid_std > 0.0 && k0.kid.abs() < 3.0 * k0.kid_std,
        "{k0:?}"
    );
    // Shifted: positive, well above the spread.
    let z = gaussian(&mut r, 200, d, 0.5, 1.0);
    let k1 = kid_two_sample(&[(&z, &y), (&z, &x)]).unwrap();
    assert!(k1.kid > 5.0 * k1.kid_std && k1.kid_std > 0.0, "{k1:?}");
    // Equal sizes are not treated as paired: a set against itself is not exactly 0 here
    // (the two-sample estimator keeps the k(xᵢ, xᵢ) cross terms), unlike the paired `kid`.
    assert!(kid_two_sample(&[(&x, &x)]).unwrap().kid < 0.0);
    assert!(kid_two_sample(&[(&x, &Features::empty(d))]).is_err());
}
