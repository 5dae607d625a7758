"""Checks this run against the earlier ones and prints the README's comparisons.

- Every crop × target has one bitstream per model: DiffC-F's and DiffC-A's byte counts agree,
  and both agree with `diffc-dev24-bands` (whose DiffC-F rows were carried over, while this run
  re-encoded every file for its DiffC-A rows).
- The 64-step DiffC-A rows at 0.05 and 0.1 bpp reproduce `diffc-dev24-steps64` (same files, same
  decoder seed): PSNR equal to 1e-9 dB.
- Prints DiffC-F − DiffC-A per model and trained − Gaussian per decoder, with win counts.

Run: python3 eval/results/diffc-dev24-converged/check.py
"""
import csv
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def rows(run):
    with open(os.path.join(HERE, "..", run, "results.csv")) as f:
        return list(csv.DictReader(f))


def by_key(rs, codec):
    return {(r["image"], r["target_bpp"]): r for r in rs if r["codec"] == codec}


new, bands, s64 = rows("diffc-dev24-converged"), rows("diffc-dev24-bands"), rows("diffc-dev24-steps64")
MODELS = {"trained": "photo-unet-s-wiener-bands", "gaussian": "gauss-spectrum"}
TARGETS = ["0.05", "0.1", "0.2", "0.4"]
T = {(d, m): by_key(new, f"diffc-{d}@{name}") for d in "fa" for m, name in MODELS.items()}

for m, name in MODELS.items():
    old = by_key(bands, f"diffc-a@{name}")
    f, a = T["f", m], T["a", m]
    assert set(f) == set(a) == set(old), f"{m}: rows missing"
    for k in f:
        assert f[k]["bytes"] == a[k]["bytes"] == old[k]["bytes"], f"{m} {k}: bitstreams differ"
print(f"bitstreams: {len(T['f', 'trained']) + len(T['f', 'gaussian'])} files, identical to diffc-dev24-bands")

a64 = by_key(s64, f"diffc-a:64@{MODELS['trained']}")
for k, r in a64.items():
    assert abs(float(r["psnr"]) - float(T["a", "trained"][k]["psnr"])) < 1e-9, f"{k}: SDE decode differs"
print(f"64-step DiffC-A: {len(a64)} rows reproduce diffc-dev24-steps64 exactly")


def compare(x, y, label):
    print(f"\n{label}")
    print("| target | mean difference dB | first better on |")
    print("|---|---|---|")
    for t in TARGETS:
        ks = sorted(k for k in x if k[1] == t)
        d = [float(x[k]["psnr"]) - float(y[k]["psnr"]) for k in ks]
        print(f"| {t} | {sum(d) / len(d):+.2f} | {sum(v > 0 for v in d)} of {len(d)} |")


for m in MODELS:
    compare(T["f", m], T["a", m], f"DiffC-F − DiffC-A, {m} model")
for d, name in (("f", "DiffC-F"), ("a", "DiffC-A")):
    compare(T[d, "trained"], T[d, "gaussian"], f"trained − Gaussian model, {name}")
