#!/usr/bin/env bash
# The loss window of planned failovers on the netns runtime and the Docker runtime, in one run:
# ROUNDS rounds, each a `ferry lab demo --moves MOVES` on netns then one on Docker (alternating,
# so background load hits both), every move's loss window and its parts pooled per runtime.
# Prints a markdown table of medians and max per part and the Docker - netns difference of the
# medians (docs/benchmarks.md, "Failover loss window: netns and Docker runtimes").
#
#   scripts/lab-runtimes.sh [ROUNDS] [MOVES]     # root; FERRY=path/to/ferry (default: release)
#
# Needs the Docker engine and the node image (`ferry lab image build`); python3 for the table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
moves=${2:-10}
ferry=${FERRY:-target/release/ferry}
out=$(mktemp -d /tmp/ferry-lab-runtimes.XXXXXX)
echo "lab-runtimes: $rounds rounds of $moves moves per runtime, reports in $out" >&2
"$ferry" lab image build >&2
for r in $(seq 1 "$rounds"); do
    for rt in netns docker; do
        echo "lab-runtimes: round $r, $rt" >&2
        "$ferry" lab demo --runtime "$rt" --instance "rt$rt" --moves "$moves" \
            --out "$out/$rt-$r" --json >"$out/$rt-$r.json" 2>"$out/$rt-$r.log"
    done
done
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
parts = ["loss", "cutover", "ferry", "routers", "dataplane"]
def pooled(rt):
    vals = {p: [] for p in parts + ["not_frr"]}
    converged = total = 0
    for r in range(1, rounds + 1):
        rep = json.load(open(f"{out}/{rt}-{r}/report.json"))
        s = rep["summary"]
        converged += s["converged"]; total += s["moves"]
        for m in rep["moves"]:
            if m.get("loss_ms") is None or not m.get("parts"):
                continue
            p = m["parts"]
            vals["loss"].append(m["loss_ms"])
            for k in parts[1:]:
                vals[k].append(p[k + "_ms"])
            # Everything in the loss window that is not FRR's (two bgpd hops and zebra).
            vals["not_frr"].append(m["loss_ms"] - p["routers_ms"])
    return vals, converged, total
a, ac, at = pooled("netns")
b, bc, bt = pooled("docker")
print(f"netns: {ac} of {at} moves converged; docker: {bc} of {bt}")
print("| part | netns median | docker median | docker - netns | netns max | docker max |")
print("|---|---|---|---|---|---|")
names = {"loss": "loss window", "cutover": "cutover", "ferry": "ferry (API call -> UPDATE at r1/r2)",
         "routers": "routers (FRR: UPDATE at r1/r2 -> r3 kernel route)", "dataplane": "data plane",
         "not_frr": "loss window - FRR's part"}
for k in parts + ["not_frr"]:
    if not a[k] or not b[k]:
        continue
    ma, mb = statistics.median(a[k]), statistics.median(b[k])
    print(f"| {names[k]} | {ma:.2f} ms | {mb:.2f} ms | {mb - ma:+.2f} ms | {max(a[k]):.2f} ms | {max(b[k]):.2f} ms |")
EOF
