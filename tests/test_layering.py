"""Imports point down the layers, never round in a circle, and never hide in a function.

The layers (lowest first) are the folders of ``embedprobe/``::

    errors, registry, provenance (and the package's __init__, __main__)
    common
    audio
    corpora | augment | extractors    (one rank: they must not import each other)
    cache
    probes
    eval
    report
    pipeline
    bench
    cli

The checker reads the source with ``ast`` (nothing is imported), so it sees
every import, at module level and inside functions, whatever optional packages
are installed. A function-local import is only for a heavy optional
third-party package (torch, transformers, opensmile ...) in a module that must
import without it; a function-local import of an embedprobe module hides a
cycle or an upward dependency, so it is an error here. The checker itself is
``tests/layering_check.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from layering_check import check

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "embedprobe"

#: Layer ranks, lowest first. Modules directly in ``embedprobe/`` are rank 0.
LAYERS: dict[str, int] = {
    "": 0,
    "common": 1,
    "audio": 2,
    "corpora": 3,
    "augment": 3,
    "extractors": 3,
    "cache": 4,
    "probes": 5,
    "eval": 6,
    "report": 7,
    "pipeline": 8,
    "bench": 9,
    "cli": 10,
}

#: Imports between two packages of the same rank that are right today:
#: (importing package, imported package) -> reason.
ALLOWED_PEER_EDGES: dict[tuple[str, str], str] = {
    ("augment", "corpora"): "augment/copies.py expands a corpus Manifest into augmented copies "
    "(ids 'clip@k'); corpora never imports augment",
}

#: Heavy third-party packages a module may import inside a function, so that importing the
#: module (``embedprobe --help``, ``embedprobe list``, registry discovery) stays fast.
HEAVY = frozenset({
    "torch", "torchaudio", "transformers", "opensmile", "resemblyzer", "cdpam", "pedalboard",
    "onnxruntime", "librosa", "speechmos", "pyloudnorm", "laion_clap", "msclap", "encodec",
    "dac", "safetensors", "huggingface_hub",
    # not optional, but each costs about a second of start-up that `embedprobe --help` and
    # `embedprobe list` must not pay (tests/cli/test_cli_startup.py counts the modules loaded)
    "sklearn", "scipy",
})

#: Function-local imports of embedprobe modules that stay on purpose:
#: "file:target" -> reason. Keep it empty or tiny. (A function-local import of an embedprobe
#: module that itself imports a HEAVY package at module level, e.g. the torch nets of a probe
#: or an extractor, defers that package and is allowed without an entry: see ``_heavy_modules``.)
ALLOWED_LOCAL: dict[str, str] = {}



@pytest.fixture(scope="module")
def violations() -> dict[str, list[str]]:
    return check(PACKAGE_DIR, LAYERS, heavy=HEAVY, allowed_peer_edges=ALLOWED_PEER_EDGES,
                 allowed_local=ALLOWED_LOCAL)


def test_no_upward_imports(violations):
    bad = violations["upward"]
    assert not bad, "imports that point up (or sideways) the layers:\n" + "\n".join(bad)


def test_no_import_cycles(violations):
    bad = violations["cycle"]
    assert not bad, "import cycles:\n" + "\n".join(bad)


def test_no_function_local_imports_of_embedprobe(violations):
    bad = violations["local"]
    assert not bad, (
        "function-local imports of embedprobe modules (move them to module level; "
        "local imports are only for heavy optional third-party packages):\n" + "\n".join(bad)
    )


def test_every_package_has_a_layer():
    folders = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()}
    assert folders <= set(LAYERS), f"give these packages a layer: {sorted(folders - set(LAYERS))}"


# -- the checker itself, on a fake tree ---------------------------------------------------


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "embedprobe"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in [pkg, *[p for p in pkg.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return pkg


def test_checker_passes_a_clean_tree(tmp_path):
    pkg = _write_tree(
        tmp_path,
        {
            "errors.py": "",
            "common/checks.py": "from embedprobe.errors import X\n",
            "eval/metrics.py": "import numpy\nfrom embedprobe.common import checks\n",
            "eval/runner.py": "from . import metrics\n\ndef f():\n    import torch\n",
            "cli/main.py": "from ..eval.runner import f\n",
        },
    )
    assert check(pkg, LAYERS) == {"upward": [], "cycle": [], "local": []}


def test_checker_catches_an_upward_import(tmp_path):
    pkg = _write_tree(
        tmp_path,
        {
            "probes/base.py": "from embedprobe.eval.metrics import score\n",
            "eval/metrics.py": "",
            "corpora/emodb.py": "from ..extractors import base\n",
            "extractors/base.py": "",
        },
    )
    found = check(pkg, LAYERS)
    assert found["upward"] == [
        "embedprobe/corpora/emodb.py:1 -> embedprobe.extractors.base (corpora imports its peer extractors)",
        "embedprobe/probes/base.py:1 -> embedprobe.eval.metrics (probes imports the higher layer eval)",
    ]


def test_checker_catches_cycles_and_local_imports(tmp_path):
    pkg = _write_tree(
        tmp_path,
        {
            "eval/a.py": "from embedprobe.eval import b\n",
            "eval/b.py": "def f():\n    from embedprobe.eval.c import g\n",
            "eval/c.py": "import embedprobe.eval.a\n",
        },
    )
    found = check(pkg, LAYERS)
    assert found["local"] == [
        "embedprobe/eval/b.py:2 -> embedprobe.eval.c (function-local import of an embedprobe module)"
    ]
    assert found["cycle"] == [
        "between modules: cycle: embedprobe.eval.a -> embedprobe.eval.b (embedprobe/eval/a.py:1)"
        " ; embedprobe.eval.b -> embedprobe.eval.c (embedprobe/eval/b.py:2)"
        " ; embedprobe.eval.c -> embedprobe.eval.a (embedprobe/eval/c.py:1)"
    ]


def test_checker_catches_a_package_cycle(tmp_path):
    pkg = _write_tree(
        tmp_path,
        {
            "probes/base.py": "from embedprobe.eval import metrics\n",
            "eval/metrics.py": "def f():\n    from embedprobe.probes.base import P\n",
        },
    )
    cycles = check(pkg, LAYERS)["cycle"]
    assert cycles[0] == (
        "between packages: cycle: eval -> probes (embedprobe/eval/metrics.py:2)"
        " ; probes -> eval (embedprobe/probes/base.py:1)"
    )


def test_checker_allows_deferring_a_torch_module(tmp_path):
    pkg = _write_tree(
        tmp_path,
        {
            "probes/nets.py": "import torch\n",
            "probes/base.py": "def fit():\n    from embedprobe.probes.nets import Net\n",
            "probes/plain.py": "def f():\n    from embedprobe.probes import base\n",
        },
    )
    assert len(check(pkg, LAYERS)["local"]) == 2  # without a list of heavy packages
    assert check(pkg, LAYERS, heavy=HEAVY)["local"] == [
        "embedprobe/probes/plain.py:2 -> embedprobe.probes.base (function-local import of an embedprobe module)"
    ]


def test_checker_ignores_type_only_imports_for_cycles(tmp_path):
    pkg = _write_tree(
        tmp_path,
        {
            "cache/schema.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .batch import Block\n",
            "cache/batch.py": "from .schema import Header\n",
        },
    )
    assert check(pkg, LAYERS)["cycle"] == []
    (pkg / "cache" / "schema.py").write_text("from .batch import Block\n")
    assert len(check(pkg, LAYERS)["cycle"]) == 1
