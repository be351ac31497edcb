#!/usr/bin/env bash
# Installs what fleetcal needs to build, run and test, skipping what is already there:
#   - the ONNX Runtime shared library (from the npm package onnxruntime-node, checked by SHA-256)
#     into .deps/onnxruntime/ (ignored by git);
#   - the Go modules of go.mod.
#   - with --test: Debian's python3-onnx, prometheus and systemd, whose model
#     checker, promtool and systemd-analyze the tests run, and qemu-user,
#     whose `qemu-x86_64 -cpu Haswell` runs the saturation test as a CPU
#     without VNNI (the product itself needs none of them).
# Set ONNXRUNTIME_LIB to use another copy of libonnxruntime.so instead.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_NPM_VERSION=1.30.0
ORT_SO_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ORT_DIR=.deps/onnxruntime
ORT_SO="$ORT_DIR/libonnxruntime.so.1"

have_ort() { [ -f "$ORT_SO" ] && echo "$ORT_SO_SHA256  $ORT_SO" | sha256sum -c --status; }

if [ -n "${ONNXRUNTIME_LIB:-}" ]; then
  [ -f "$ONNXRUNTIME_LIB" ] || { echo "setup: ONNXRUNTIME_LIB=$ONNXRUNTIME_LIB: no such file" >&2; exit 1; }
  echo "setup: using ONNXRUNTIME_LIB=$ONNXRUNTIME_LIB"
elif have_ort; then
  echo "setup: ONNX Runtime $ORT_NPM_VERSION already in $ORT_DIR"
else
  command -v npm >/dev/null || { echo "setup: npm is needed to fetch onnxruntime-node@$ORT_NPM_VERSION" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "setup: fetching onnxruntime-node@$ORT_NPM_VERSION (ONNX Runtime shared library)"
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_NPM_VERSION" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  mkdir -p "$ORT_DIR"
  cp "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_SO.tmp"
  got=$(sha256sum "$ORT_SO.tmp" | cut -d' ' -f1)
  if [ "$got" != "$ORT_SO_SHA256" ]; then
    rm -f "$ORT_SO.tmp"
    echo "setup: libonnxruntime.so.1 has SHA-256 $got, want $ORT_SO_SHA256; refusing it" >&2
    exit 1
  fi
  mv "$ORT_SO.tmp" "$ORT_SO"
  echo "setup: installed $ORT_SO"
fi

go mod download

if [ "${1:-}" = "--test" ]; then
  # Debian packages the tests use as outside checkers: python3-onnx (the ONNX
  # model checker), prometheus (promtool lints metrics and rule files),
  # systemd (systemd-analyze verifies deploy/systemd's units),
  # qemu-user (qemu-x86_64 emulates an AVX2 CPU without VNNI), iproute2 and
  # iptables (netns' test puts the fleet in network namespaces and, where
  # the kernel has no netem, drops packets with iptables).
  need=()
  /usr/bin/python3 -c 'import onnx' 2>/dev/null || need+=(python3-onnx)
  command -v promtool >/dev/null || need+=(prometheus)
  command -v systemd-analyze >/dev/null || need+=(systemd)
  command -v qemu-x86_64 >/dev/null || need+=(qemu-user)
  command -v ip >/dev/null || need+=(iproute2)
  command -v iptables >/dev/null || need+=(iptables)
  # The corpus of real exported models (scripts/corpus/build.sh) exports and
  # samples with Debian's torch, torchvision and numpy.
  for p in python3-torch python3-torchvision python3-numpy dataset-fashion-mnist; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]} (checkers and corpus tools used by the tests)"
    if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # The corpus models app's TestCorpusCI quantizes end to end (pinned by
  # SHA-256 in testdata/corpus/manifest.json; skipped when already built).
  scripts/corpus/build.sh ppocr_cls ppocr_det ppocr_rec silero_vad_v4 silero_vad_v5 unet_convtranspose encoder_opset13
fi
