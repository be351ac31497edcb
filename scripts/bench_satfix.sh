#!/usr/bin/env bash
# Fashion-MNIST example accuracy on the 10,000 test images for saturation_fix no /
# first_layer / all: quantized natively and under `qemu-x86_64 -cpu Haswell` (an AVX2 CPU
# without VNNI), each model evaluated natively and under qemu, and the natively and
# qemu-calibrated models compared byte for byte. Under qemu each evaluation takes ~1.5 min
# and each quantization ~0.5 min on an idle core.
# Usage: scripts/bench_satfix.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work"
command -v qemu-x86_64 >/dev/null || { echo "bench_satfix: qemu-x86_64 missing (scripts/setup.sh --test installs qemu-user)" >&2; exit 1; }
go build -o "$work/" ./cmd/coordinator
ex=$(pwd)/examples/fashion-mnist
haswell() { qemu-x86_64 -cpu Haswell "$@" 2>/dev/null; }
acc() { /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print("%.4f" % r["metrics"]["accuracy"])'; }
for kind in config eval-config; do
  sed "s#\"model.onnx\"#\"$ex/model.onnx\"#; s#\"data/#\"$ex/data/#" "$ex/$kind.json" > "$work/$kind.json"
done
echo "FP32: native $("$work/coordinator" evaluate -c "$work/eval-config.json" 2>/dev/null | acc)," \
  "qemu Haswell $(haswell "$work/coordinator" evaluate -c "$work/eval-config.json" --workers 2 | acc)"
echo "saturation_fix | calibrated on | INT8 native | INT8 qemu Haswell"
for fix in no first_layer all; do
  sed "s#\"stat_subset_size\": 300}#\"stat_subset_size\": 300, \"saturation_fix\": \"$fix\"}#" "$work/config.json" > "$work/config-$fix.json"
  "$work/coordinator" quantize -c "$work/config-$fix.json" -o "$work/native-$fix" --in-process --skip-eval --report-html=false >/dev/null 2>&1
  haswell "$work/coordinator" quantize -c "$work/config-$fix.json" -o "$work/haswell-$fix" --in-process --skip-eval --report-html=false >/dev/null
  for cal in native haswell; do
    m="$work/$cal-$fix/fashion_cnn.onnx"
    if [ "$cal" = haswell ] && cmp -s "$m" "$work/native-$fix/fashion_cnn.onnx"; then
      echo "$fix | qemu Haswell | (byte-identical to the native model)"
      continue
    fi
    echo "$fix | $cal | $("$work/coordinator" evaluate -c "$work/eval-config.json" --model "$m" 2>/dev/null | acc)" \
      "| $(haswell "$work/coordinator" evaluate -c "$work/eval-config.json" --model "$m" --workers 2 | acc)"
  done
done
