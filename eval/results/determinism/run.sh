#!/usr/bin/env bash
# Cross-build determinism (issue 17, item 3): encodes with the default release build, decodes
# with it and with a `-C target-cpu=native` build (other float kernels: FMA, AVX2/AVX-512), each
# with RAYON_NUM_THREADS=1 and 2, and tabulates per codec: identical output, drift (PSNR in dB
# between the two decodes), or desynchronisation (a decode error, or garbage).
# Usage: eval/results/determinism/run.sh [SIZE...]   (default 128; e.g. `128 256`)
# DECODERS="base native" (default) picks the builds that decode; REUSE=1 keeps the files and rows
# of an earlier run (so the two halves can run apart: DECODERS=base, then REUSE=1 DECODERS=native).
# CODECS="diffc-pfr …" and THREADS="1" restrict a run to some codecs and thread counts.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=eval/results/determinism
work=${DET_WORK:-/tmp/det-work}
mkdir -p "$work"
sizes=${*:-128}
decoders=${DECODERS:-base native}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -j 1 --bin diffc
  case " $decoders " in *" native "*)
    RUSTFLAGS="-C target-cpu=native" cargo build --release -j 1 --bin diffc --target-dir /tmp/det-native;;
  esac
fi
base=target/release/diffc
native=/tmp/det-native/release/diffc
# codec name | encode flags (default model of each family)
codecs=(
  "diffc-pfr|--codec diffc --channel pfr --bpp 0.2"
  "diffc-uq|--codec diffc --channel uq --bpp 1.0"
  "diffc-mixed|--codec diffc --channel mixed --bpp 2.0"
  "hfd|--codec hfd --bpp 0.2"
  "hfd-mse|--codec hfd-mse --bpp 0.2"
)
tsv=$out/results.tsv
[ "${REUSE:-0}" = 1 ] && [ -f "$tsv" ] || printf 'size\tcodec\tbytes\tdecoder\tthreads\tseconds\tstatus\n' > "$tsv"
for s in $sizes; do
  img=$work/astronaut-$s.png
  [ -f "$img" ] || python3 -c "from PIL import Image; Image.open('eval/samples/astronaut-256.png').convert('RGB').resize(($s, $s), Image.LANCZOS).save('$img')"
  for c in "${codecs[@]}"; do
    name=${c%%|*}; flags=${c#*|}
    case " ${CODECS:-$name} " in *" $name "*) ;; *) continue;; esac
    f=$work/$name-$s.dfc
    # shellcheck disable=SC2086
    [ "${REUSE:-0}" = 1 ] && [ -f "$f" ] || $base encode -q $flags -o "$f" "$img"
    bytes=$(stat -c %s "$f")
    if [ "$name" = diffc-mixed ]; then
      # the mixed file must really hold UQ steps: a step above 0.05 bits per dimension goes by UQ
      # (estimated from the bytes each whole step adds, `diffc info` cut points)
      $base info --json "$f" | python3 -c "import sys, json; c = json.load(sys.stdin)['cuts']; d = 3 * $s * $s; b = [8 * (y[1] - x[1]) / d for x, y in zip(c, c[1:])]; print(f'mixed {$s}: {sum(v > 0.05 for v in b)} of {len(b)} steps above 0.05 bits/dim (max {max(b):.3f})')" | tee "$out/mixed-$s.txt"
    fi
    for b in $decoders; do
      bin=$base; [ $b = native ] && bin=$native
      for t in ${THREADS:-1 2}; do
        png=$work/$name-$s-$b-t$t.png
        rm -f "$png"
        t0=$(date +%s.%N)
        if RAYON_NUM_THREADS=$t $bin decode -q "$f" -o "$png" 2>"$work/err"; then st=ok; else st="error: $(tail -1 "$work/err")"; fi
        secs=$(echo "$(date +%s.%N) - $t0" | bc)
        printf '%s\t%s\t%s\t%s\t%s\t%.1f\t%s\n' "$s" "$name" "$bytes" "$b" "$t" "$secs" "$st" >> "$tsv"
      done
    done
  done
done
python3 - "$tsv" "$work" "$out/table.md" <<'PY'
import sys, csv, numpy as np
from PIL import Image
tsv, work, md = sys.argv[1:]
rows = list(csv.DictReader(open(tsv), delimiter='\t'))
def load(r):
    return np.asarray(Image.open(f"{work}/{r['codec']}-{r['size']}-{r['decoder']}-t{r['threads']}.png"), dtype=np.float64)
def psnr(a, b):
    m = ((a - b) ** 2).mean()
    return float('inf') if m == 0 else 10 * np.log10(255.0 ** 2 / m)
src = {}
out = ["| codec | size | bytes | base 1 vs 2 threads | base vs native (1 thread) | base vs native (2 threads) | PSNR to source (base) |",
       "|---|---|---|---|---|---|---|"]
keys = sorted({(r['size'], r['codec']) for r in rows}, key=lambda k: (int(k[0]), k[1]))
for s, c in keys:
    rs = {(r['decoder'], r['threads']): r for r in rows if r['size'] == s and r['codec'] == c}
    def cmp(x, y):
        if x not in rs or y not in rs:
            return 'not run'
        a, b = rs[x], rs[y]
        if a['status'] != 'ok' or b['status'] != 'ok':
            return 'desync (error: ' + (a['status'] if a['status'] != 'ok' else b['status']) + ')'
        p = psnr(load(a), load(b))
        if p == float('inf'):
            return 'identical'
        return f"drift {p:.1f} dB" + (' (desync: garbage)' if p < 20 else '')
    ref = np.asarray(Image.open(f"{work}/astronaut-{s}.png").convert('RGB'), dtype=np.float64)
    base = rs[('base', '1')]
    q = f"{psnr(load(base), ref):.2f} dB" if base['status'] == 'ok' else '—'
    out.append(f"| {c} | {s}×{s} | {base and rows and next(r['bytes'] for r in rows if r['size']==s and r['codec']==c)} | "
               f"{cmp(('base','1'),('base','2'))} | {cmp(('base','1'),('native','1'))} | {cmp(('base','2'),('native','2'))} | {q} |")
open(md, 'w').write("\n".join(out) + "\n")
print("\n".join(out))
PY
