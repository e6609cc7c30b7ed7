"""The import-layering checker behind ``tests/test_layering.py``.

It reads the source with ``ast`` (nothing is imported), so it sees every import, at module
level and inside functions, whatever optional packages are installed. Relative imports are
resolved; ``from pkg import module`` counts as a dependency on that module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import statement of an embedprobe module, as found in the source."""

    source: str  # importing module, e.g. "embedprobe.eval.runner"
    target: str  # imported module, e.g. "embedprobe.probes.registry"
    file: str  # path relative to the package's parent folder
    line: int
    local: bool  # inside a function (or method)
    type_only: bool = False  # under ``if TYPE_CHECKING:``: never runs, so it cannot close a cycle


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


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers of the statements under ``if TYPE_CHECKING:`` (``typing.TYPE_CHECKING`` too)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
                isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                or isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"):
            for stmt in node.body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


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
        typing_only = _type_checking_lines(tree)
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
                    found.append(Import(source, target, rel, node.lineno, local,
                                        type_only=node.lineno in typing_only))
    return found


def _heavy_modules(root: Path, heavy: frozenset[str]) -> set[str]:
    """The package's modules that import a ``heavy`` package at module level (not in a function)."""
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, local in _walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if node.level == 0 else [])
            if not local and any(n.split(".")[0] in heavy for n in names):
                found.add(module_name(path, root))
    return found


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


def check(root: Path, layers: dict[str, int], *, heavy: frozenset[str] = frozenset(),
          allowed_peer_edges: Mapping[tuple[str, str], str] | None = None,
          allowed_local: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """The violations of the package at ``root``, by rule: ``upward``, ``cycle``, ``local``.

    Args:
        root: the package folder (``embedprobe/``).
        layers: sub-package name -> rank (``""`` for the top-level modules); lower is lower.
        heavy: third-party packages whose import may be deferred into a function; a
            function-local import of a package module that imports one of them at module
            level is allowed too (it defers that package).
        allowed_peer_edges: ``(importing, imported)`` packages of one rank -> reason.
        allowed_local: ``"file:target"`` function-local imports that stay -> reason.

    Each violation is one line ``file:line -> target (why)``; cycles list every hop.
    """
    allowed_peer_edges = allowed_peer_edges or {}
    allowed_local = allowed_local or {}
    imports = collect_imports(root)
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
    deferring = _heavy_modules(root, heavy)
    out: dict[str, list[str]] = {"upward": [], "cycle": [], "local": []}
    for imp in imports:
        where = f"{imp.file}:{imp.line} -> {imp.target}"
        src, dst = layer_of(imp.source, packages), layer_of(imp.target, packages)
        if src not in layers or dst not in layers:
            out["upward"].append(f"{where} (unknown layer {src if src not in layers else dst!r})")
        elif layers[dst] > layers[src]:
            out["upward"].append(f"{where} ({src or 'top'} imports the higher layer {dst})")
        elif src != dst and layers[dst] == layers[src] and (src, dst) not in allowed_peer_edges:
            out["upward"].append(f"{where} ({src} imports its peer {dst})")
        if (imp.local and imp.target not in deferring
                and f"{imp.file}:{imp.target}" not in allowed_local):
            out["local"].append(f"{where} (function-local import of an embedprobe module)")

    # Runtime edges: every import except the package's own parents (importing
    # "embedprobe.x.y" runs embedprobe/__init__ and embedprobe/x/__init__ first,
    # which is not a dependency a module chooses).
    module_edges: dict[str, dict[str, Import]] = {}
    package_edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if imp.source.startswith(imp.target + ".") or imp.source == imp.target or imp.type_only:
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
