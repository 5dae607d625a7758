#!/usr/bin/env bash
# Fewer ODE decode steps (issue 16, item 3): the six validation crops (notebooks/make_val_crops.py,
# never dev24) encoded once at 0.05 and 0.1 bpp with the defaults, each file decoded with DDIM 24
# (default), DDIM 12, DPM-Solver++(2M) 12 and 8; PSNR and decode seconds per decode.
# Usage: bash eval/results/ode-steps-val6/run.sh > eval/results/ode-steps-val6/out.txt
set -euo pipefail
B=${B:-target/release/diffc}
VAL=${VAL:-$HOME/.cache/diffc/val6}
[ -d "$VAL" ] || python3 notebooks/make_val_crops.py "$VAL"
T=$(mktemp -d)
psnr() { python3 -c "
import numpy as np; from PIL import Image
a=np.asarray(Image.open('$1').convert('RGB'),float); b=np.asarray(Image.open('$2').convert('RGB'),float)
print(round(10*np.log10(255**2/((a-b)**2).mean()),3))"; }
echo "image bpp solver steps psnr_db decode_s load"
for p in "$VAL"/*.png; do n=$(basename "$p" .png); for bpp in 0.05 0.1; do
  $B encode "$p" -o "$T/$n-$bpp.dfc" --bpp $bpp -q
  for cfg in "ddim 24" "ddim 12" "dpm-pp2m 12" "dpm-pp2m 8"; do set -- $cfg
    s=$(date +%s.%N)
    $B decode "$T/$n-$bpp.dfc" -o "$T/out.png" --solver $1 --steps $2 -q
    e=$(date +%s.%N)
    echo "$n $bpp $1 $2 $(psnr "$p" "$T/out.png") $(echo "$e - $s" | bc) $(cut -d' ' -f1 /proc/loadavg)"
  done
done; done
