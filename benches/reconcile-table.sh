#!/usr/bin/env bash
# Runs the reconcile benchmark over the BENCHMARKS.md grid and prints one JSON object a line.
#   bash benches/reconcile-table.sh > reconcile.jsonl
#   python3 benches/reconcile-table.py < reconcile.jsonl     # the markdown table
# Each row runs twice on the same two stores: first in the process that built them (the
# issue's measurement), then in a fresh process that reopens them, as after a server restart
# (cold database cache, new heap); that second run's line has "restart": true.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p archive-benches --bin reconcile
bin="${CARGO_TARGET_DIR:-target}/release/reconcile"
stores="${STORES:-$(mktemp -d /var/tmp/reconcile-table.XXXXXX)}"
trap 'rm -rf "$stores"' EXIT
row() {
  rm -rf "$stores/row"
  "$bin" "$@" --store-dir "$stores/row" --json
  "$bin" "$@" --store-dir "$stores/row" --json | sed 's/^{/{"restart":true,/'
}
for n in 10000 100000 1000000; do
  for mode in scattered newest; do
    for d in 0 1 10 100 1000 10000; do
      row --entries "$n" --diffs "$d" --mode "$mode"
    done
  done
  row --entries "$n" --diffs 0 --mode scattered --fast-path
  row --entries "$n" --diffs 1000 --mode newest --fast-path
done
