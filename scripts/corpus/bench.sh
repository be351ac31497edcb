#!/usr/bin/env bash
# Quantizes every built corpus model (scripts/corpus/build.sh) with
# `coordinator quantize` (DefaultQuantization, 2 local workers) and measures
# each against its FP32 original with scripts/ortclient, an independent
# ONNX Runtime client: fidelity on the held-apart samples (top-1 agreement,
# cosine), latency (1 thread, FP32 and INT8 alternated, median and spread),
# ONNX Runtime's kernel profile (Conv layers fused to QLinearConv, weights
# dequantized at run time), onnx.checker, calibration seconds. Prints a
# Markdown table (BENCHMARKS.md "Real exported models") and keeps every log
# and JSON in .deps/corpus-bench/.
#
#   scripts/corpus/bench.sh [NAME...]     (default: every model built)
#   RUNS=41 WORKERS=2 scripts/corpus/bench.sh
#   PARAMS='{"min_macs_per_element": 0}' OUT=.deps/corpus-bench-off scripts/corpus/bench.sh
#
# PARAMS (JSON object) is merged into the params of the config's first
# algorithm (written next to it as config.bench.json); OUT is where logs,
# JSON and models go (default .deps/corpus-bench).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-.deps/corpus-bench}
mkdir -p "$OUT" bin
go build -o bin/ ./cmd/coordinator ./scripts/ortclient || exit 1
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls .deps/corpus))
for n in "${names[@]}"; do
  d=.deps/corpus/$n
  [ -f "$d/config.json" ] || continue
  rm -rf "$OUT/$n"
  cfg=$d/config.json
  if [ -n "${PARAMS:-}" ]; then
    cfg=$d/config.bench.json
    /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["compression"]["algorithms"][0].setdefault("params", {}).update(json.loads(sys.argv[2])); json.dump(c, open(sys.argv[3], "w"), indent=2)' \
      "$d/config.json" "$PARAMS" "$cfg" || exit 1
  fi
  if ! bin/coordinator quantize -c "$cfg" -o "$OUT/$n" --workers "${WORKERS:-2}" --skip-eval >"$OUT/$n.quantize.log" 2>&1; then
    echo "{\"error\": $(tail -1 "$OUT/$n.quantize.log" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}" >"$OUT/$n.client.json"
    continue
  fi
  int8=$(ls "$OUT/$n"/*.onnx | head -1)
  bin/ortclient --fp32 "$d/model.onnx" --int8 "$int8" --data "$d/heldout" --runs "${RUNS:-21}" --threads 1 --profile \
    >"$OUT/$n.client.json" 2>"$OUT/$n.client.log" ||
    echo "{\"error\": \"ortclient: $(tail -1 "$OUT/$n.client.log" | tr -d '"')\"}" >"$OUT/$n.client.json"
  # A proto, not the path: with a path, full_check's shape inference writes
  # the inferred value_info back into the file checked.
  /usr/bin/python3 -c 'import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$int8" \
    >"$OUT/$n.checker.log" 2>&1 && echo ok >"$OUT/$n.checker" || echo FAIL >"$OUT/$n.checker"
done
/usr/bin/python3 - "$OUT" "${names[@]}" <<'EOF'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
man = json.load(open("testdata/corpus/manifest.json"))["models"]
print("| model | exporter, opset | INT8 layers (Conv/MatMul/Gemm) | left in float (top ops) | fidelity | FP32 ms | INT8 ms | speed-up (p10–p90) | QLinearConv / Conv layers; weight DQ at run time | checker | calib. s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    m = man.get(n, {})
    exp = m.get("exporter", {}).get("tool", "?").split(" ")[0].rstrip(",")
    row = [n, f"{exp}, {m.get('opset', '?')}"]
    try:
        c = json.load(open(f"{out}/{n}.client.json"))
    except Exception as e:
        c = {"error": str(e)}
    if "error" in c:
        print("| " + " | ".join(row) + f" | failed: {c['error'][:160]} |" + " |" * 8)
        continue
    rep = json.load(open(f"{out}/{n}/report.json"))
    det = rep["algorithms"][0]["details"]
    mm = det.get("MinMaxQuantization", det)
    layers = mm.get("layers") or []
    ops = {}
    for l in layers:
        ops[l["op"]] = ops.get(l["op"], 0) + 1
    weighted = {k: v for k, v in ops.items() if k in ("Conv", "MatMul", "Gemm")}
    fl = sorted((mm.get("float_ops") or {}).items(), key=lambda kv: -kv[1])[:4]
    task = m.get("task", "")
    fid = f"top-1 {c['top1_agreement']*100:.1f}%" if task.startswith("classifier") else ""
    fid = (fid + ", " if fid else "") + f"cos {c['cosine_mean']:.4f} (min {c['cosine_min']:.3f})"
    p = c.get("profile") or {}
    k = p.get("int8_kernels") or {}
    convs = ops.get("Conv", 0)
    wdq = len(p.get("weight_dequantize_at_runtime") or [])
    secs = rep["stage_seconds"].get("quantization", 0)
    slow = mm.get("slower_in_int8_left_in_float") or []
    row += [(", ".join(f"{v} {k_}" for k_, v in sorted(weighted.items())) or "0") + (f" ({len(slow)} by the cost rule in float)" if slow else ""),
            ", ".join(f"{k_} {v}" for k_, v in fl) or "-", fid,
            f"{c['fp32']['median_ms']:.2f}", f"{c['int8']['median_ms']:.2f}",
            f"{c['speedup_median_of_ratios']:.2f}× ({c['speedup_p10_p90'][0]:.2f}–{c['speedup_p10_p90'][1]:.2f})",
            f"{k.get('QLinearConv', 0)} / {convs}; {wdq}",
            open(f"{out}/{n}.checker").read().strip(), f"{secs:.1f}"]
    print("| " + " | ".join(row) + " |")
EOF
