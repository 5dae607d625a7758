#!/usr/bin/env bash
# Runs the fuzz targets: `fuzz/run.sh SECONDS [TARGET]` fuzzes each target (or one) for SECONDS,
# one after another at nice 10, prints the executions per target and appends a line per target
# to fuzz/runs.tsv (date, target, seconds, execs, crashes). Needs cargo-fuzz
# (`cargo install cargo-fuzz`); no nightly: RUSTC_BOOTSTRAP=1 enables the flags it needs.
# -a: debug assertions (an overflow panics); -s none: no sanitizer (safe Rust; faster).
# Crashes land in fuzz/artifacts/TARGET/: minimise with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O -a -s none TARGET fuzz/artifacts/TARGET/crash-…
# then fix, and commit the input under tests/fixtures/fuzz/TARGET/ (tests/it/fuzz_replay.rs).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET]}
targets=${2:-"container info diffc_pfr diffc_uq diffc_mixed hfd_mse hfd"}
export RUSTC_BOOTSTRAP=1
flags=(-O -a -s none)
# -j 1: the machine is shared
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo fuzz build "${flags[@]}" >&2
[ -f runs.tsv ] || printf 'date\ttarget\tseconds\texecs\tcrashes\n' > runs.tsv
total=0
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(ls "artifacts/$t" | wc -l)
  log=$(mktemp)
  # the seeds are read alongside the growing corpus (only corpus/ is written to)
  nice -n 10 cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  execs=${execs:-0}
  crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
  if [ "$crashes" -gt 0 ] || grep -q 'ERROR: libFuzzer\|panicked at' "$log"; then
    echo "== $t: crash; log tail:" >&2
    tail -30 "$log" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "$execs" "$crashes" >> runs.tsv
  printf '%-12s %10s execs in %ss, %s crashes\n' "$t" "$execs" "$secs" "$crashes"
  total=$((total + execs))
  rm -f "$log"
done
echo "total: $total executions"
