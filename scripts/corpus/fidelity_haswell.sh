#!/usr/bin/env bash
# Fidelity of the INT8 corpus models (from scripts/corpus/bench.sh, in
# .deps/corpus-bench/) natively and as an AVX2 CPU without VNNI
# (qemu-x86_64 -cpu Haswell, Debian qemu-user): 16 held-apart samples each,
# measured by scripts/ortclient. BENCHMARKS.md, "Real exported models".
#
#   scripts/corpus/fidelity_haswell.sh [NAME...]
#   BENCH=.deps/corpus-bench-on scripts/corpus/fidelity_haswell.sh   # bench.sh's OUT
set -uo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-.deps/corpus-bench}
go build -o bin/ ./scripts/ortclient || exit 1
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(ppocr_cls ppocr_det ppocr_rec unet_convtranspose encoder_opset13 fmnist_mobilenetv3 resnet18)
for n in "${names[@]}"; do
  for mode in native haswell; do
    pre=""; [ $mode = haswell ] && pre="qemu-x86_64 -cpu Haswell"
    r=$(timeout 900 $pre bin/ortclient --fp32 .deps/corpus/$n/model.onnx --int8 "$BENCH/$n/$n.onnx" --data .deps/corpus/$n/heldout --samples 16 --runs 1 --warmup 0 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print("top1=%.3f cos=%.5f min=%.4f" % (d["top1_agreement"], d["cosine_mean"], d["cosine_min"]))' 2>&1)
    echo "$n $mode $r"
  done
done
