#!/usr/bin/env bash
# PFR chunk KL / padding on two dev24 crops at 0.05 and 0.1 bpp (default model, DiffC-F decode):
# encode seconds, coded bits vs Σ step KL, log-SNR reached; truncation (8× candidates) on one
# crop; decoded PSNR. Usage: bash eval/results/pfr-chunks-photos/run.sh > out.txt
set -euo pipefail
B=${B:-target/release/diffc}
D=${D:-$HOME/.cache/diffc/dev24/crop256}
T=$(mktemp -d)
for img in 03 11; do for bpp in 0.05 0.1; do for cfg in "6 6" "8 6" "8 4" "10 4"; do
  set -- $cfg
  s=$(date +%s.%N)
  out=$($B encode $D/$img.png -o $T/$img-$bpp-$1-$2.dfc --bpp $bpp --chunk-kl $1 --padding $2 2>&1)
  e=$(date +%s.%N)
  echo "img $img bpp $bpp chunk $1 pad $2 secs $(echo "$e - $s" | bc) load $(cut -d' ' -f1 /proc/loadavg) :: $(echo "$out" | tr '\n' ' ')"
done; done; done
for cfg in "6 6" "8 4"; do set -- $cfg
  echo "diag 03 0.05 $1 $2 :: $($B encode $D/03.png -o $T/diag.dfc --bpp 0.05 --chunk-kl $1 --padding $2 --diagnose-pfr 2>&1 | tr '\n' ' ')"
done
for f in $T/[0-9]*.dfc; do
  b=$(basename $f .dfc); img=${b%%-*}
  $B decode $f -o $T/$b.png -q
  echo "psnr $b $(python3 -c "
import numpy as np; from PIL import Image
a=np.asarray(Image.open('$D/$img.png').convert('RGB'),float); b=np.asarray(Image.open('$T/$b.png'),float)
print(round(10*np.log10(255**2/((a-b)**2).mean()),3))")"
done
