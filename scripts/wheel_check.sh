#!/usr/bin/env bash
# Does the built package work on its own? Build the sdist and, from it, the wheel; install the
# wheel into a fresh virtualenv outside the checkout; run it from a folder where the source
# tree is not importable. Called by .ci/run after the tests; runnable by hand from anywhere:
#   bash scripts/wheel_check.sh            (EMODB=../shared/data/emodb, PYTHON=python3)
#   KEEP=1 bash scripts/wheel_check.sh     (keep the temp folder, say where)
# Steps:
#   1. copy the files git sees (tracked + untracked, not ignored) to a temp folder, as a fresh
#      clone would hold them; `python -m build` makes the sdist and builds the wheel from it
#   2. every file of the embedprobe/ package is in the wheel, and so are the compiled row digests
#      (embedprobe/cache/_wsum.c, built by setup.py) and the console script
#   3. fresh venv: CPU torch from constraints/cpu.txt, then the wheel (core deps, no extras)
#   4. from a temp cwd: `import embedprobe` resolves into that venv; `embedprobe list extractors`;
#      the row digests come from the compiled kernel
#   5. extract + probe + report of 32 EmoDB clips (4 speakers x 4 classes x 2) with logmel-128
#   6. the CNN14 golden-fixture test, copied out of the sdist with tests/golden/
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
EMODB=$(cd "$REPO" && realpath -m "${EMODB:-../shared/data/emodb}")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/embedprobe-wheel.XXXXXX")
if [ -n "${KEEP:-}" ]; then echo "wheel check: keeping $TMP"; else trap 'rm -rf "$TMP"' EXIT; fi
trap 'exit 130' INT TERM  # interrupted: still remove the temp folder
unset PYTHONPATH
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export HF_HOME=$TMP/home/hf TORCH_HOME=$TMP/home/torch MPLCONFIGDIR=$TMP/home/mpl
START=$SECONDS
step() { echo "== wheel check [$((SECONDS - START)) s] $*"; }
# pip, without the warnings a find-links/extra-index set-up prints for every package it lacks
pip_() { { "$@" 2>&1 1>&3 | { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }; } 3>&1; }

step "1. build the sdist and the wheel (from the sdist)"
mkdir -p "$TMP/src"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$TMP/src"
else  # not a git checkout (e.g. an unpacked sdist): everything but local build outputs
  tar -C "$REPO" --exclude=./.venv --exclude=./out --exclude=./dist --exclude=./build \
    --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -xf - -C "$TMP/src"
fi
"$PYTHON" -m venv "$TMP/build-venv"
pip_ "$TMP/build-venv/bin/pip" install -q build
"$TMP/build-venv/bin/python" -m build -o "$TMP/dist" "$TMP/src" >"$TMP/build.log" 2>&1 \
  || { tail -40 "$TMP/build.log"; exit 1; }
WHEEL=$(ls "$TMP"/dist/embedprobe-*.whl)
SDIST=$(ls "$TMP"/dist/embedprobe-*.tar.gz)
ls -l "$SDIST" "$WHEEL" | awk '{print "   ", $5, $NF}'

step "2. every package file is in the wheel"
"$TMP/build-venv/bin/python" - "$WHEEL" "$TMP/src" <<'EOF'
import sys, zipfile
from pathlib import Path
wheel, src = sys.argv[1], Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
want = {p.relative_to(src).as_posix() for p in (src / "embedprobe").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts}
missing = sorted(want - names)
if missing:
    sys.exit(f"wheel check: {len(missing)} file(s) of embedprobe/ missing from the wheel "
             f"(packages.find / package-data in pyproject.toml, MANIFEST.in): {missing}")
entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
scripts = zipfile.ZipFile(wheel).read(entry).decode()
if "embedprobe = embedprobe.cli.main:main" not in scripts:
    sys.exit(f"wheel check: the embedprobe console script is missing from {entry}")
compiled = [n for n in names if n.startswith("embedprobe/cache/_wsum.") and n.endswith((".so", ".pyd"))]
if not compiled:  # setup.py builds it optionally: a failed build is only a warning in build.log
    sys.exit("wheel check: the compiled row digests (embedprobe/cache/_wsum.c) are not in the wheel; "
             "build.log says why the build failed")
print(f"    {len(want)} package files, all in the wheel, and {compiled[0]}; console script declared")
EOF

step "3. fresh venv: CPU torch, then the wheel"
"$PYTHON" -m venv "$TMP/venv"
BIN=$TMP/venv/bin
pip_ "$BIN/pip" install -q -c "$REPO/constraints/cpu.txt" torch==2.13.0
pip_ "$BIN/pip" install -q -c "$REPO/constraints/cpu.txt" "$WHEEL" "pytest>=8"

step "4. import and list, from outside the checkout"
mkdir -p "$TMP/run" && cd "$TMP/run"
where=$("$BIN/python" -c 'import embedprobe; print(embedprobe.__file__)')
echo "    embedprobe.__file__ = $where"
case "$where" in "$TMP/venv/"*) ;; *) echo "wheel check: embedprobe imports from $where, not from the venv"; exit 1;; esac
COLUMNS=160 "$BIN/embedprobe" list extractors
"$BIN/python" -c 'from embedprobe.cache.digest import kernel; k = kernel(); print("    row digests:", k); assert k.startswith("compiled"), k'

step "5. extract, probe and report 32 EmoDB clips"
if [ ! -d "$EMODB/wav" ]; then echo "wheel check: EmoDB not found at $EMODB (set EMODB)"; exit 1; fi
mkdir -p "$TMP/emodb/wav"
for spk in 03 08 09 10; do
  for emo in W F N T; do
    ls "$EMODB/wav" | grep -E "^${spk}...${emo}.\.wav$" | head -2 \
      | while read -r f; do ln -s "$EMODB/wav/$f" "$TMP/emodb/wav/$f"; done
  done
done
echo "    $(ls "$TMP/emodb/wav" | wc -l) clips linked into $TMP/emodb/wav"
"$BIN/embedprobe" extract --model logmel-128 --corpus emodb --root "$TMP/emodb" --out cache --quiet
"$BIN/embedprobe" probe --model logmel-128 --cache-dir cache --train emodb --test emodb \
  --probe linear --pooling meanstd --seeds 1 --max-folds 2 --bootstrap 100 --out results --quiet
"$BIN/embedprobe" report results
test -s results/report.md

step "6. CNN14 golden-fixture test, from the sdist's tests/"
tar -xzf "$SDIST" -C "$TMP"
SRC_TESTS=$(ls -d "$TMP"/embedprobe-*/tests)
mkdir -p "$TMP/run/tests/extractors"
cp "$SRC_TESTS/conftest.py" "$TMP/run/tests/"
cp "$SRC_TESTS/extractors/test_cnn14.py" "$TMP/run/tests/extractors/"
cp -r "$SRC_TESTS/golden" "$TMP/run/tests/"
printf '[pytest]\n' >"$TMP/run/pytest.ini"  # rootdir here: none of the checkout's settings
"$BIN/python" -m pytest -q -p no:cacheprovider --rootdir "$TMP/run" --import-mode=importlib \
  "$TMP/run/tests/extractors/test_cnn14.py"

step "wheel check passed in $((SECONDS - START)) s"
