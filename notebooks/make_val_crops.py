"""Six 256x256 validation crops from training photos, for choosing between model variants
without touching dev24: every third photo of ~/.cache/diffc/train (from the second), 2x box
downsampled, the crop at (16, 16) — away from the centre tile that `fit-blend` fits on.

    python notebooks/make_val_crops.py OUT_DIR
"""
import os
import sys

import numpy as np
from PIL import Image

src = os.path.expanduser("~/.cache/diffc/train")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
picked = 0
for name in sorted(os.listdir(src))[1::3]:
    im = np.asarray(Image.open(os.path.join(src, name)).convert("RGB")).astype(np.float64)
    h, w = im.shape[0] // 2 * 2, im.shape[1] // 2 * 2
    im = im[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    if im.shape[0] < 300 or im.shape[1] < 300:
        continue
    crop = im[16:272, 16:272]
    Image.fromarray(np.round(crop).clip(0, 255).astype(np.uint8)).save(os.path.join(out, f"v{picked:02d}.png"))
    print(f"v{picked:02d}.png <- {name}")
    picked += 1
    if picked == 6:
        break
