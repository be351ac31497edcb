#!/usr/bin/env bash
# AccuracyAwareQuantization on sensitive_cnn.onnx (algorithms/accuracyaware/testdata/
# gen_sensitive_cnn.py: 9 Conv layers, conv_6's input carries a massive constant channel).
#
#  1. DefaultQuantization vs AccuracyAwareQuantization (maximal_drop 0.01): accuracy and
#     single-thread batch-1 latency of FP32 and INT8 (report.json), reverted layers.
#  2. The AccuracyAwareQuantization stage (report.json algorithms[0].seconds) with 1 vs 2
#     local workers on the embedded NATS server (--skip-eval), runs alternated, best of
#     REPS each; the same with the in-process engine (1 vs 2 parallel requests) as the
#     control of what this machine gives two requests.
#  3. Where the time goes: BenchmarkAccuracyAwareStage/Large (app/aa_test.go) runs the same
#     stage on the same data and reports Predict calls, SetModel seconds, seconds outside the
#     engine and the workers' busy share; BenchmarkSessionsInParallel is the hardware control
#     (1 vs 2 bare ONNX Runtime sessions, no engine, no NATS).
#
# Usage: scripts/bench_aa.sh [WORKDIR] [REPS] [SHARD_SIZE]   (defaults: a temp dir, 3, 25)
# The data set (500 samples, labels.json) is made once in WORKDIR/data by the generator.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
reps=${2:-3}
shard=${3:-25}
gen=algorithms/accuracyaware/testdata/gen_sensitive_cnn.py
mkdir -p "$work"
./scripts/setup.sh >/dev/null
go build -o bin/ ./cmd/...
[ -f "$work/data/labels.json" ] || /usr/bin/python3 "$gen" --data "$work/data" --n 500 >/dev/null

config() { # config NAME PARAMS
  cat > "$work/$1.json" <<JSON
{"model": {"model_name": "sensitive_cnn", "model": "$PWD/algorithms/accuracyaware/testdata/sensitive_cnn.onnx"},
 "engine": {"data_source": {"type": "npy", "path": "data", "dtype": "float32"},
            "annotations": {"path": "data/labels.json"},
            "metric": {"name": "accuracy", "top_k": 1}, "threads": 1},
 "compression": {"algorithms": [$2]}}
JSON
}
config dq '{"name": "DefaultQuantization", "params": {"preset": "performance", "stat_subset_size": 300}}'
config aa '{"name": "AccuracyAwareQuantization", "params": {"preset": "performance", "stat_subset_size": 300, "maximal_drop": 0.01}}'

summary() { # summary REPORT
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fp, q = r["fp32"], r["int8"]
a = r["algorithms"][0]
line = "%-26s accuracy FP32 %.4f INT8 %.4f (%+.2f points)  latency FP32 %.3f ms INT8 %.3f ms (%.2fx)" % (
    a["name"], fp["metrics"]["accuracy"], q["metrics"]["accuracy"],
    100 * (q["metrics"]["accuracy"] - fp["metrics"]["accuracy"]), fp["latency_ms"], q["latency_ms"],
    fp["latency_ms"] / q["latency_ms"])
d = a["details"]
if "reverted_layers" in d:
    line += "\n%-26s reverted %s, %d of %d layers INT8, %d evaluations, initial drop %.4f, final drop %.4f" % (
        "", d["reverted_layers"], d["quantized_layers"], d["quantized_layers"] + len(d["reverted_layers"]),
        d["evaluations"], d["initial_drop"], d["final_drop"])
print(line)
PY
}

echo "== 1. accuracy and latency (500 samples, 2 local workers)"
for name in dq aa; do
  ./bin/coordinator quantize -c "$work/$name.json" -o "$work/out_$name" --workers 2 >/dev/null 2>&1
  summary "$work/out_$name/report.json"
done

echo "== 2. AccuracyAwareQuantization stage seconds, best of $reps (shard size $shard)"
declare -A best
run() { # run LABEL ARGS...
  local label=$1; shift
  ./bin/coordinator quantize -c "$work/aa.json" -o "$work/out_$label" --skip-eval --report-html=false "$@" >/dev/null 2>&1
  local s
  s=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["algorithms"][0]["seconds"])' "$work/out_$label/report.json")
  echo "  $label: $s s"
  if [ -z "${best[$label]:-}" ] || /usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$s" "${best[$label]}"; then
    best[$label]=$s
  fi
}
for i in $(seq "$reps"); do
  run fleet1 --workers 1 --shard-size "$shard"
  run fleet2 --workers 2 --shard-size "$shard"
  run inproc1 --workers 1 --in-process
  run inproc2 --workers 2 --in-process
done
same=yes
for label in fleet2 inproc1 inproc2; do
  cmp -s "$work/out_fleet1/sensitive_cnn.onnx" "$work/out_$label/sensitive_cnn.onnx" || same=no
done
[ $same = yes ] && echo "  models byte-identical (fleet 1 and 2 workers, in-process 1 and 2 requests)" || echo "  MODELS DIFFER"
/usr/bin/python3 - "${best[fleet1]}" "${best[fleet2]}" "${best[inproc1]}" "${best[inproc2]}" <<'PY'
import sys
f1, f2, i1, i2 = map(float, sys.argv[1:])
print("  best: fleet 1 worker %.2f s, 2 workers %.2f s: %.2fx" % (f1, f2, f1 / f2))
print("        in-process 1 request %.2f s, 2 requests %.2f s: %.2fx" % (i1, i2, i1 / i2))
PY

echo "== 3. breakdown (go test -bench, $reps runs each)"
FLEETCAL_AA_DATA="$work/data" go test ./app -run XXX -bench 'BenchmarkAccuracyAwareStage/Large|BenchmarkSessionsInParallel' \
  -benchtime 1x -count "$reps" 2>&1 | grep -E '^Benchmark'
