"""Imports point down the layers, never round in a circle, and never hide in a function.

The layers (lowest first) are the folders of ``embedprobe/``::

    errors, registry, provenance (and the package's __init__, __main__)
    common
    audio
    corpora | augment | extractors    (one rank: they must not import each other)
    synth                             (being dissolved into corpora/ and audio/)
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
cycle or an upward dependency, so it is an error here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "embedprobe"

#: Layer ranks, lowest first. Modules directly in ``embedprobe/`` are rank 0.
LAYERS: dict[str, int] = {
    "": 0,
    "common": 1,
    "audio": 2,
    "corpora": 3,
    "augment": 3,
    "extractors": 3,
    "synth": 3.5,
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
})

#: Function-local imports of embedprobe modules that stay on purpose:
#: "file:target" -> reason. Keep it empty or tiny. (A function-local import of an embedprobe
#: module that itself imports a HEAVY package at module level, e.g. the torch nets of a probe
#: or an extractor, defers that package and is allowed without an entry: see ``_heavy_modules``.)
ALLOWED_LOCAL: dict[str, str] = {}

#: Violations in files other branches are changing in parallel (keys as ``violation_key``
#: writes them), to be removed when the other branches land.
#: ``test_known_violations_are_still_there`` fails on an entry that is fixed, so it only shrinks.
KNOWN_VIOLATIONS: set[str] = {
    'embedprobe/augment/base.py -> embedprobe.augment',
    'embedprobe/bench/caches.py -> embedprobe.cache',
    'embedprobe/bench/caches.py -> embedprobe.pipeline.extract',
    'embedprobe/bench/caches.py -> embedprobe.pipeline.probe',
    'embedprobe/bench/caches.py -> embedprobe.synth',
    'embedprobe/bench/collect.py -> embedprobe.bench.extras',
    'embedprobe/bench/collect.py -> embedprobe.report.html',
    'embedprobe/bench/config.py -> embedprobe.bench.extras',
    'embedprobe/bench/config.py -> embedprobe.common.checks',
    'embedprobe/bench/config.py -> embedprobe.corpora',
    'embedprobe/bench/config.py -> embedprobe.corpora.textfiles',
    'embedprobe/bench/config.py -> embedprobe.errors',
    'embedprobe/bench/config.py -> embedprobe.eval.metrics',
    'embedprobe/bench/config.py -> embedprobe.extractors',
    'embedprobe/bench/config.py -> embedprobe.pipeline.extract',
    'embedprobe/bench/config.py -> embedprobe.probes',
    'embedprobe/bench/config.py -> embedprobe.probes.registry',
    'embedprobe/bench/config.py -> embedprobe.synth',
    'embedprobe/bench/extras.py -> embedprobe.augment.acoustics',
    'embedprobe/bench/extras.py -> embedprobe.pipeline.acoustics',
    'embedprobe/bench/grid.py -> embedprobe.pipeline.probe',
    'embedprobe/bench/runner.py -> embedprobe.bench.collect',
    'embedprobe/bench/runner.py -> embedprobe.bench.extras',
    'embedprobe/bench/runner.py -> embedprobe.bench.grid',
    'embedprobe/bench/runner.py -> embedprobe.bench.progress',
    'embedprobe/bench/runner.py -> embedprobe.cache',
    'embedprobe/bench/runner.py -> embedprobe.cache.locks',
    'embedprobe/bench/runner.py -> embedprobe.common.workers',
    'embedprobe/bench/runner.py -> embedprobe.pipeline.extract',
    'embedprobe/bench/runner.py -> embedprobe.pipeline.probe',
    'embedprobe/bench/runner.py -> embedprobe.report.results',
    'embedprobe/cache/identity.py -> embedprobe.corpora.base',
    'embedprobe/cache/reader.py -> embedprobe.corpora.base',
    'embedprobe/cache/verify.py -> embedprobe.corpora.base',
    'embedprobe/cache/writer.py -> embedprobe.corpora.base',
    'embedprobe/cli/bench.py -> embedprobe.bench',
    'embedprobe/cli/catalog.py -> embedprobe.augment',
    'embedprobe/cli/catalog.py -> embedprobe.corpora',
    'embedprobe/cli/catalog.py -> embedprobe.extractors',
    'embedprobe/cli/catalog.py -> embedprobe.probes.registry',
    'embedprobe/cli/domain.py -> embedprobe.pipeline.domain',
    'embedprobe/cli/extract.py -> embedprobe.corpora',
    'embedprobe/cli/extract.py -> embedprobe.errors',
    'embedprobe/cli/extract.py -> embedprobe.pipeline.extract',
    'embedprobe/cli/listing.py -> embedprobe.cli.catalog',
    'embedprobe/cli/probe.py -> embedprobe.common.checks',
    'embedprobe/cli/probe.py -> embedprobe.pipeline.probe',
    'embedprobe/cli/report.py -> embedprobe.report.markdown',
    'embedprobe/corpora/base.py -> embedprobe.errors',
    'embedprobe/eval/runner.py -> embedprobe.probes',
    'embedprobe/extractors/_hf.py -> embedprobe.extractors.weights',
    'embedprobe/extractors/base.py -> embedprobe.errors',
    'embedprobe/extractors/base.py -> embedprobe.extractors.safeload',
    'embedprobe/extractors/cdpam.py -> embedprobe.extractors.weights',
    'embedprobe/extractors/fastpath.py -> embedprobe.extractors.precision_check',
    'embedprobe/extractors/ge2e.py -> embedprobe.extractors.weights',
    'embedprobe/pipeline/clip_embedder.py -> embedprobe.augment',
    'embedprobe/pipeline/domain.py -> embedprobe.cache',
    'embedprobe/pipeline/domain.py -> embedprobe.eval.domain',
    'embedprobe/pipeline/domain.py -> embedprobe.pipeline.probe',
    'embedprobe/pipeline/domain.py -> embedprobe.report.escape',
    'embedprobe/pipeline/extract.py -> embedprobe.augment.base',
    'embedprobe/pipeline/extract.py -> embedprobe.common.checks',
    'embedprobe/pipeline/extract.py -> embedprobe.extractors.registry',
    'embedprobe/pipeline/probe.py -> embedprobe.augment.copies',
    'embedprobe/pipeline/probe.py -> embedprobe.cache',
    'embedprobe/pipeline/probe.py -> embedprobe.common.checks',
    'embedprobe/pipeline/probe.py -> embedprobe.errors',
    'embedprobe/pipeline/probe.py -> embedprobe.eval.data',
    'embedprobe/pipeline/probe.py -> embedprobe.pipeline.domain',
    'embedprobe/pipeline/probe.py -> embedprobe.probes',
    'embedprobe/pipeline/probe.py -> embedprobe.probes.features',
    'embedprobe/pipeline/probe.py -> embedprobe.probes.registry',
    'embedprobe/pipeline/probe.py -> embedprobe.report.results',
    'embedprobe/probes/training.py -> embedprobe.eval.metrics',
    'embedprobe/report/html.py -> embedprobe.augment.acoustics',
    'embedprobe/report/html.py -> embedprobe.augment.plots',
    'embedprobe/report/html.py -> embedprobe.report.heatmap',
    'embedprobe/report/html.py -> embedprobe.report.tables',
    'embedprobe/report/markdown.py -> embedprobe.errors',
    'embedprobe/report/markdown.py -> embedprobe.pipeline.domain',
    'cycle: embedprobe.bench.config -> embedprobe.bench.extras -> embedprobe.bench.config',
    'cycle: embedprobe.pipeline.domain -> embedprobe.pipeline.probe -> embedprobe.pipeline.domain',
    'cycle: eval -> probes -> eval',
    'cycle: pipeline -> report -> pipeline',
}


@dataclass(frozen=True)
class Import:
    """One import statement of an embedprobe module, as found in the source."""

    source: str  # importing module, e.g. "embedprobe.eval.runner"
    target: str  # imported module, e.g. "embedprobe.probes.registry"
    file: str  # path relative to the package's parent folder
    line: int
    local: bool  # inside a function (or method)


def module_name(path: Path, root: Path) -> str:
    """``root/embedprobe/eval/runner.py`` -> ``embedprobe.eval.runner``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a (possibly relative) ``from`` import's module."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _walk(node: ast.AST, local: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``node``, and whether it is inside a function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, local
        inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inner)


