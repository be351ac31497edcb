#!/usr/bin/env bash
# FastBiasCorrection (DefaultQuantization's default) against BiasCorrection
# (DefaultQuantization with "use_fast_bias": false, as in POT) and no bias
# correction (MinMaxQuantization) on the built corpus models
# (scripts/corpus/build.sh): fidelity of each INT8 model to its FP32
# original on the held-apart samples (scripts/ortclient: top-1 agreement,
# cosine mean and min) and the quantization stage's seconds (report.json).
# Every layer is INT8 ("min_macs_per_element": 0, DefaultQuantization's cost
# rule off). Prints a Markdown table; keeps the models and logs in $OUT.
#
#   scripts/corpus/bias_ab.sh [NAME...]        (default: every model built)
#   CORPUS=.deps/corpus OUT=.deps/bias-ab WORKERS=2 scripts/corpus/bias_ab.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
CORPUS=${CORPUS:-.deps/corpus}
OUT=${OUT:-.deps/bias-ab}
mkdir -p "$OUT" bin
go build -o bin/ ./cmd/coordinator ./scripts/ortclient || exit 1
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls "$CORPUS"))
echo "| model | correction | quantization s | top-1 agreement | cosine mean | cosine min |"
echo "| --- | --- | --- | --- | --- | --- |"
for n in "${names[@]}"; do
  d=$CORPUS/$n
  [ -f "$d/config.json" ] || continue
  for v in fast precise none; do
    cfg=$OUT/$n.$v.json
    /usr/bin/python3 - "$d/config.json" "$cfg" "$v" "$(cd "$d" && pwd)" <<'PY'
import json, os, sys
src, dst, v, base = sys.argv[1:]
c = json.load(open(src))
c["model"]["model"] = os.path.join(base, c["model"]["model"])
ds = c["engine"]["data_source"]
ds["path"] = os.path.join(base, ds["path"])
a = c["compression"]["algorithms"][0]
# Every layer INT8 (no cost rule), so that the three corrections meet the same layers.
a["params"]["min_macs_per_element"] = 0
if v == "precise":
    a["params"]["use_fast_bias"] = False
elif v == "none":
    a["name"] = "MinMaxQuantization"
    a["params"].pop("use_fast_bias", None)
json.dump(c, open(dst, "w"), indent=1)
PY
    rm -rf "$OUT/$n.$v"
    if ! bin/coordinator quantize -c "$cfg" -o "$OUT/$n.$v" --workers "${WORKERS:-2}" --skip-eval --report-html=false >"$OUT/$n.$v.log" 2>&1; then
      echo "| $n | $v | failed: $(tail -1 "$OUT/$n.$v.log") | | | |"
      continue
    fi
    int8=$(ls "$OUT/$n.$v"/*.onnx | head -1)
    bin/ortclient --fp32 "$d/model.onnx" --int8 "$int8" --data "$d/heldout" --runs 1 --warmup 0 --threads 1 >"$OUT/$n.$v.client.json" 2>"$OUT/$n.$v.client.log"
    /usr/bin/python3 - "$OUT/$n.$v.client.json" "$OUT/$n.$v/report.json" "$n" "$v" <<'PY'
import json, sys
c, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
f = c.get("fidelity", c)
q = r.get("stage_seconds", {}).get("quantization", float("nan"))
print("| %s | %s | %.1f | %s | %s | %s |" % (sys.argv[3], sys.argv[4], q, f.get("top1_agreement", "—"), f.get("cosine_mean", "—"), f.get("cosine_min", "—")))
PY
  done
done

# The Fashion-MNIST example: accuracy on its 10,000 test images (EXAMPLE=0 skips it).
[ "${EXAMPLE:-1}" = 1 ] || exit 0
ex=$(pwd)/examples/fashion-mnist
for kind in config eval-config; do
  sed "s#\"model.onnx\"#\"$ex/model.onnx\"#; s#\"data/#\"$ex/data/#" "$ex/$kind.json" > "$OUT/fmnist-$kind.json"
done
acc() { /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("%.4f" % r["metrics"]["accuracy"])'; }
echo
echo "Fashion-MNIST example, 10,000 test images: FP32 $(bin/coordinator evaluate -c "$OUT/fmnist-eval-config.json" 2>/dev/null | acc)"
for v in fast precise none; do
  case $v in
    precise) sed 's#"stat_subset_size": 300}#"stat_subset_size": 300, "use_fast_bias": false}#' "$OUT/fmnist-config.json" ;;
    none) sed 's#"DefaultQuantization"#"MinMaxQuantization"#' "$OUT/fmnist-config.json" ;;
    *) cat "$OUT/fmnist-config.json" ;;
  esac > "$OUT/fmnist-$v.json"
  rm -rf "$OUT/fmnist.$v"
  bin/coordinator quantize -c "$OUT/fmnist-$v.json" -o "$OUT/fmnist.$v" --workers "${WORKERS:-2}" --skip-eval --report-html=false >"$OUT/fmnist.$v.log" 2>&1 || { echo "$v: failed"; continue; }
  q=$(/usr/bin/python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["stage_seconds"]["quantization"])' "$OUT/fmnist.$v/report.json")
  echo "$v: INT8 $(bin/coordinator evaluate -c "$OUT/fmnist-eval-config.json" --model "$OUT/fmnist.$v/fashion_cnn.onnx" 2>/dev/null | acc), quantization stage $q s"
done
