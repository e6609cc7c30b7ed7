"""``extract --engine``: without Ray, ``--engine ray`` says the pip command; the local engine never imports Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from embedprobe.cli.main import app

REPO = Path(__file__).resolve().parents[2]


def test_engine_ray_without_ray_says_the_pip_command(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "cache"
    result = CliRunner().invoke(app, ["extract", "-m", "logmel-128", "-c", "emodb", "-r", str(tmp_path / "nowhere"),
                                      "-o", str(out), "-q", "--engine", "ray"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and flat.count("error:") == 1 and "Traceback" not in flat, flat
    assert "pip install 'embedprobe[ray]'" in flat and "--engine ray" in flat, flat
    assert not out.exists()  # refused before scanning the (missing) corpus


def test_the_local_engine_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys, json\n"
        "from embedprobe.corpora.synthetic import write_corpus\n"
        "from embedprobe.pipeline.extract import ExtractConfig, extract\n"
        f"root = write_corpus('emodb', {str(tmp_path / 'c')!r}, n_speakers=2, clips_per_class=1)\n"
        f"s = extract(ExtractConfig(model='logmel-128', corpus='emodb', root=str(root), out={str(tmp_path)!r}),"
        " progress=False)\n"
        "print(json.dumps([s.n_new, s.engine, sorted(m for m in sys.modules if m.split('.')[0] == 'ray')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    n_new, engine, ray_modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert n_new > 0 and engine == "local" and ray_modules == []
