"""Building blocks of the HTML reports: the style sheet, escaping, number formats, colours,
tables and inline figures. They format values, never compute them."""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

from embedprobe.report.heatmap import save_heatmap

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;margin:0;background:#fafafa}
main{max-width:1400px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:24px;margin:6px 0 2px}h2{font-size:19px;margin:34px 0 8px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}nav a{margin-right:14px}a{color:#0b57d0;text-decoration:none}
a:hover{text-decoration:underline}.muted{color:#57606a}.small{font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:center}
th{background:#f1f3f5;font-weight:600}td.l,th.l{text-align:left}td a{color:inherit}
td.ind{outline:2px solid #1b1f24;outline-offset:-2px}.ci{display:block;font-size:11px;color:#3d444d}
.pill{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;margin-right:4px}
.done{background:#dafbe1}.skipped{background:#ddf4ff}.failed{background:#ffebe9}.unsupported,.blocked{background:#fff8c5}
.note{background:#fff8c5;border:1px solid #e5d17a;padding:6px 10px;margin:8px 0;border-radius:4px}
.err{background:#ffebe9;border:1px solid #f5a3a3;padding:6px 10px;margin:8px 0;border-radius:4px}
details{margin:4px 0 10px}summary{cursor:pointer;color:#0b57d0}pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px;max-height:420px}
img{max-width:100%;border:1px solid #d0d7de;background:#fff;margin:4px 8px 4px 0}.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
"""

METRIC_NAMES = {"auroc": "AUROC", "acc": "ACC", "uacc": "uACC", "f1": "F1", "wf1": "wF1", "avprec": "AvPrec"}


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def fmt(v: Any, signed: bool = False) -> str:
    if v is None or not isinstance(v, (int, float)):
        return "–" if v is None else esc(v)
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def link(text: str, job: str | None) -> str:
    return f"<a href='#job-{esc(job)}' title='{esc(job)}'>{text}</a>" if job else text


def short_job(job_id: str) -> str:
    return job_id.split("__train-")[-1]


def shown_name(corpus: str, scrambled: set[str]) -> str:
    return f"{corpus}-SCRAMBLED" if corpus in scrambled else corpus


def scenario(train: str, scrambled: set[str]) -> str:
    return " + ".join(shown_name(c, scrambled) for c in train.split("+"))


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def diverging(v: float | None, lim: float) -> str:
    """Red (low) - pale yellow (0) - green (high), like the paper's figures."""
    if v is None:
        return "#ffffff"
    t = max(-1.0, min(1.0, v / lim)) if lim else 0.0
    mid = (255, 255, 191)
    return _mix(mid, (26, 152, 80), t) if t >= 0 else _mix(mid, (215, 48, 39), -t)


def sequential(v: float | None, lo: float, hi: float) -> str:
    if v is None:
        return "#ffffff"
    t = (v - lo) / (hi - lo) if hi > lo else 0.5
    return _mix((239, 243, 255), (33, 102, 172), 0.1 + 0.9 * t)


def heatmap_uri(m: Any) -> str:
    with tempfile.TemporaryDirectory() as d:
        return data_uri(save_heatmap(m, Path(d) / "m.png"))


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def item_status(item: dict[str, Any]) -> str:
    cls = "err" if item["status"] == "failed" else "note"
    return f"<div class={cls}><b>{esc(item['key'])}</b> {esc(item['status'])}: {esc(item.get('error'))}</div>"


def generic(obj: Any, depth: int = 0) -> str:
    """Any JSON value as HTML: lists of flat dicts as tables, dicts as nested sections."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        cols = list(dict.fromkeys(k for r in obj for k in r))
        if all(not isinstance(r.get(k), (dict, list)) for r in obj for k in cols):
            return table(cols, [[num4(r.get(k)) for k in cols] for r in obj])
    if isinstance(obj, dict):
        flat = {k: v for k, v in obj.items() if not isinstance(v, (dict, list))}
        nested = {k: v for k, v in obj.items() if isinstance(v, (dict, list))}
        out = table(["key", "value"], [[k, num4(v)] for k, v in flat.items()]) if flat else ""
        for k, v in nested.items():
            inner = generic(v, depth + 1)
            out += (f"<details{' open' if depth == 0 else ''}><summary>{esc(k)}</summary>{inner}</details>")
        return out
    return f"<pre>{esc(json.dumps(obj, indent=1, default=str))}</pre>"


def num4(v: Any) -> Any:
    return f"{v:.4g}" if isinstance(v, float) else v
