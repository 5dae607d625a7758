//! Fréchet Inception Distance and Kernel Inception Distance on feature vectors.
//!
//! Features are rows of a row-major `n × d` `f32` matrix. All sums run in `f64`.
//!
//! **FID** `= ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^{1/2}` with unbiased (n−1) covariances.
//! The trace of the matrix square root is computed exactly in one of two ways:
//! - when `min(n₁, n₂) ≤ d` (the usual case for patch sets of a few hundred): with centred
//!   data `Aᵢ` (nᵢ × d), `Σ₁Σ₂ = A₁ᵀ(A₁A₂ᵀA₂)/c` has the nonzero eigenvalues of
//!   `(A₁A₂ᵀ)(A₁A₂ᵀ)ᵀ/c`, so `tr(Σ₁Σ₂)^{1/2} = ‖A₁A₂ᵀ‖_* / √((n₁−1)(n₂−1))`
//!   (nuclear norm, from an `n₁ × n₂` SVD);
//! - otherwise by eigen-decomposition: `S = Σ₁^{1/2}`, `tr(Σ₁Σ₂)^{1/2} = Σ √λᵢ(S Σ₂ S)`.
//!
//! **KID** uses the polynomial kernel `k(x, y) = (xᵀy/d + 1)³`. For paired sets of equal
//! size (decoded patch *i* ↔ its original patch *i*) the estimator is Gretton's MMD²_u for
//! equal sample sizes, which leaves out every `i = j` term, cross terms included:
//! `MMD²_u = 1/(n(n−1)) Σ_{i≠j} [k(xᵢ,xⱼ) + k(yᵢ,yⱼ) − k(xᵢ,yⱼ) − k(xⱼ,yᵢ)]`.
//! It is unbiased and exactly 0 when the two sets are identical. (clean-fid's formula keeps
//! the `k(xᵢ, yᵢ)` terms, which assumes independent sets and is biased on paired ones.)
//! For sets of different sizes the standard unbiased two-sample estimator is used.
use anyhow::{Result, bail, ensure};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// A set of feature vectors: `n` rows of `d` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub n: usize,
    pub d: usize,
    pub data: Vec<f32>,
}

impl Features {
    pub fn new(d: usize, data: Vec<f32>) -> Result<Self> {
        ensure!(
            d > 0 && data.len().is_multiple_of(d),
            "feature data length {} is not a multiple of d = {d}",
            data.len()
        );
        Ok(Features {
            n: data.len() / d,
            d,
            data,
        })
    }
    pub fn empty(d: usize) -> Self {
        Features {
            n: 0,
            d,
            data: Vec::new(),
        }
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
    pub fn extend(&mut self, other: &Features) -> Result<()> {
        ensure!(
            self.d == other.d,
            "feature dims differ ({} vs {})",
            self.d,
            other.d
        );
        self.data.extend_from_slice(&other.data);
        self.n += other.n;
        Ok(())
    }
    fn matrix(&self) -> DMatrix<f64> {
        DMatrix::from_fn(self.n, self.d, |i, j| self.data[i * self.d + j] as f64)
    }
}

fn mean_and_centred(f: &Features) -> (DVector<f64>, DMatrix<f64>) {
    let mut a = f.matrix();
    let mut mu = DVector::zeros(f.d);
    for j in 0..f.d {
        let m = a.column(j).sum() / f.n as f64;
        mu[j] = m;
        a.column_mut(j).add_scalar_mut(-m);
    }
    (mu, a)
}

/// Which exact route computes `tr (Σ₁Σ₂)^{1/2}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqrtMethod {
    /// Pick by size (nuclear norm when `min(n₁, n₂) ≤ d`).
    Auto,
    /// Nuclear norm of `A₁A₂ᵀ` (n₁ × n₂ SVD).
    Nuclear,
    /// Eigen-decompositions of d × d matrices.
    Eigen,
}

/// FID between two feature sets (each needs n ≥ 2).
pub fn fid(a: &Features, b: &Features) -> Result<f64> {
    fid_with(a, b, SqrtMethod::Auto)
}

