"""Turns the JSON lines of benches/reconcile-table.sh into the markdown table of BENCHMARKS.md."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
print("| N | D | mode | fast path | RTT | bytes | CPU ms (busier side) | cold index open ms |")
print("|---:|---:|---|---|---:|---:|---:|---:|")
for r in rows:
    print(
        f"| {r['entries']:,} | {r['diffs']:,} | {r['mode']} | {'yes' if r['fast_path'] else ''} "
        f"| {r['rtt']} | {r['bytes']:,} | {r['cpu_ms']:.2f} | {r['cold_open_ms']:.2f} |"
    )
