#!/usr/bin/env bash
# The main job on the default corpus: EmoDB with extractors that need no download.
# Called by `make demo` inside the project's virtualenv; safe to re-run (caches resume).
set -euo pipefail
EMODB=${EMODB:-../shared/data/emodb}
OUT=${OUT:-out/demo}
MODELS=${MODELS:-"logmel-128 egemaps"}

for model in $MODELS; do
  embedprobe extract --model "$model" --corpus emodb --root "$EMODB" --out "$OUT/cache" --frames
done
for model in $MODELS; do
  embedprobe info "$OUT/cache/emodb__${model}.h5"
done
