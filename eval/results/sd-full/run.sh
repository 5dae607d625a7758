#!/usr/bin/env bash
# Full-size Stable Diffusion check on random weights (issue 14): SD 2.1-v load + one UNet
# forward, a 256² round trip on SD 2.1-v, and a 512² round trip on SD 1.5, each under
# /usr/bin/time -v. Folders from notebooks/make_sd_random_full.py. Output: eval/results/sd-full/*.txt
# Usage: bash eval/results/sd-full/run.sh   (from the repo root, after cargo build --release)
set -euo pipefail
R=eval/results/sd-full
SD=${SD_RANDOM:-$HOME/.cache/diffc/sd-random}
BIN=target/release/diffc
T=$(mktemp -d)
python3 - "$T" <<'PY'
import sys
from PIL import Image
im = Image.open("eval/samples/astronaut-256.png").convert("RGB")
im.resize((512, 512), Image.LANCZOS).save(sys.argv[1] + "/astronaut-512.png")
PY
timed() { local name=$1; shift; { echo "\$ $*"; /usr/bin/time -v "$@" 2>&1; } > "$R/$name.txt" 2>&1 || { echo "FAILED: $name"; tail "$R/$name.txt"; }; grep -E "Elapsed|Maximum resident|User time|System time" "$R/$name.txt"; }
echo "load average before: $(cat /proc/loadavg)" > "$R/load.txt"
timed sd21-speed cargo run -q --release --example sd_speed -- "$SD/sd21" 64
timed sd21-encode-256 $BIN encode eval/samples/astronaut-256.png -o "$T/sd21.dfc" --bpp 0.05 --model "sd:$SD/sd21" -q
$BIN info "$T/sd21.dfc" > "$R/sd21-info.txt"
timed sd21-decode-256 $BIN decode "$T/sd21.dfc" -o "$T/sd21.png" --model "sd:$SD/sd21" -q
timed sd15-encode-512 $BIN encode "$T/astronaut-512.png" -o "$T/sd15-512.dfc" --bpp 0.05 --model "sd:$SD/sd15" -q
$BIN info "$T/sd15-512.dfc" > "$R/sd15-512-info.txt"
timed sd15-decode-512 $BIN decode "$T/sd15-512.dfc" -o "$T/sd15-512.png" --model "sd:$SD/sd15" -q
echo "load average after: $(cat /proc/loadavg)" >> "$R/load.txt"
rm -rf "$T"
