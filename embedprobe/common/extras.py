"""The optional dependency groups (``pip install 'embedprobe[extra]'``) and whether each is installed.

Example:
    >>> installed(None), installed("no-such-extra")
    (True, False)
"""

from __future__ import annotations

import importlib.util

EXTRA_MODULES = {  # extra -> a module whose presence means the extra is installed
    "egemaps": "opensmile",
    "ge2e": "resemblyzer",
    "hf": "transformers",
    "cdpam": "cdpam",
    "acoustics": "speechmos",
    "augment": "pedalboard",
    "hf-datasets": "datasets",
    "ray": "ray",
}


def installed(extra: str | None) -> bool:
    """Whether the ``embedprobe[extra]`` dependencies are importable (no extra: True)."""
    if not extra:
        return True
    return importlib.util.find_spec(EXTRA_MODULES.get(extra, extra).replace("-", "_")) is not None


def pip_hint(extras: str | set[str] | frozenset[str]) -> str:
    """The command that installs ``extras``: ``pip install 'embedprobe[a,b]'``."""
    names = [extras] if isinstance(extras, str) else sorted(extras)
    return f"pip install 'embedprobe[{','.join(names)}]'"
