"""Turns the JSON lines of benches/reconcile-table.sh into the markdown table of BENCHMARKS.md;
with --params, those of benches/reconcile-params.sh into the parameter sweep's table."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]


def cell(r):
    return f"{r['rtt']} RTT, {r['bytes']:,} B, {r['cpu_ms']:.1f} ms"


if "--params" in sys.argv[1:]:
    print(
        "| fanout | id-list threshold | D = 1 scattered | D = 1,000 scattered "
        "| D = 1,000 newest |"
    )
    print("|---:|---:|---|---|---|")
    settings = {}
    for r in rows:
        settings.setdefault((r["fanout"], r["threshold"]), []).append(cell(r))
    for (fanout, threshold), cells in settings.items():
        print(f"| {fanout} | {threshold} | " + " | ".join(cells) + " |")
    sys.exit(0)

restarts = {
    (r["entries"], r["diffs"], r["mode"], r["fast_path"]): r for r in rows if r.get("restart")
}
print(
    "| N | D | mode | fast path | RTT | bytes | CPU ms (busier side) "
    "| CPU ms after a restart | cold index open ms |"
)
print("|---:|---:|---|---|---:|---:|---:|---:|---:|")
for r in rows:
    if r.get("restart"):
        continue
    again = restarts.get((r["entries"], r["diffs"], r["mode"], r["fast_path"]))
    after = f"{again['cpu_ms']:.2f}" if again else ""
    print(
        f"| {r['entries']:,} | {r['diffs']:,} | {r['mode']} | {'yes' if r['fast_path'] else ''} "
        f"| {r['rtt']} | {r['bytes']:,} | {r['cpu_ms']:.2f} | {after} | {r['cold_open_ms']:.2f} |"
    )
