"""Bench configuration: a TOML file -> frozen dataclasses, with errors that name the bad key.

Every table and key is checked: an unknown key, a wrong type or a bad value raises
``BadValueError`` naming the file, the table, the key or value and the allowed ones. Relative
paths are relative to the folder the command runs in (the shipped configs expect the repository
root). ``load_config(path, overrides=["grid.seeds=3"], models=["wavlm-large"])`` applies
command-line overrides before checking.

Example:
    >>> cfg = parse_config({"corpora": {"emodb": {"root": "data/emodb"}},
    ...                     "grid": {"train": ["emodb"]}, "extract": {"models": ["logmel-128"]}})
    >>> cfg.grid.train, cfg.grid.seeds, cfg.corpus("emodb").reader
    ((('emodb',),), (0,), 'emodb')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedprobe.bench.checks import Checker, ConfigError
from embedprobe.bench.sections import (
    corpora_section,
    engine_section,
    extra_section,
    extract_section,
    grid_section,
    probe_section,
    report_section,
)
from embedprobe.bench.spec import (
    SECTIONS,
    STATISTICS,
    BenchConfig,
    CorpusSpec,
    EngineSpec,
    ExtractSpec,
    ExtraSpec,
    GridSpec,
    ProbeSpec,
    ReportSpec,
    rate_label,
)
from embedprobe.corpora.textfiles import read_text
from embedprobe.errors import BadValueError, EmbedprobeError

__all__ = ["SECTIONS", "STATISTICS", "BenchConfig", "CorpusSpec", "EngineSpec", "ExtraSpec", "ExtractSpec", "GridSpec",
           "ProbeSpec", "ReportSpec", "apply_override", "load_config", "parse_config", "rate_label"]


# --------------------------------------------------------------------------------------- loading
def load_config(path: str | Path, *, overrides: list[str] | None = None,
                models: list[str] | None = None, out: str | None = None,
                jobs: int | None = None, engine: str | None = None, address: str | None = None,
                cpus_per_task: int | None = None, gpus_per_extract: float | None = None) -> BenchConfig:
    """Read and check a bench TOML file.

    Args:
        path: the TOML file.
        overrides: ``"table.key=VALUE"`` items (VALUE in TOML syntax, bare words are strings),
            e.g. ``"corpora.iemocap.root=/data/IEMOCAP"``.
        models: replace ``[extract] models`` (the CLI's ``--model``).
        out: replace ``[bench] out``.
        jobs: replace ``[bench] jobs``.
        engine: replace ``[bench] engine`` (``local`` or ``ray``).
        address, cpus_per_task, gpus_per_extract: replace those keys of ``[ray]``.
    """
    tomllib = _toml()
    path = Path(path)
    if not path.is_file():
        raise BadValueError("bench config file", str(path), fix="Give the path of a TOML file, e.g. "
                            "benchmarks/configs/emodb_synthetic.toml.")
    try:
        raw = tomllib.loads(read_text(path, "bench config", EmbedprobeError))
    except tomllib.TOMLDecodeError as e:
        raise EmbedprobeError(f"{path} is not valid TOML: {e}. Fix: check the line it names.") from None
    for item in overrides or []:
        apply_override(raw, item)
    if models:
        raw.setdefault("extract", {})["models"] = list(models)
    if out:
        raw.setdefault("bench", {})["out"] = str(out)
    if jobs is not None:
        raw.setdefault("bench", {})["jobs"] = jobs
    if engine is not None:
        raw.setdefault("bench", {})["engine"] = engine
    for key, value in (("address", address), ("cpus_per_task", cpus_per_task),
                       ("gpus_per_extract", gpus_per_extract)):
        if value is not None:
            raw.setdefault("ray", {})[key] = value
    return parse_config(raw, source=str(path))


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=VALUE`` in the raw TOML dict (VALUE parsed as TOML, else kept as a string)."""
    if "=" not in item:
        raise BadValueError("override", item, fix="Write overrides as TABLE.KEY=VALUE, e.g. grid.seeds=3.")
    dotted, text = (s.strip() for s in item.split("=", 1))
    keys = [k for k in dotted.split(".") if k]
    if len(keys) < 2:
        raise BadValueError("override key", dotted, SECTIONS, fix="Name a table and a key: grid.seeds=3.")
    try:
        value = _toml().loads(f"v = {text}")["v"]
    except Exception:  # noqa: BLE001 - any TOML error: take the text as it is
        value = text
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise BadValueError("override key", dotted, fix=f"{k!r} is a value, not a table.")
    node[keys[-1]] = value


def parse_config(raw: dict[str, Any], *, source: str = "<dict>") -> BenchConfig:
    """Check a raw TOML dict and build the ``BenchConfig``."""
    chk = Checker(source)
    chk.keys(raw, SECTIONS, "")
    bench = chk.table(raw, "bench")
    chk.keys(bench, ("name", "out", "jobs", "engine"), "bench")
    name = chk.str_(bench, "bench", "name", Path(source).stem if source != "<dict>" else "bench")
    out = chk.str_(bench, "bench", "out", "out/bench")
    jobs = chk.int_(bench, "bench", "jobs", 1, low=1)

    corpora = corpora_section(chk, chk.table(raw, "corpora"))
    keys = [c.key for c in corpora]
    extract = extract_section(chk, chk.table(raw, "extract"), out)
    grid = grid_section(chk, chk.table(raw, "grid"), keys)
    probe = probe_section(chk, chk.table(raw, "probe"), grid.probes)
    if probe.frames and not extract.params.get("frames"):
        raise ConfigError(f"{source} [probe]", "frames", True,
                          fix="Frame-level probing needs frame caches: set [extract] frames = true.")
    return BenchConfig(
        name=name, out=out, jobs=jobs, extract=extract, corpora=corpora, grid=grid, probe=probe,
        acoustics=extra_section(chk, chk.table(raw, "acoustics"), "acoustics"),
        domain=extra_section(chk, chk.table(raw, "domain"), "domain"),
        report=report_section(chk, chk.table(raw, "report")), source=source,
        engine=engine_section(chk, bench, chk.table(raw, "ray")))


def _toml() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise EmbedprobeError("Reading bench configs on Python 3.10 needs the package 'tomli': "
                                  "run pip install tomli (Python 3.11+ has tomllib built in).") from None
    return tomllib
