#!/usr/bin/env bash
# The main job on the default corpus: EmoDB with extractors that need no download.
# Called by `make demo` inside the project's virtualenv; safe to re-run (caches resume).
#   1. extract every EmoDB clip with each model into a crash-safe cache (frames kept)
#   2. probe each cache speaker-independently (EmoDB's 10 speaker folds), linear and MLP
#   3. write the Markdown report with matrices and heatmaps
set -euo pipefail
EMODB=${EMODB:-../shared/data/emodb}
OUT=${OUT:-out/demo}
MODELS=${MODELS:-"logmel-128 egemaps"}
PROBES=${PROBES:-"linear mlp"}
SEEDS=${SEEDS:-3}

for model in $MODELS; do
  embedprobe extract --model "$model" --corpus emodb --root "$EMODB" --out "$OUT/cache" --frames
  embedprobe info "$OUT/cache/emodb__${model}.h5"
done
for model in $MODELS; do
  for probe in $PROBES; do
    embedprobe probe --model "$model" --cache-dir "$OUT/cache" --train emodb --test emodb \
      --probe "$probe" --pooling meanstd --seeds "$SEEDS" --out "$OUT/results"
  done
done
embedprobe report "$OUT/results"
echo "main job done: report at $OUT/results/report.md"
