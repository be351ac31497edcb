#!/usr/bin/env bash
# Times two INT8 versions of each corpus model against the FP32 original in
# the same alternated rounds (scripts/ortclient --other): the speed-ups
# before and after a change come from the same runs, which matters on a
# shared, noisy machine. Run scripts/corpus/bench.sh twice first, e.g.
#
#   PARAMS='{"min_macs_per_element": 0}' OUT=.deps/corpus-bench-off scripts/corpus/bench.sh
#   OUT=.deps/corpus-bench-on scripts/corpus/bench.sh
#   scripts/corpus/ab.sh .deps/corpus-bench-off .deps/corpus-bench-on [NAME...]
#
# RUNS (default 61) alternated rounds, 1 thread. Prints a Markdown table:
# speed-up of A, of B (median of per-round FP32/INT8 ratios, 10th–90th
# percentile) and B against A (median of per-round A/B time ratios).
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
A=$1 B=$2
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls .deps/corpus))
mkdir -p bin
go build -o bin/ ./scripts/ortclient || exit 1
echo "| model | A: speed-up (p10–p90) | B: speed-up (p10–p90) | B vs A |"
echo "|---|---|---|---|"
for n in "${names[@]}"; do
  a=$(ls "$A/$n"/*.onnx 2>/dev/null | head -1) b=$(ls "$B/$n"/*.onnx 2>/dev/null | head -1)
  [ -n "$a" ] && [ -n "$b" ] || continue
  bin/ortclient --fp32 ".deps/corpus/$n/model.onnx" --int8 "$b" --other "$a" --data ".deps/corpus/$n/heldout" \
    --samples 1 --runs "${RUNS:-61}" --threads 1 >"$B/$n.ab.json" 2>"$B/$n.ab.log" || { echo "| $n | failed: $(tail -1 "$B/$n.ab.log") | | |"; continue; }
  /usr/bin/python3 - "$B/$n.ab.json" "$n" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); o = c["other"]
f = lambda s, p: f"{s:.2f}× ({p[0]:.2f}–{p[1]:.2f})"
print(f"| {sys.argv[2]} | {f(o['speedup_median_of_ratios'], o['speedup_p10_p90'])} | {f(c['speedup_median_of_ratios'], c['speedup_p10_p90'])} | {o['int8_vs_other_median_of_ratios']:.2f}× |")
PY
done