def collect_imports(root: Path) -> list[Import]:
    """Every import of a module of the package at ``root`` (a folder with ``__init__.py``)."""
    package = root.name
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    found: list[Import] = []
    for path in files:
        source = module_name(path, root)
        rel = str(path.relative_to(root.parent))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, local in _walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _resolve(source, path.name == "__init__.py", node.level, node.module)
                # "from pkg import module" depends on the module itself, not only on pkg.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in dict.fromkeys(targets):
                if target == package or target.startswith(package + "."):
                    found.append(Import(source, target, rel, node.lineno, local))
    return found


def _heavy_modules(root: Path) -> set[str]:
    """The package's modules that import a HEAVY package at module level (not in a function)."""
    heavy = set()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, local in _walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if node.level == 0 else [])
            if not local and any(n.split(".")[0] in HEAVY for n in names):
                heavy.add(module_name(path, root))
    return heavy


def layer_of(module: str, packages: set[str]) -> str:
    """``embedprobe.eval.runner`` -> ``eval``; top-level modules -> ``""``.

    ``packages`` holds the names of the sub-packages (folders) of ``embedprobe``.
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in packages else ""


def _find_cycles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle path per strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, {}):
                components.append(comp)

    for v in sorted(edges):
        if v not in index:
            connect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = min(comp)
        # Shortest path back to start inside the component (BFS) gives a readable cycle.
        prev: dict[str, str] = {}
        queue = [start]
        path: list[str] | None = None
        while queue and path is None:
            v = queue.pop(0)
            for w in sorted(edges.get(v, {})):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    path = path[::-1] + [start]
                    break
                if w not in prev:
                    prev[w] = v
                    queue.append(w)
        cycles.append(path or [start, start])
    return cycles


def _describe_cycle(path: list[str], edges: dict[str, dict[str, Import]]) -> str:
    hops = []
    for a, b in zip(path, path[1:], strict=False):
        imp = edges[a][b]
        hops.append(f"{a} -> {b} ({imp.file}:{imp.line})")
    return "cycle: " + " ; ".join(hops)


def check(root: Path, layers: dict[str, int] | None = None) -> dict[str, list[str]]:
    """The violations of the package at ``root``, by rule: ``upward``, ``cycle``, ``local``.

    Each violation is one line ``file:line -> target (why)``; cycles list every hop.
    """
    layers = LAYERS if layers is None else layers
    imports = collect_imports(root)
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
    heavy = _heavy_modules(root)
    out: dict[str, list[str]] = {"upward": [], "cycle": [], "local": []}
    for imp in imports:
        where = f"{imp.file}:{imp.line} -> {imp.target}"
        src, dst = layer_of(imp.source, packages), layer_of(imp.target, packages)
        if src not in layers or dst not in layers:
            out["upward"].append(f"{where} (unknown layer {src if src not in layers else dst!r})")
        elif layers[dst] > layers[src]:
            out["upward"].append(f"{where} ({src or 'top'} imports the higher layer {dst})")
        elif src != dst and layers[dst] == layers[src] and (src, dst) not in ALLOWED_PEER_EDGES:
            out["upward"].append(f"{where} ({src} imports its peer {dst})")
        if (imp.local and imp.target not in heavy
                and f"{imp.file}:{imp.target}" not in ALLOWED_LOCAL):
            out["local"].append(f"{where} (function-local import of an embedprobe module)")

    # Runtime edges: every import except the package's own parents (importing
    # "embedprobe.x.y" runs embedprobe/__init__ and embedprobe/x/__init__ first,
    # which is not a dependency a module chooses).
    module_edges: dict[str, dict[str, Import]] = {}
    package_edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if imp.source.startswith(imp.target + ".") or imp.source == imp.target:
            continue
        module_edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
        src, dst = layer_of(imp.source, packages), layer_of(imp.target, packages)
        if src != dst:
            package_edges.setdefault(src or "top", {}).setdefault(dst or "top", imp)
    for path in _find_cycles(package_edges):
        out["cycle"].append("between packages: " + _describe_cycle(path, package_edges))
    for path in _find_cycles(module_edges):
        out["cycle"].append("between modules: " + _describe_cycle(path, module_edges))
    return out


def violation_key(message: str) -> str:
    """A violation without line numbers, as ``KNOWN_VIOLATIONS`` lists it.

    ``"a/b.py:12 -> embedprobe.x (why)"`` -> ``"a/b.py -> embedprobe.x"``;
    ``"between modules: cycle: m1 -> m2 (f:1) ; m2 -> m1 (g:2)"`` -> ``"cycle: m1 -> m2 -> m1"``.
    """
    if " cycle: " in message:
        hops = [h.split(" (")[0].split(" -> ") for h in message.split("cycle: ", 1)[1].split(" ; ")]
        return "cycle: " + " -> ".join([hops[0][0]] + [b for _, b in hops])
    where, target = message.split(" -> ", 1)
    return f"{where.rsplit(':', 1)[0]} -> {target.split(' (')[0]}"


def _unexpected(found: list[str]) -> list[str]:
    return [v for v in found if violation_key(v) not in KNOWN_VIOLATIONS]


@pytest.fixture(scope="module")
def violations() -> dict[str, list[str]]:
    return check(PACKAGE_DIR)


def test_no_upward_imports(violations):
    bad = _unexpected(violations["upward"])
    assert not bad, "imports that point up (or sideways) the layers:\n" + "\n".join(bad)


def test_no_import_cycles(violations):
    bad = _unexpected(violations["cycle"])
    assert not bad, "import cycles:\n" + "\n".join(bad)


def test_no_function_local_imports_of_embedprobe(violations):
    bad = _unexpected(violations["local"])
    assert not bad, (
        "function-local imports of embedprobe modules (move them to module level; "
        "local imports are only for heavy optional third-party packages):\n" + "\n".join(bad)
    )


def test_known_violations_are_still_there(violations):
    """A fixed violation must leave KNOWN_VIOLATIONS, so the list only shrinks."""
    every = [v for rule in violations.values() for v in rule]
    stale = sorted(KNOWN_VIOLATIONS - {violation_key(v) for v in every})
    assert not stale, "fixed; remove from KNOWN_VIOLATIONS:\n" + "\n".join(stale)


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
    assert check(pkg) == {"upward": [], "cycle": [], "local": []}


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
    found = check(pkg)
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
    found = check(pkg)
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
    cycles = check(pkg)["cycle"]
    assert cycles[0] == (
        "between packages: cycle: eval -> probes (embedprobe/eval/metrics.py:2)"
        " ; probes -> eval (embedprobe/probes/base.py:1)"
    )
