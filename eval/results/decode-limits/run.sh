#!/usr/bin/env bash
# Peak memory (/usr/bin/time -v "Maximum resident set size") and wall time of `diffc decode`
# (default options) per codec with the cheapest model, on real files of each SIZE (the
# astronaut sample resized): DiffC on gauss-spectrum over UQ with a full 64-step trajectory
# (the most steps the default limits allow at 2^23 pixels) and over PFR at 0.1 bpp; HFD-MSE and
# HFD on their shipped checkpoints at 0.5 bpp. Usage: run.sh "SIZE …" (default "512 1024");
# appends to results.tsv. The largest accepted file (2^23 pixels) is extrapolated from these.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=eval/results/decode-limits
work=${WORK:-/tmp/decode-limits}
mkdir -p "$work"
bin=target/release/diffc
[ -f $out/results.tsv ] || printf 'codec\tsize\tpixels\tbytes\tencode_flags\tdecode_seconds\tpeak_rss_mib\tstatus\n' > $out/results.tsv
codecs=(
  "diffc-uq-64steps|--model gauss-spectrum --channel uq --steps 64 --stop step:64"
  "diffc-pfr|--model gauss-spectrum --channel pfr --bpp 0.1"
  "hfd-mse|--codec hfd-mse --bpp 0.5"
  "hfd|--codec hfd --bpp 0.5"
)
for s in ${1:-512 1024}; do
  img=$work/a$s.png
  python3 -c "from PIL import Image; Image.open('eval/samples/astronaut-256.png').convert('RGB').resize(($s,$s), Image.BICUBIC).save('$img')"
  for c in "${codecs[@]}"; do
    name=${c%%|*}; flags=${c#*|}
    case " ${CODECS:-$name} " in *" $name "*) ;; *) continue;; esac
    f=$work/$name-$s.dfc
    # shellcheck disable=SC2086
    $bin encode -q $flags -o "$f" "$img"
    if /usr/bin/time -v $bin decode -q "$f" -o "$work/out.png" 2>"$work/time.txt"; then st=ok; else st="error: $(grep -v '^\s' "$work/time.txt" | tail -1)"; fi
    secs=$(grep 'Elapsed (wall' "$work/time.txt" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    rss=$(grep 'Maximum resident' "$work/time.txt" | awk '{print int($NF/1024)}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${s}x$s" $((s*s)) "$(stat -c %s "$f")" "$flags" "$secs" "$rss" "$st" | tee -a $out/results.tsv
  done
done
