"""`embedprobe --help` and `embedprobe list` stay light: no heavy library is imported to show them.

Counted, not timed: which modules a fresh interpreter has loaded after importing the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sklearn", "scipy", "pandas", "matplotlib", "transformers", "h5py", "opensmile", "ray")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return sorted({m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])})


def test_cli_import_loads_no_heavy_library():
    assert loaded_after("import embedprobe.cli.main") == []


def test_listing_extractors_and_corpora_loads_no_heavy_library():
    code = ("from embedprobe.extractors import EXTRACTORS\nfrom embedprobe.corpora import CORPORA\n"
            "EXTRACTORS.names(); CORPORA.names()")
    assert loaded_after(code) == []
