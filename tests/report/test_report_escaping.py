"""User-given names in reports are text, never markup: Markdown (probe report, domain gap) and the
bench's HTML. Corpus names reach a report from cache file names, so a cache named
``<svg onload=alert(1)>__logmel-128.h5`` is the attack; every table keeps its columns."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from embedprobe.bench import load_config, run_bench
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.pipeline.domain import domain_gap_for
from embedprobe.pipeline.extract import ExtractConfig, extract
from embedprobe.pipeline.probe import ProbeConfig, probe
from embedprobe.report.escape import md, md_code
from embedprobe.report.html import render_html
from embedprobe.report.markdown import write_report

SVG = "<svg onload=alert(1)>"
IMG = "<img src=x onerror=alert(2)>"
PUNCT = "a|b_`c`*[x](y)"


def _pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_md_escapes_markup_and_table_cells() -> None:
    assert md(SVG) == "&lt;svg onload=alert(1)&gt;"
    assert md("a|b") == "a\\|b" and _pipes(f"| {md('a|b|c')} |") == 2
    assert "\n" not in md("two\nlines") and md(None) == ""
    assert md_code("x`y") == "``x`y``" and md_code("`a`") == "`` `a` ``"


@pytest.fixture(scope="module")
def nasty_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A probe run on two caches whose corpus names (from their file names) are markup."""
    base = tmp_path_factory.mktemp("escaping")
    clean = base / "clean"
    for name in ("emodb", "ravdess"):
        root = write_corpus(name, base / name, n_speakers=10 if name == "emodb" else 8, clips_per_class=2,
                            duration_s=(0.4, 0.8))
        extract(ExtractConfig(model="logmel-128", corpus=name, root=str(root), out=str(clean)), progress=False)
    cache = base / "cache"
    cache.mkdir()
    shutil.copy(clean / "emodb__logmel-128.h5", cache / f"{SVG}__logmel-128.h5")
    shutil.copy(clean / "ravdess__logmel-128.h5", cache / f"{PUNCT}__logmel-128.h5")
    out = base / "results"
    probe(ProbeConfig(model="logmel-128", cache_dir=str(cache), train=(SVG,), probe="linear",
                      probe_params={"max_steps": 20}, n_bootstrap=10, max_folds=1, out=str(out)), progress=False)
    domain_gap_for("logmel-128", cache, out=out)  # composed by the caller, as the probe command does
    return out


def test_markdown_report_escapes_corpus_names(nasty_results: Path) -> None:
    text = write_report(nasty_results).read_text()
    assert "<svg" not in text and "<" not in text.replace("&lt;", "")  # no raw tag of any kind
    assert "&lt;svg onload=alert(1)&gt;" in text
    assert md(PUNCT) in text  # a\|b\_\`c\`\*\[x\](y)
    for table in re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M):
        rows = table.splitlines()
        assert len({_pipes(r) for r in rows}) == 1, rows  # no name splits a cell
    for link in re.findall(r"!\[[^\]]*\]\(([^)]*)\)", text):
        assert " " not in link and "<" not in link  # figure links stay one URL
    domain = next(nasty_results.glob("domain__*.md")).read_text()
    assert "<svg" not in domain and "&lt;svg" in domain


def test_probe_and_domain_commands_show_bracketed_names(nasty_results: Path, tmp_path: Path) -> None:
    """Terminal output: rich markup in a name is shown, not parsed (a ``[/]`` would crash rich)."""
    from typer.testing import CliRunner

    from embedprobe.cli.main import app

    cache = tmp_path / "cache"
    cache.mkdir()
    for src in sorted(nasty_results.parent.joinpath("clean").glob("*.h5")):
        name = "x[bold]y" if src.name.startswith("emodb") else "z[red]w"
        shutil.copy(src, cache / f"{name}__logmel-128.h5")
    result = CliRunner().invoke(app, ["domain", "-m", "logmel-128", "--cache-dir", str(cache), "-o",
                                      str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "x[bold]y" in result.output and "z[red]w" in result.output


TINY = """
[bench]
name = "{name}"
out = "{out}"
[extract]
models = ["logmel-128"]
[corpora.k1]
synthetic = "emodb"
n_speakers = 10
clips_per_class = 2
[corpora.k2]
synthetic = "ravdess"
n_speakers = 8
clips_per_class = 2
[grid]
train = ["k1", "k2"]
probes = ["linear"]
seeds = 1
[probe]
max_folds = 1
n_bootstrap = 10
[probe.linear]
max_steps = 20
"""


def test_bench_html_escapes_every_name(tmp_path: Path) -> None:
    config = tmp_path / "b.toml"
    config.write_text(TINY.format(name=SVG, out=tmp_path / "out"))
    run = run_bench(load_config(config), progress=False)
    assert run.count("done") == 2
    page = Path(run.report).read_text()
    assert "<svg" not in page and "&lt;svg onload=alert(1)&gt;" in page
    # the same report with markup for corpus names, as results from other sources could carry
    summary = json.loads(Path(run.json).read_text())

    def rename(x):
        if isinstance(x, str):
            x = re.sub(r"(?<![A-Za-z0-9])k1(?![A-Za-z0-9])", SVG, x)
            return re.sub(r"(?<![A-Za-z0-9])k2(?![A-Za-z0-9])", IMG, x)
        if isinstance(x, list):
            return [rename(v) for v in x]
        if isinstance(x, dict):
            return {rename(k): rename(v) for k, v in x.items()}
        return x

    page = render_html(rename(summary))
    assert "<svg" not in page and "<img src=x" not in page
    assert page.count("&lt;svg onload=alert(1)&gt;") > 5 and page.count("&lt;img src=x onerror=alert(2)&gt;") > 5
