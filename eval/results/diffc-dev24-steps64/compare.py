"""Prints NOTE.md's table: 64-step DiffC-A against the 24-step rows of diffc-dev24-bands."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
import csv, collections
old=list(csv.DictReader(open(os.path.join(HERE, '..', 'diffc-dev24-bands', 'results.csv'))))
new=list(csv.DictReader(open(os.path.join(HERE, 'results.csv'))))
M='photo-unet-s-wiener-bands'
def key(r): return (r['image'], r['target_bpp'])
F={key(r):r for r in old if r['codec']==f'diffc-f@{M}'}
A={key(r):r for r in old if r['codec']==f'diffc-a@{M}'}
A64={key(r):r for r in new if r['codec']==f'diffc-a:64@{M}'}
print("| target bpp | crops | DiffC-F (24 steps) | DiffC-A (24 steps) | DiffC-A (64 steps) | F − A(24) | F − A(64) | F > A(64) on | A(64) decode s |")
print("|---|---|---|---|---|---|---|---|---|")
for t in ['0.05','0.1']:
    ks=[k for k in A64 if k[1]==t]
    assert all(F[k]['bytes']==A64[k]['bytes'] for k in ks), 'bitstreams differ'
    f=[float(F[k]['psnr']) for k in ks]; a=[float(A[k]['psnr']) for k in ks]; a64=[float(A64[k]['psnr']) for k in ks]
    n=len(ks); mf,ma,ma64=sum(f)/n,sum(a)/n,sum(a64)/n
    wins=sum(x>y for x,y in zip(f,a64))
    dec=sum(float(A64[k]['dec_s']) for k in ks)/n
    print(f"| {t} | {n} | {mf:.2f} | {ma:.2f} | {ma64:.2f} | {mf-ma:+.2f} | {mf-ma64:+.2f} | {wins} of {n} | {dec:.0f} |")
