"""Writing and reading result records: one JSON per run plus a tidy CSV (one row per cell x metric)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from embedprobe.common.metrics import METRICS
from embedprobe.provenance import atomic_write_json, atomic_write_text


def write_results(record: dict[str, Any], out_dir: Path, name: str) -> Path:
    """Write ``<out_dir>/<name>.json`` and ``<name>.csv`` atomically; returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    atomic_write_json(path, record)
    atomic_write_text(out_dir / f"{name}.csv", tidy_csv(record))
    return path


def add_section(path: str | Path, key: str, value: Any) -> Path:
    """Add (or replace) the top-level entry ``key`` of the results JSON at ``path``, atomically.

    How a caller that composes calls (``embedprobe probe`` then the domain gap) records the
    second call's summary in the first call's results file; the CSV is left as it is.
    """
    path = Path(path)
    record = json.loads(path.read_text())
    record[key] = value
    atomic_write_json(path, record)
    return path


def tidy_csv(record: dict[str, Any]) -> str:
    """One row per (cell, metric): train, test, metric, mean, last-20% figures, seeds, CI."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    model = record.get("config", {}).get("model", "")
    probe = record.get("config", {}).get("probe", "")
    w.writerow(["model", "probe", "train", "test", "in_domain", "scrambled", "n_test", "metric",
                "mean", "last20_mean", "last20_std", "seed_mean", "seed_std", "n_seeds",
                "ci95_low", "ci95_high", "relative_wf1"])
    rel = record.get("relative_wf1", {})
    for c in record["cells"]:
        for m in METRICS:
            e = c["metrics"][m]
            ci = e.get("ci95") or [None, None]
            s = e.get("seeds", {})
            w.writerow([model, probe, c["train"], c["test"], c["in_domain"], c["scrambled"],
                        c["n_test"], m, e["mean"], e.get("last20_mean"), e.get("last20_std"),
                        s.get("mean"), s.get("std"), s.get("n"), ci[0], ci[1],
                        rel.get(c["train"], {}).get(c["test"]) if m == "wf1" else ""])
    return buf.getvalue()


def read_results(folder: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every embedprobe results JSON in ``folder`` (recursively), sorted by path."""
    out = []
    for p in sorted(Path(folder).rglob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and rec.get("kind") == "embedprobe.probe":
            out.append((p, rec))
    return out

