"""Cross-corpus matrices from result cells: rows are training sets, columns test corpora."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embedprobe.report.escape import md


@dataclass
class Matrix:
    """A train x test table of one metric with optional intervals (``None`` = not run)."""

    title: str
    rows: list[str]
    cols: list[str]
    values: list[list[float | None]]
    low: list[list[float | None]]
    high: list[list[float | None]]
    relative: bool = False


def _order(cells: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    rows = list(dict.fromkeys(c["train"] for c in cells))
    cols = list(dict.fromkeys(c["test"] for c in cells))
    singles = [r for r in rows if "+" not in r]
    ordered_cols = [c for c in singles if c in cols] + [c for c in cols if c not in singles]
    # single-corpus rows first, in column order (the diagonal reads as in-domain), then unions
    ordered_rows = [c for c in ordered_cols if c in rows] + [r for r in rows if r not in ordered_cols]
    return ordered_rows, ordered_cols


def run_choices(record: dict[str, Any]) -> str:
    """The split protocol of each corpus and the fold aggregation of a run, as one heading part.

    Example: ``protocol emodb=loso · aggregate pooled``. Results written before the aggregation
    was recorded read ``aggregate mean`` (the only one there was).
    """
    protocols = ", ".join(f"{name}={c.get('protocol') or 'default'}" for name, c in (record.get("caches") or {}).items())
    aggregate = ((record.get("resolved") or {}).get("aggregate") or (record.get("config") or {}).get("aggregate")
                 or "mean")
    return f"protocol {protocols or 'default'} · aggregate {aggregate}"


def cell_choices(cells: list[dict[str, Any]]) -> str:
    """``run_choices`` read from result cells (the in-domain ones name their corpus's protocol);
    ``""`` for cells written before cells recorded them."""
    protocols = dict.fromkeys(f"{c['test']}={c['protocol']}" for c in cells if c.get("in_domain") and c.get("protocol"))
    aggregates = dict.fromkeys(c["aggregate"] for c in cells if c.get("aggregate"))
    if not protocols and not aggregates:
        return ""
    return f"protocol {', '.join(protocols) or 'default'} · aggregate {', '.join(aggregates) or 'mean'}"


def metric_matrix(cells: list[dict[str, Any]], metric: str, title: str = "") -> Matrix:
    rows, cols = _order(cells)
    by = {(c["train"], c["test"]): c["metrics"][metric] for c in cells}
    val, lo, hi = [], [], []
    for r in rows:
        val.append([by.get((r, c), {}).get("mean") for c in cols])
        lo.append([(by.get((r, c), {}).get("ci95") or [None, None])[0] for c in cols])
        hi.append([(by.get((r, c), {}).get("ci95") or [None, None])[1] for c in cols])
    return Matrix(title or metric.upper(), rows, cols, val, lo, hi)


def relative_from(record: dict[str, Any], metric: str = "wf1") -> Matrix:
    rows, cols = _order(record["cells"])
    rel = record.get(f"relative_{metric}", {})
    vals = [[rel.get(r, {}).get(c) for c in cols] for r in rows]
    none = [[None] * len(cols) for _ in rows]
    return Matrix(f"relative {metric} (cell - in-domain baseline of its test corpus)", rows, cols,
                  vals, none, none, relative=True)


def to_markdown(m: Matrix, digits: int = 2) -> str:
    """A GitHub Markdown table; cells read ``0.81 [0.75, 0.86]``; corpus names are escaped."""
    head = "| train \\ test | " + " | ".join(md(c) for c in m.cols) + " |"
    sep = "|---|" + "---|" * len(m.cols)
    lines = [head, sep]
    for i, r in enumerate(m.rows):
        out = []
        for j in range(len(m.cols)):
            v = m.values[i][j]
            if v is None:
                out.append("–")
                continue
            s = f"{v:+.{digits}f}" if m.relative else f"{v:.{digits}f}"
            if m.low[i][j] is not None and m.high[i][j] is not None:
                s += f" [{m.low[i][j]:.{digits}f}, {m.high[i][j]:.{digits}f}]"
            out.append(s)
        lines.append(f"| {md(r)} | " + " | ".join(out) + " |")
    return "\n".join(lines)