/// FID with an explicit method for the matrix square root (both are exact; tests compare them).
pub fn fid_with(a: &Features, b: &Features, method: SqrtMethod) -> Result<f64> {
    ensure!(a.d == b.d, "FID: feature dims differ ({} vs {})", a.d, b.d);
    if a.n < 2 || b.n < 2 {
        bail!(
            "FID needs at least 2 feature vectors per set (got {} and {})",
            a.n,
            b.n
        );
    }
    let (mu1, a1) = mean_and_centred(a);
    let (mu2, a2) = mean_and_centred(b);
    let (c1, c2) = ((a.n - 1) as f64, (b.n - 1) as f64);
    let tr1 = a1.norm_squared() / c1;
    let tr2 = a2.norm_squared() / c2;
    let dmu = (&mu1 - &mu2).norm_squared();
    let use_nuclear = match method {
        SqrtMethod::Auto => a.n.min(b.n) <= a.d,
        SqrtMethod::Nuclear => true,
        SqrtMethod::Eigen => false,
    };
    let tr_sqrt = if use_nuclear {
        let cross = &a1 * a2.transpose();
        let sv = cross.singular_values();
        sv.iter().sum::<f64>() / (c1 * c2).sqrt()
    } else {
        let s1 = (a1.transpose() * &a1) / c1;
        let s2 = (a2.transpose() * &a2) / c2;
        let e1 = SymmetricEigen::new(s1);
        let sq = e1.eigenvalues.map(|v| v.max(0.0).sqrt());
        let half = &e1.eigenvectors * DMatrix::from_diagonal(&sq) * e1.eigenvectors.transpose();
        let m = &half * s2 * &half;
        let m = (&m + m.transpose()) * 0.5;
        SymmetricEigen::new(m)
            .eigenvalues
            .iter()
            .map(|v| v.max(0.0).sqrt())
            .sum()
    };
    Ok(dmu + tr1 + tr2 - 2.0 * tr_sqrt)
}

/// KID estimate with its spread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KidResult {
    /// MMD²_u on all pairs (paired estimator when sizes match).
    pub kid: f64,
    /// Standard deviation of the same estimator over [`KID_SUBSETS`] seeded random subsets
    /// of half the pairs (clean-fid style spread; 0 when there are too few pairs).
    pub kid_std: f64,
}

pub const KID_SUBSETS: usize = 100;

fn kernel_matrix(x: &Features, y: &Features) -> DMatrix<f64> {
    // Plain dot products in a fixed order (not a blocked GEMM): k(a, b) and k(b, a) are then
    // bit-identical, which makes the paired estimator exactly 0 for identical sets.
    use rayon::prelude::*;
    let d = x.d;
    let xs: Vec<f64> = x.data.iter().map(|&v| v as f64).collect();
    let ys: Vec<f64> = y.data.iter().map(|&v| v as f64).collect();
    let rows: Vec<Vec<f64>> = (0..x.n)
        .into_par_iter()
        .map(|i| {
            let xi = &xs[i * d..(i + 1) * d];
            (0..y.n)
                .map(|j| {
                    let yj = &ys[j * d..(j + 1) * d];
                    let mut s = 0.0;
                    for k in 0..d {
                        s += xi[k] * yj[k];
                    }
                    let t = s / d as f64 + 1.0;
                    t * t * t
                })
                .collect()
        })
        .collect();
    DMatrix::from_fn(x.n, y.n, |i, j| rows[i][j])
}

/// Paired MMD²_u over the index set `idx` (needs `|idx| ≥ 2`), from kernel matrices.
fn mmd_paired(kxx: &DMatrix<f64>, kyy: &DMatrix<f64>, kxy: &DMatrix<f64>, idx: &[usize]) -> f64 {
    let n = idx.len();
    let mut s = 0.0;
    for &i in idx {
        for &j in idx {
            if i != j {
                // k(x_i, y_j) and k(x_j, y_i): both from the x-by-y matrix.
                s += kxx[(i, j)] + kyy[(i, j)] - kxy[(i, j)] - kxy[(j, i)];
            }
        }
    }
    s / (n * (n - 1)) as f64
}

/// Unbiased two-sample MMD²_u for independent sets of any sizes.
fn mmd_unpaired(kxx: &DMatrix<f64>, kyy: &DMatrix<f64>, kxy: &DMatrix<f64>) -> f64 {
    let (m, n) = (kxx.nrows(), kyy.nrows());
    let off = |k: &DMatrix<f64>| k.sum() - k.diagonal().sum();
    off(kxx) / (m * (m - 1)) as f64 + off(kyy) / (n * (n - 1)) as f64
        - 2.0 * kxy.sum() / (m * n) as f64
}

