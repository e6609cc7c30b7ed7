"""The bench computes, the report formats: every number in report.html is in bench.json, and an
older bench.json (without the computed numbers) still renders the same report."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_bench import CORPORA_AB  # tests/bench/tiny_bench.py

from embedprobe.bench import load_config, run_bench
from embedprobe.bench.collect import read_summary, rewrite_report
from embedprobe.bench.extras import load_acoustics
from embedprobe.bench.numbers import acoustic_numbers, upgrade_summary
from embedprobe.report.html import render_html

CONFIG = """
[bench]
name = "numbers"
out = "{out}"
[extract]
models = ["logmel-128"]
""" + CORPORA_AB + """[grid]
train = ["a", "b"]
probes = ["linear"]
seeds = 1
scramble = [[], ["b"]]
[probe]
max_folds = 1
n_bootstrap = 20
[probe.linear]
max_steps = 20
[acoustics]
enabled = true
max_clips = 6
[domain]
enabled = true
"""

NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("bench_numbers")
    path = base / "numbers.toml"
    path.write_text(CONFIG.format(out=base / "out"))
    run = run_bench(load_config(path), progress=False)
    assert run.count("failed") == 0
    return base / "out"


class _Cells(HTMLParser):
    """The text of every table cell (``<td>``), figures and attributes left out."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.cells = 0, []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "td":
            self.depth += 1
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.cells[-1] += data


def _numbers_shown(page: str) -> set[str]:
    parser = _Cells()
    parser.feed(page)
    tokens = {t for cell in parser.cells for t in re.split(r"[\s\[\](),/]+|n=", cell)}
    return {t for t in tokens if NUMBER.fullmatch(t)}


def _renderings(obj: Any, out: set[str]) -> set[str]:
    """Every way the report writes a number of the summary (2 or 4 significant digits, signed)."""
    if isinstance(obj, bool):
        return out
    if isinstance(obj, (int, float)):
        v = float(obj)
        out.update({f"{v:.2f}", f"{v:+.2f}", f"{v:.4g}", f"{v:g}", f"{v:.1f}", f"{v:.0f}"})
        if isinstance(obj, int):
            out.add(str(obj))
    elif isinstance(obj, dict):
        for v in obj.values():
            _renderings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _renderings(v, out)
    return out


def test_every_number_in_the_html_is_in_bench_json(bench: Path) -> None:
    summary = json.loads((bench / "bench.json").read_text())
    page = (bench / "report.html").read_text()
    nums = summary["acoustics"]["numbers"]
    assert nums and nums["quartiles"] and nums["distances"]  # the section has numbers to check
    assert summary["domain"]["items"][0]["result"]["frechet"]
    shown = _numbers_shown(page)
    assert len(shown) > 30
    missing = sorted(shown - _renderings(summary, set()))
    assert not missing, f"numbers in report.html that bench.json lacks: {missing[:20]}"
    q = nums["quartiles"][0]
    assert f"{q['median']:.2f} [{q['q25']:.2f}, {q['q75']:.2f}] n={q['n']}" in page


def test_acoustic_numbers_are_quartiles_and_distances() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 200), rng.normal(1, 1, 100)
    nums = acoustic_numbers({"raw": {"x": {"snr": a}, "y": {"snr": np.r_[b, np.nan]}}})
    qx, qy = nums["quartiles"]
    assert (qx["q25"], qx["median"], qx["q75"]) == tuple(np.percentile(a, [25, 50, 75]))
    assert qy["n"] == 100  # NaN dropped
    (d,) = nums["distances"]
    assert (d["corpus_a"], d["corpus_b"], d["measure"]) == ("x", "y", "snr") and 0 < d["ks"] <= 1
    assert acoustic_numbers(None) is None and acoustic_numbers({}) is None


def _as_format_1(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as the first format wrote it: no computed counts, no acoustic numbers."""
    old = json.loads(json.dumps(summary))
    old["format"] = 1
    old.pop("n_jobs")
    for g in old["groups"]:
        g.pop("n_jobs"), g.pop("n_finished")
    for p in old["provenance"].values():
        for c in p["caches"].values():
            c.pop("n_folds")
    old["acoustics"].pop("numbers")
    return old


def _no_figures(page: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "PNG", page)


def test_older_bench_json_is_upgraded_on_read(bench: Path, tmp_path: Path) -> None:
    summary = json.loads((bench / "bench.json").read_text())
    values = load_acoustics(bench, ["a", "b"])
    old = _as_format_1(summary)
    assert upgrade_summary(old, acoustics=values) == summary
    assert "n_jobs" not in old  # the input is left as it is
    assert _no_figures(render_html(upgrade_summary(old, acoustics=values), acoustics=values)) == _no_figures(
        render_html(summary, acoustics=values))
    # without the per-clip values the acoustic section says so instead of failing
    bare = render_html(upgrade_summary(old))
    assert "No per-clip acoustic values" in bare and "Cross-corpus matrices" in bare
    # an older bench folder re-renders from its bench.json
    (bench / "bench.json").write_text(json.dumps(old))
    try:
        assert read_summary(bench) == summary
        page = rewrite_report(bench).read_text()
        assert _no_figures(page) == _no_figures(render_html(summary, acoustics=values))
    finally:
        (bench / "bench.json").write_text(json.dumps(summary, indent=1))
