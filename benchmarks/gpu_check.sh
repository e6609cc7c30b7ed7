#!/usr/bin/env bash
# The GPU check: one prepared script for a CUDA machine.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --fetch-wheels  # beforehand, on a machine with the package
#                                                # registry, for a GPU host that has none
#
# It uses the machine's own python3 and its CUDA build of torch (never installs torch), adds what
# embedprobe needs beyond that image (soundfile, soxr, ...) from ./.whl/ if present or else from
# the registry, then:
#   1. runs the tests marked `gpu` (tests/test_gpu.py: autocast against CPU fp32, padded batches
#      with masks equal one-by-one, pinned copies, the load-time precision check, extraction);
#   2. runs benchmarks/extract_speed.py --device cuda on full-size random-init WavLM-Large and
#      CNN14 16 kHz: audio-s/s, the fraction of the GPU's bf16 matmul peak measured in the same
#      run, peak GPU memory and cosine to the fp32 loop;
# and prints one JSON line last. CLIPS (default 64) and MODELS override the benchmark's set.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NEEDED="soundfile soxr h5py scipy sklearn typer rich transformers"

if [ "${1:-}" = "--fetch-wheels" ]; then
  # wheels for the GPU image (Python 3.12, manylinux x86_64); numpy etc. are there already
  mkdir -p .whl
  for pkg in soundfile soxr; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d .whl "$pkg" || exit 1
  done
  ls .whl
  exit 0
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 EMBEDPROBE_NO_PROGRESS=1
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: $PY has no CUDA torch here; run this script on a machine with a CUDA GPU." >&2
  echo '{"gpu_check": "skipped", "reason": "no CUDA device"}'
  exit 2
fi

missing=$("$PY" - "$NEEDED" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1].split() if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
  site=$(mktemp -d /tmp/embedprobe-site.XXXX)
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 1
  else
    pkgs=$(echo "$missing" | sed 's/sklearn/scikit-learn/')
    "$PY" -m pip install -q --no-deps --target "$site" $pkgs || {
      echo "gpu_check: missing $missing and no registry; run 'bash benchmarks/gpu_check.sh --fetch-wheels' where pip works and carry .whl/." >&2
      exit 1
    }
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's embedprobe, not installed

out=$(mktemp -d /tmp/embedprobe-gpu.XXXX)
"$PY" -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$out/tests.log"
tests_rc=${PIPESTATUS[0]}
"$PY" benchmarks/extract_speed.py --device cuda --clips "${CLIPS:-64}" \
  --models "${MODELS:-wavlm-large,cnn14-16k}" 2>&1 | tee "$out/speed.log"
speed_rc=${PIPESTATUS[0]}

"$PY" - "$out" "$tests_rc" "$speed_rc" <<'EOF'
import json, re, sys
out, tests_rc, speed_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
log = open(f"{out}/tests.log").read()
counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", log.splitlines()[-1] if log else "")}
speed = {}
for line in reversed(open(f"{out}/speed.log").read().splitlines()):
    if line.startswith("{"):
        speed = json.loads(line)
        break
models = {}
for name, r in speed.get("models", {}).items():
    models[name] = {k: r.get(k) for k in ("pipeline_audio_s_per_s", "naive_audio_s_per_s", "ratio",
                                          "peak_fraction_pipeline", "precision", "peak_gpu_mem_gb",
                                          "cosine", "load_s", "precision_check_s")}
print(json.dumps({"gpu_check": "ran", "gpu": speed.get("gpu"), "tests_rc": tests_rc, "tests": counts,
                  "speed_rc": speed_rc, "peak_tflops": {k: round(v / 1000, 1) for k, v in speed.get("peak_gflops", {}).items()},
                  "models": models}))
EOF
[ "$tests_rc" = 0 ] && [ "$speed_rc" = 0 ]
