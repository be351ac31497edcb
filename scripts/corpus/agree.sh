#!/usr/bin/env bash
# Compares the speed-up report.json claims with an independent client's:
# quantizes each corpus model with `coordinator quantize` (evaluation on:
# report.json's latency, FP32 and INT8 alternated on calibration sample 0,
# engine.threads from the model's config), then times the same two files
# with scripts/ortclient (its own sessions, default options but the thread
# count, FP32 and INT8 alternated, the first held-apart sample). Prints a
# Markdown table (BENCHMARKS.md, "report.json against an independent
# client"): each speed-up as the median of per-round FP32/INT8 ratios with
# its 10th–90th percentile, and their difference relative to ortclient's.
#
#   scripts/corpus/agree.sh [NAME...]          (default: every model built)
#   RUNS=301 OUT=.deps/corpus-agree WORKERS=2 scripts/corpus/agree.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-.deps/corpus-agree}
mkdir -p "$OUT" bin
go build -o bin/ ./cmd/coordinator ./scripts/ortclient || exit 1
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls .deps/corpus))
echo "| model | report.json speed-up (p10–p90), rounds | ortclient speed-up (p10–p90), rounds | difference |"
echo "|---|---|---|---|"
for n in "${names[@]}"; do
  d=.deps/corpus/$n
  [ -f "$d/config.json" ] || continue
  rm -rf "$OUT/$n"
  if ! bin/coordinator quantize -c "$d/config.json" -o "$OUT/$n" --workers "${WORKERS:-2}" >"$OUT/$n.quantize.log" 2>&1; then
    echo "| $n | quantize failed: $(tail -1 "$OUT/$n.quantize.log") | | |"
    continue
  fi
  int8=$(ls "$OUT/$n"/*.onnx | head -1)
  threads=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["engine"].get("threads", 0))' "$d/config.json")
  if ! bin/ortclient --fp32 "$d/model.onnx" --int8 "$int8" --data "$d/heldout" --samples 1 --runs "${RUNS:-301}" \
    --threads "$threads" >"$OUT/$n.client.json" 2>"$OUT/$n.client.log"; then
    echo "| $n | | ortclient failed: $(tail -1 "$OUT/$n.client.log") | |"
    continue
  fi
  /usr/bin/python3 - "$OUT/$n/report.json" "$OUT/$n.client.json" "$n" <<'PY'
import json, sys
rep, cli, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
lat = rep.get("latency")
if not lat:
    print(f"| {n} | no latency in report.json | | |")
    sys.exit()
r = lat["speedup"][0]
c, (c10, c90) = cli["speedup_median_of_ratios"], cli["speedup_p10_p90"]
print(f"| {n} | {r['median_ms']:.3f} ({r['p10_ms']:.2f}–{r['p90_ms']:.2f}), {lat['rounds']} | "
      f"{c:.3f} ({c10:.2f}–{c90:.2f}), {cli['latency_runs']} | {(r['median_ms'] - c) / c * 100:+.1f} % |")
PY
done
