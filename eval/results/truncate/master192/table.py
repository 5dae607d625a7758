"""Summarise master.csv (truncate_dev24 master mode): per crop and target, direct vs truncated
bytes and PSNR; means; the rate cost of truncatability at equal PSNR.

    python3 eval/results/truncate/master192/table.py eval/results/truncate/master192/master.csv

Rate cost: a truncated file of b_t bytes at PSNR p_t against the direct file's b_d, p_d. The
direct files' own PSNR-vs-rate slope s (dB per doubling of bytes, from the same crops' 0.05 and
0.1 bpp direct files) converts the PSNR gap into bytes: cost = (b_t / b_d) · 2^((p_d − p_t)/s) − 1,
i.e. how many more bytes than the direct file the truncated file would need for the direct
file's PSNR (negative: fewer).
"""
import csv
import math
import sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
by = defaultdict(dict)
for r in rows:
    by[r["image"]][r["target_bpp"]] = r
full = [im for im, v in by.items() if len(v) == 2]
slopes = []
for im in full:
    a, b = by[im]["0.05"], by[im]["0.1"]
    slopes.append((float(b["psnr_direct"]) - float(a["psnr_direct"]))
                  / math.log2(int(b["direct_bytes"]) / int(a["direct_bytes"])))
s = sum(slopes) / len(slopes)
print(f"{len(full)} crops; direct files' slope {s:.2f} dB per doubling of bytes\n")
print("| crop | target | direct B | truncated B | stop (of 192) | direct dB | truncated dB | Δ dB | master B | master enc s | cut dec s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
agg = defaultdict(lambda: defaultdict(list))
for im in sorted(full):
    for t in ["0.05", "0.1"]:
        r = by[im][t]
        bd, bt = int(r["direct_bytes"]), int(r["trunc_bytes"])
        pd, pt = float(r["psnr_direct"]), float(r["psnr_trunc"])
        print(f"| {im[:-4]} | {t} | {bd} | {bt} | {r['trunc_stop_steps']} | {pd:.2f} | {pt:.2f} | {pt - pd:+.2f} | {r['master_bytes']} | {float(r['master_enc_s']):.0f} | {float(r['trunc_dec_s']):.0f} |")
        a = agg[t]
        a["bd"].append(bd); a["bt"].append(bt); a["pd"].append(pd); a["pt"].append(pt)
        a["enc"].append(float(r["master_enc_s"])); a["dec"].append(float(r["trunc_dec_s"]))
print()
print("| target | crops | mean direct B | mean truncated B | mean direct dB | mean truncated dB | Δ dB | rate cost at equal PSNR | budget kept |")
print("|---|---|---|---|---|---|---|---|---|")
for t, a in agg.items():
    m = lambda k: sum(a[k]) / len(a[k])
    cost = (m("bt") / m("bd")) * 2 ** ((m("pd") - m("pt")) / s) - 1
    print(f"| {t} | {len(a['bd'])} | {m('bd'):.1f} | {m('bt'):.1f} | {m('pd'):.2f} | {m('pt'):.2f} | {m('pt') - m('pd'):+.2f} | {100 * cost:+.1f} % | all truncated files ≤ budget: {all(b * 8 <= float(t) * 65536 for b in a['bt'])} |")
