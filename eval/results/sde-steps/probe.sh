#!/bin/bash
# How many SDE steps DiffC-A needs: PSNR of validation crops (training photos, not dev24) at
# 0.05 bpp, decoded with the ODE (24 steps) and the SDE at 24…256 steps, for the default model
# and the Gaussian one. Prints probe.txt's lines.
# Run from the repository root: bash eval/results/sde-steps/probe.sh [CROPS...]
# (crops: python3 notebooks/make_val_crops.py /tmp/val6)
set -euo pipefail
BIN=${DIFFC:-target/release/diffc}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
CROPS=("$@")
[ ${#CROPS[@]} -gt 0 ] || CROPS=(/tmp/val6/v00.png /tmp/val6/v01.png)
for f in "${CROPS[@]}"; do
  n=$(basename "$f" .png)
  for m in photo-unet-s-wiener-bands:"24 64 128" gauss-spectrum:"24 64 128 256"; do
    model=${m%%:*}
    "$BIN" encode "$f" -o "$W/$n.dfc" --bpp 0.05 --model "$model" -q
    "$BIN" decode "$W/$n.dfc" -o "$W/$n-$model-ode-24.png" -q
    for st in ${m#*:}; do
      "$BIN" decode "$W/$n.dfc" -o "$W/$n-$model-sde-$st.png" --decoder sde --steps "$st" -q
    done
    python3 - "$f" "$W" "$n-$model" <<'PY'
import glob, os, sys
import numpy as np
from PIL import Image
ref, w, stem = sys.argv[1:]
x = np.asarray(Image.open(ref).convert("RGB"), dtype=float)
def psnr(p):
    y = np.asarray(Image.open(p).convert("RGB"), dtype=float)
    return 10 * np.log10(255**2 / np.mean((x - y) ** 2))
outs = sorted(glob.glob(f"{w}/{stem}-*.png"), key=lambda p: ("-sde-" in os.path.basename(p), int(p.rsplit("-", 1)[1][:-4])))
print(stem, " | ".join(f"{os.path.basename(p)[len(stem)+1:-4]} {psnr(p):.2f}" for p in outs))
PY
  done
done
