"""What a PFR chunk's index costs above its KL, under the best possible index prior.

For a chunk of d dimensions with unit-variance offsets m (equal-variance Gaussians, KL = D bits,
m ~ N(0, I) rescaled so that the KL is exactly D), run PFR over K = 2^(D + padding) candidates
and record the winning index n. The cheapest any prior can code n is E[log2-bucket] + H(bucket)
+ the uniform offset bits, i.e. E[b] + H(b) with b = floor(log2(n + 1)) (the codec's own
bucket + raw-bits layout). Its excess over D is the per-chunk overhead that bounds coded/KL:
it grows like log2 of the spread of log q/p, i.e. slowly with D, so coded/KL ≤ 1.10 needs
chunks of ~20+ bits, i.e. 2^24+ candidates per chunk.

    python notebooks/pfr_index_cost.py > eval/results/pfr-index-cost/costs.txt
"""
import math

import numpy as np

rng = np.random.default_rng(0)


def run(D, pad, d, trials):
    K = 2 ** (D + pad) - 1
    b_all = []
    for _ in range(trials):
        m = rng.normal(size=d)
        m *= math.sqrt(2 * D * math.log(2)) / np.linalg.norm(m)
        best, best_n, t = np.inf, 0, 0.0
        for start in range(0, K, 1 << 16):  # blocks keep memory small
            k = min(1 << 16, K - start)
            u = rng.normal(size=(k, d)).astype(np.float32)
            T = t + np.cumsum(rng.exponential(size=k))
            t = T[-1]
            s = np.log(T) - u @ m
            j = int(np.argmin(s))
            if s[j] < best:
                best, best_n = s[j], start + j
        b_all.append(int(math.floor(math.log2(best_n + 1))))
    b = np.array(b_all)
    p = np.bincount(b) / len(b)
    h = -(p[p > 0] * np.log2(p[p > 0])).sum()
    cost = b.mean() + h
    return cost, cost - D


print("chunk KL D (bits) | dims | padding | trials | best-prior index cost (bits) | overhead | overhead/D")
for D, pad, d, trials in [(4, 6, 8, 1000), (6, 6, 12, 1000), (8, 6, 16, 1000), (10, 6, 20, 600), (12, 6, 24, 400)]:
    c, o = run(D, pad, d, trials)
    print(f"{D} | {d} | {pad} | {trials} | {c:.2f} | {o:.2f} | {o / D:.3f}")
