#!/usr/bin/env bash
# The parameter sweep behind the defaults (fanout 16, id-list threshold 32): N = 100,000.
#   bash benches/reconcile-params.sh > params.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p archive-benches --bin reconcile
bin="${CARGO_TARGET_DIR:-target}/release/reconcile"
for ft in "8 32" "16 32" "32 32" "16 16" "16 64"; do
  set -- $ft
  for case in "1 scattered" "1000 scattered" "1000 newest"; do
    set -- $ft $case
    "$bin" --entries 100000 --fanout "$1" --threshold "$2" --diffs "$3" --mode "$4" --json
  done
done
