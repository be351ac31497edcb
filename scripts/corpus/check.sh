#!/usr/bin/env bash
# Runs bin/coordinator inspect, evaluate (labelled models) and quantize on corpus models
# and prints one line per model and step: ok, or the error's last line. Logs go to
# .deps/corpus-check/<name>.<step>.log. Build first: go build -o bin/ ./cmd/coordinator.
#
#   scripts/corpus/check.sh [NAME...]      (default: every model built in .deps/corpus)
set -uo pipefail
cd "$(dirname "$0")/../.."
LOG=.deps/corpus-check
mkdir -p "$LOG"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls .deps/corpus))
for n in "${names[@]}"; do
  d=.deps/corpus/$n
  [ -f "$d/config.json" ] || continue
  run() { # step cmd...
    local step=$1; shift
    if timeout 1200 "$@" >"$LOG/$n.$step.log" 2>&1; then
      echo "$n $step ok"
    else
      echo "$n $step FAIL: $(grep -v '^\s*$' "$LOG/$n.$step.log" | tail -1)"
    fi
  }
  run inspect bin/coordinator inspect "$d/model.onnx"
  grep -q '"metric"' "$d/config.json" && run evaluate bin/coordinator evaluate -c "$d/config.json" --workers 1
  rm -rf "/tmp/q-$n"
  run quantize bin/coordinator quantize -c "$d/config.json" -o "/tmp/q-$n" --workers 1
done
