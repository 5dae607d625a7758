#!/usr/bin/env python3
"""Write a few small synthetic-but-natural-looking RGB PNG test images (smooth colour
gradients, a soft blob, mild 1/f-ish texture and sensor-like noise; seeded, so the bytes
are the same on every run) into a folder.  Tests use these instead of real photos.

    python3 eval/data/make_ci_sample.py OUT_DIR [--seed 0]

Writes OUT_DIR/ci_64x48.png, ci_33x21.png (odd size, not a multiple of 8) and
ci_96x64.png.  Needs numpy + Pillow (eval/data/requirements.txt).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [(64, 48), (33, 21), (96, 64)]  # (width, height)


def smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Low-pass noise: white noise filtered in Fourier space by 1/(1+(f/scale)^2)."""
    n = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy) * max(h, w)
    out = np.real(np.fft.ifft2(np.fft.fft2(n) / (1.0 + (f / scale) ** 2)))
    return out / (out.std() + 1e-12)


def make_image(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y /= max(h - 1, 1)
    x /= max(w - 1, 1)
    # sky-to-ground style vertical gradient with a horizontal tint
    top = rng.uniform(0.45, 0.9, 3)
    bottom = rng.uniform(0.1, 0.5, 3)
    img = top[None, None, :] * (1 - y[..., None]) + bottom[None, None, :] * y[..., None]
    img += 0.08 * (x[..., None] - 0.5) * rng.uniform(-1, 1, 3)[None, None, :]
    # a soft blob (an "object")
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
    blob = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)))
    img += 0.25 * blob[..., None] * rng.uniform(-1, 1, 3)[None, None, :]
    # correlated texture, shared luminance plus a little chroma
    lum = smooth_noise(rng, h, w, 6.0)
    img += 0.05 * lum[..., None]
    img += 0.015 * np.stack([smooth_noise(rng, h, w, 3.0) for _ in range(3)], -1)
    # sensor-like noise
    img += rng.normal(0, 0.01, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(SIZES):
        a = make_image(w, h, args.seed * 1000 + i)
        p = out / f"ci_{w}x{h}.png"
        Image.fromarray(a).save(p, format="PNG")
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
