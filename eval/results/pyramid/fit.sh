#!/usr/bin/env bash
# Fits the blend of the default model (base) with the low-resolution pyramid expert (prior) per
# log-SNR and DCT band on training-photo tiles, then compares denoising MSE on the six
# validation crops (notebooks/make_val_crops.py; never dev24).
# Usage: CK=DIR bash eval/results/pyramid/fit.sh   (DIR holds photo-unet-lowres.{safetensors,json}
# and photo-unet-lowres-pyramid.json; default ~/.cache/diffc/ckpt-snap)
set -euo pipefail
R=eval/results/pyramid
CK=${CK:-$HOME/.cache/diffc/ckpt-snap}
LIMIT=${LIMIT:-76}
export DIFFC_CHECKPOINTS=$CK
BIN=target/release/diffc
VAL=${VAL:-$HOME/.cache/diffc/val6}
[ -d "$VAL" ] || python3 notebooks/make_val_crops.py "$VAL"
$BIN experiment fit-blend --name photo-unet-pyramid-bands --base photo-unet-s-wiener-bands \
  --prior photo-unet-lowres-pyramid --data ~/.cache/diffc/train --out "$CK/photo-unet-pyramid-bands.json" \
  --tile 256 --down 2 --limit "$LIMIT" --bands 0.0078125,0.015625,0.03125,0.0625,0.125,0.25 --quantize -q
cp "$CK/photo-unet-pyramid-bands.json" "$R/photo-unet-pyramid-bands.json"
cargo run -q --release --example denoise_mse -- "$VAL" 6 \
  photo-unet-s-wiener-bands,photo-unet-lowres-pyramid,photo-unet-pyramid-bands | tee "$R/val6-mse.txt"
