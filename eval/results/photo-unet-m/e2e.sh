#!/bin/bash
B=${B:-target/release/diffc}; V=${VAL:-$HOME/.cache/diffc/val6}
export DIFFC_CHECKPOINTS=${DIFFC_CHECKPOINTS:-$HOME/.cache/diffc/ckpt-snap}
for n in v00 v02 v04; do for m in photo-unet-s-wiener-bands photo-unet-m-wiener-bands; do
 $B encode $V/$n.png -o /tmp/e2e-$n-$m.dfc --bpp 0.05 --model $m -q && $B decode /tmp/e2e-$n-$m.dfc -o /tmp/e2e-$n-$m.png -q
 echo "$n $m $(stat -c %s /tmp/e2e-$n-$m.dfc) $(python3 -c "
import numpy as np; from PIL import Image
a=np.asarray(Image.open('$V/$n.png').convert('RGB'),float); b=np.asarray(Image.open('/tmp/e2e-$n-$m.png'),float)
print(round(10*np.log10(255**2/((a-b)**2).mean()),3))")"
done; done
