#!/usr/bin/env bash
# Quantizes a ResNet-18-style model (3.6 GFLOP per sample, random weights, made by
# examples/resnet/gen_resnet.py with Debian's python3-torch) on 16 random samples and
# prints FP32 vs INT8 latency (ONNX Runtime, 1 thread, batch 1), measured in one run.
# Usage: scripts/bench_resnet.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work/calib"
./scripts/setup.sh >/dev/null
[ -f "$work/resnet.onnx" ] || /usr/bin/python3 examples/resnet/gen_resnet.py "$work/resnet.onnx" >/dev/null
/usr/bin/python3 - "$work/calib" <<'PY'
import sys, numpy as np
r = np.random.default_rng(0)
for i in range(16):
    np.save(f"{sys.argv[1]}/{i:03d}.npy", r.standard_normal((1, 3, 224, 224)).astype(np.float32))
PY
cat > "$work/config.json" <<JSON
{"model": {"model_name": "resnet", "model": "resnet.onnx"},
 "engine": {"data_source": {"type": "npy", "path": "calib"}},
 "compression": {"algorithms": [{"name": "DefaultQuantization",
   "params": {"preset": "performance", "stat_subset_size": 16}}]}}
JSON
go build -o bin/ ./cmd/coordinator
./bin/coordinator quantize -c "$work/config.json" -o "$work/out" 2>/dev/null
