"""The picture sheet of this run's NOTE: original | DiffC-F 0.05 | JPEG XL 0.05 | DiffC-F 0.1 | JPEG XL 0.1
for the flat crops (08, 16, 17, 20), the out-of-focus plant (06) and bare wood (11).
Needs the decoded images the run wrote with --save-images (not committed):
    python3 eval/results/diffc-dev24-m/sheet.py /tmp/runs/diffc-dev24-m/images eval/results/diffc-dev24-m/sheet.png
"""
import os, sys
from PIL import Image

images, out = sys.argv[1], sys.argv[2]
crops = ["06", "08", "11", "16", "17", "20"]
data = os.path.expanduser("~/.cache/diffc/dev24/crop256")
cols = [None] + [(c, r) for r in ("0.05", "0.1") for c in ("diffc-f@photo-unet-m-wiener-bands", "jxl")]
W, G = 256, 4
sheet = Image.new("RGB", (len(cols) * (W + G) - G, len(crops) * (W + G) - G), "white")
for i, crop in enumerate(crops):
    for j, col in enumerate(cols):
        p = f"{data}/{crop}.png" if col is None else f"{images}/{col[0]}/{col[1]}/{crop}.png.png"
        sheet.paste(Image.open(p).convert("RGB"), (j * (W + G), i * (W + G)))
sheet.save(out, optimize=True)
