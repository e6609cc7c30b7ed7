#!/usr/bin/env bash
# The main job on the default corpus: EmoDB with extractors that need no download.
# Called by `make demo` inside the project's virtualenv; safe to re-run (caches resume).
#   1. extract EmoDB's women (speakers 08 09 13 14 16) and its men (03 10 11 12 15) as two named
#      corpora, emodb-women and emodb-men, with each model into crash-safe caches (frames kept)
#   2. probe each model on the 2x2 cross-corpus matrix women/men (speaker-independent: 5 speaker
#      folds inside each half), linear and MLP probes, and scikit-learn's logistic regression beside
#      them as the reference (deterministic: one seed)
#   3. write the Markdown report with the matrices (the off-diagonal drop) and heatmaps
set -euo pipefail
EMODB=${EMODB:-../shared/data/emodb}
OUT=${OUT:-out/demo}
MODELS=${MODELS:-"logmel-128 egemaps"}
PROBES=${PROBES:-"linear mlp logreg"}
SEEDS=${SEEDS:-2}  # 2 seeds (3 before the 2x2 matrix) keep the demo within about 4 minutes
HALVES="emodb-women:f emodb-men:m"

for model in $MODELS; do
  for half in $HALVES; do
    name=${half%%:*}
    embedprobe extract --model "$model" --corpus emodb --option "gender=${half##*:}" --name "$name" \
      --root "$EMODB" --out "$OUT/cache" --frames --quiet
  done
  embedprobe info "$OUT/cache/emodb-women__${model}.h5"
done
for model in $MODELS; do
  for probe in $PROBES; do
    seeds=$SEEDS
    if [ "$probe" = logreg ] || [ "$probe" = svm ]; then seeds=1; fi  # reference probes: no randomness
    embedprobe probe --model "$model" --cache-dir "$OUT/cache" --train emodb-women --train emodb-men \
      --test emodb-women,emodb-men --probe "$probe" --pooling meanstd --seeds "$seeds" --out "$OUT/results"
  done
done
embedprobe report "$OUT/results"
echo "main job done: report at $OUT/results/report.md"
