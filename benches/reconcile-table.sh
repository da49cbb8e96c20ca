#!/usr/bin/env bash
# Runs the reconcile benchmark over the BENCHMARKS.md grid and prints one JSON object a line.
#   bash benches/reconcile-table.sh > reconcile.jsonl
#   python3 benches/reconcile-table.py < reconcile.jsonl     # the markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p archive-benches --bin reconcile
bin="${CARGO_TARGET_DIR:-target}/release/reconcile"
for n in 10000 100000 1000000; do
  for mode in scattered newest; do
    for d in 0 1 10 100 1000 10000; do
      "$bin" --entries "$n" --diffs "$d" --mode "$mode" --json
    done
  done
  "$bin" --entries "$n" --diffs 0 --mode scattered --fast-path --json
  "$bin" --entries "$n" --diffs 1000 --mode newest --fast-path --json
done
