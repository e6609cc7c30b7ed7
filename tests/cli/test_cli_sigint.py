"""Ctrl-C at start-up (while the modules load, or before a command's own handler) ends with the
"interrupted" line and exit 130, never a traceback. Real processes, real SIGINTs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_report import communicate

# The console script's own code, behind an import hook that sends this process a SIGINT the
# moment a chosen module starts loading: a deterministic "Ctrl-C during start-up".
LAUNCH = """
import importlib.abc, os, signal, sys
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["SIGINT_AT"]:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Hook())
sys.argv = ["embedprobe", *sys.argv[1:]]
from embedprobe.cli.main import main
sys.exit(main())
"""


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    said = f"{what}: exit {proc.returncode}\nstdout: {proc.stdout[-800:]}\nstderr: {proc.stderr[-2000:]}"
    assert proc.returncode == 130, said
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, said
    assert "interrupted" in proc.stderr and "run the same command again" in " ".join(proc.stderr.split()), said


@pytest.mark.parametrize(("module", "args"), [
    ("typer", ["list", "corpora"]),  # the first heavy import of the command
    ("rich.console", ["list", "corpora"]),
    ("embedprobe.cli.probe", ["list", "corpora"]),  # the last command module
    ("embedprobe.cli.catalog", ["list", "corpora"]),  # a command's own lazy import
    ("embedprobe.pipeline.extract", ["extract", "-m", "logmel-128", "-c", "emodb", "-r", "nowhere"]),
])
def test_sigint_while_loading(module: str, args: list[str], tmp_path: Path) -> None:
    env = dict(os.environ, SIGINT_AT=module)
    proc = subprocess.run([sys.executable, "-c", LAUNCH, *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    _check(proc, f"SIGINT when {module} loads")


@pytest.mark.parametrize("after", ["typer", "embedprobe.cli.common", "embedprobe.cli.main", "embedprobe.cli.catalog",
                                   "embedprobe.extractors"])
def test_sigint_to_the_real_command_during_start_up(after: str, tmp_path: Path) -> None:
    """The installed ``embedprobe`` script, sent a SIGINT as soon as module ``after`` has loaded.

    ``PYTHONPROFILEIMPORTTIME`` makes the process report each import as it finishes, so the
    signal lands in embedprobe's start-up (not in the interpreter's own, which no package can
    catch) without guessing a delay.
    """
    script = Path(sys.executable).with_name("embedprobe")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "embedprobe.cli.main"]
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.Popen([*cmd, "list", "extractors"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("import time:") and line.rstrip().split("|")[-1].strip() == after:
            proc.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail(f"{after} was never imported:\n{''.join(lines[-20:])}")
    out, err = communicate(proc, 120, f"SIGINT after {after} loaded")
    err = "".join(line for line in (lines + err.splitlines(keepends=True)) if not line.startswith("import time:"))
    _check(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), f"SIGINT after {after} loaded")