/// SplitMix64: the seeded index shuffles for the KID spread (no shared state).
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Sample standard deviation (n − 1) of the subset estimates: the KID spread.
fn sample_std(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// KID between `x` (e.g. decoded patches) and `y` (their originals).
/// Equal sizes are treated as paired (row i of `x` belongs with row i of `y`).
pub fn kid(x: &Features, y: &Features) -> Result<KidResult> {
    ensure!(x.d == y.d, "KID: feature dims differ ({} vs {})", x.d, y.d);
    if x.n < 2 || y.n < 2 {
        bail!(
            "KID needs at least 2 feature vectors per set (got {} and {})",
            x.n,
            y.n
        );
    }
    let kxx = kernel_matrix(x, x);
    let kyy = kernel_matrix(y, y);
    let kxy = kernel_matrix(x, y);
    if x.n != y.n {
        return Ok(KidResult {
            kid: mmd_unpaired(&kxx, &kyy, &kxy),
            kid_std: 0.0,
        });
    }
    let n = x.n;
    let all: Vec<usize> = (0..n).collect();
    let kid = mmd_paired(&kxx, &kyy, &kxy, &all);
    let m = n / 2;
    let kid_std = if m >= 2 {
        let mut rng = SplitMix(0x4B49_445F_5354_4421);
        let mut vals = Vec::with_capacity(KID_SUBSETS);
        let mut perm = all.clone();
        for _ in 0..KID_SUBSETS {
            for i in (1..n).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                perm.swap(i, j);
            }
            vals.push(mmd_paired(&kxx, &kyy, &kxy, &perm[..m]));
        }
        sample_std(&vals)
    } else {
        0.0
    };
    Ok(KidResult { kid, kid_std })
}

/// Unpaired MMD²_u (exposed for tests and for comparing against unrelated reference sets).
pub fn kid_unpaired(x: &Features, y: &Features) -> Result<f64> {
    ensure!(x.d == y.d, "KID: feature dims differ");
    ensure!(x.n >= 2 && y.n >= 2, "KID needs at least 2 vectors per set");
    Ok(mmd_unpaired(
        &kernel_matrix(x, x),
        &kernel_matrix(y, y),
        &kernel_matrix(x, y),
    ))
}

/// Unpaired KID averaged over independent (decoded, reference) set pairs, with its spread.
///
/// Each pair `(xₖ, yₖ)` gets the unbiased two-sample MMD²_u (any sizes, no pairing assumed,
/// even when the sizes match); the estimate is their mean, so it stays unbiased. This is the
/// unpaired realism protocol: e.g. decoded patches of the even-indexed images against the
/// original patches of the odd-indexed ones, and vice versa. `kid_std` is the standard
/// deviation of the same mean over [`KID_SUBSETS`] seeded draws of half of each set (0 when
/// a set has fewer than 4 vectors). Pairs whose sets have fewer than 2 vectors are skipped;
/// none left is an error.
pub fn kid_two_sample(pairs: &[(&Features, &Features)]) -> Result<KidResult> {
    let usable: Vec<_> = pairs.iter().filter(|(x, y)| x.n >= 2 && y.n >= 2).collect();
    ensure!(
        !usable.is_empty(),
        "unpaired KID needs a pair of sets with at least 2 feature vectors each"
    );
    let mut mats = Vec::new();
    for (x, y) in &usable {
        ensure!(x.d == y.d, "KID: feature dims differ ({} vs {})", x.d, y.d);
        mats.push((
            kernel_matrix(x, x),
            kernel_matrix(y, y),
            kernel_matrix(x, y),
        ));
    }
    let kid = mats
        .iter()
        .map(|(kxx, kyy, kxy)| mmd_unpaired(kxx, kyy, kxy))
        .sum::<f64>()
        / mats.len() as f64;
    let small = usable.iter().any(|(x, y)| x.n < 4 || y.n < 4);
    let kid_std = if small {
        0.0
    } else {
        let mut rng = SplitMix(0x4B49_445F_554E_5041);
        let mut shuffle = |n: usize| {
            let mut p: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                p.swap(i, j);
            }
            p.truncate(n / 2);
            p
        };
        let mut vals = Vec::with_capacity(KID_SUBSETS);
        for _ in 0..KID_SUBSETS {
            let mut s = 0.0;
            for (kxx, kyy, kxy) in &mats {
                let a = shuffle(kxx.nrows());
                let b = shuffle(kyy.nrows());
                let sub = |k: &DMatrix<f64>, r: &[usize], c: &[usize]| {
                    DMatrix::from_fn(r.len(), c.len(), |i, j| k[(r[i], c[j])])
                };
                s += mmd_unpaired(&sub(kxx, &a, &a), &sub(kyy, &b, &b), &sub(kxy, &a, &b));
            }
            vals.push(s / mats.len() as f64);
        }
        sample_std(&vals)
    };
    Ok(KidResult { kid, kid_std })
}
