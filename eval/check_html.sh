#!/usr/bin/env bash
# Loads OUT/report.html (written by `diffc eval`) in Debian's headless chromium and checks that
# the page's script ran to the end without an error, that the results table has the expected
# number of rows and that the viewer's pictures loaded; then takes a screenshot.
#   usage: eval/check_html.sh OUT [EXPECTED_ROWS] [SCREENSHOT.png]
# (screenshot default: OUT/report-screenshot.png). Needs chromium (eval/setup.sh installs it).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT [EXPECTED_ROWS] [SCREENSHOT.png]" >&2; exit 2; }
out=$(cd "$1" && pwd)
want=${2:-}
shot=${3:-$out/report-screenshot.png}
page="$out/report.html"
[ -s "$page" ] || { echo "check_html: no $page" >&2; exit 1; }
chrome=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chrome" ] || { echo "check_html: chromium not installed (eval/setup.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--headless --disable-gpu --no-sandbox --disable-dev-shm-usage --no-first-run
  --user-data-dir="$tmp/profile" --allow-file-access-from-files --hide-scrollbars
  --virtual-time-budget=10000)
fail() { echo "check_html: $*" >&2; exit 1; }
timeout 180 "$chrome" "${flags[@]}" --dump-dom "file://$page" >"$tmp/dom.html" 2>"$tmp/err.log" ||
  { cat "$tmp/err.log" >&2; fail "chromium --dump-dom failed"; }
body=$(grep -o '<body[^>]*>' "$tmp/dom.html" | head -n 1 || true)
echo "check_html: $body"
[ -n "$body" ] || fail "no <body> in the dumped DOM"
if grep -q 'data-error' <<<"$body" || grep -q 'id="js-error"' "$tmp/dom.html"; then
  fail "script error: $(grep -o 'data-error="[^"]*"' <<<"$body")"
fi
grep -q 'data-ready="1"' <<<"$body" || fail "the page's script did not finish (no data-ready)"
attr() { sed -n "s/.* $1=\"\\([0-9]*\\)\".*/\\1/p" <<<"$body"; }
rows=$(attr data-rows)
[ -z "$want" ] || [ "$rows" = "$want" ] || fail "table has ${rows:-no} rows, expected $want"
loaded=$(attr data-loaded)
[ "${loaded:-0}" -ge 2 ] || fail "the viewer's pictures did not load (data-loaded=${loaded:-0})"
n_tr=$(grep -o '<tr' "$tmp/dom.html" | wc -l)
echo "check_html: ok: $rows table rows ($n_tr <tr> in the DOM), $(attr data-viewer-images) viewer images, $loaded pictures loaded"
timeout 180 "$chrome" "${flags[@]}" --window-size=1400,2600 --screenshot="$shot" "file://$page" \
  >/dev/null 2>"$tmp/shot.log" || { cat "$tmp/shot.log" >&2; fail "screenshot failed"; }
[ -s "$shot" ] || fail "no screenshot written"
echo "check_html: screenshot $shot"
