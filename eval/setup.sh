#!/usr/bin/env bash
# Installs what `diffc eval` needs beyond the Rust build:
#  - Debian baseline tools: cwebp/dwebp (webp), avifenc/avifdec (libavif-bin), cjxl/djxl (libjxl-tools);
#  - Debian's chromium, for the headless check of report.html (eval/check_html.sh);
#  - the FID Inception-v3 weights, converted to ~/.cache/diffc/inception.safetensors
#    (or $DIFFC_INCEPTION) by eval/inception/convert.py (python3 + pip, no PyTorch).
# Run as root (or with sudo). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for t in cwebp:webp avifenc:libavif-bin cjxl:libjxl-tools chromium:chromium; do
  command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
W="${DIFFC_INCEPTION:-$HOME/.cache/diffc/inception.safetensors}"
if [ ! -s "$W" ]; then
  python3 eval/inception/convert.py --out "$W"
fi
echo "eval setup ok: $(command -v cwebp) $(command -v avifenc) $(command -v cjxl) $(command -v chromium); weights $W"
