"""Every registry: discovery finds the built-ins without heavy imports, lists itself, takes plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import embedprobe.cli.catalog  # noqa: F401 - creates every registry
from embedprobe.errors import BadValueError
from embedprobe.probes.registry import NOT_PLUGINS, PROBES
from embedprobe.registry import PLUGINS_ENV, REGISTRIES, Registry, import_package_modules

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **env))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registry_lists_every_item_in_one_row(kind: str) -> None:
    reg = REGISTRIES[kind]
    rows = reg.rows()
    assert len(rows) == len(reg) > 0
    assert all(next(iter(row)) == "name" and json.dumps(row) for row in rows)
    with pytest.raises(BadValueError, match=f"embedprobe list {kind}"):
        reg.get("no-such-plugin")


def test_discovery_imports_no_heavy_dependency() -> None:
    """Listing every kind imports neither torch nor transformers (probes may import sklearn)."""
    out = _python(
        "import sys\n"
        "from embedprobe.cli.catalog import rows\n"
        "from embedprobe.registry import REGISTRIES\n"
        "for kind in REGISTRIES:\n"
        "    rows(kind)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'opensmile', 'matplotlib') if m in sys.modules))\n")
    assert out.split() == ["[]"]


def test_modules_skipped_by_probe_discovery_register_nothing() -> None:
    before = PROBES.names()
    import_package_modules("embedprobe.probes")  # the skipped ones too
    assert PROBES.names() == before and NOT_PLUGINS


def test_a_registry_without_a_package_still_loads_external_plugins(tmp_path: Path) -> None:
    plugin = tmp_path / "ridge_domain_probe.py"
    plugin.write_text(
        "from embedprobe.eval.domain_probes import DOMAIN_PROBES, DomainProbe\n"
        "DOMAIN_PROBES.add('ridge', DomainProbe(lambda seed, threads: None, 'ridge classifier'))\n")
    out = _python("from embedprobe.eval.domain_probes import DOMAIN_PROBES; print(DOMAIN_PROBES.names())",
                  **{PLUGINS_ENV: str(plugin)})
    assert out.strip() == "['logistic', 'ridge']"


def test_extractor_prefixes_are_a_registry() -> None:
    from embedprobe.extractors import PREFIXES
    from embedprobe.extractors.registry import get_entry, prefixes

    assert prefixes() == ["hf"] and REGISTRIES["prefixes"] is PREFIXES
    assert PREFIXES.rows()[0]["name"].startswith("hf:<")
    with pytest.raises(BadValueError):
        get_entry("hf:")  # the factory runs (and refuses an empty id)


def test_a_temporary_registry_is_a_list_kind() -> None:
    reg = Registry[str]("gizmo", package=None, describe=lambda name, item: {"name": name, "colour": item})
    try:
        reg.add("g1", "red")
        from embedprobe.cli.catalog import rows

        assert rows("gizmos") == [{"name": "g1", "colour": "red"}]
        assert "gizmos" in [row["name"] for row in rows()]
    finally:
        del REGISTRIES["gizmos"]
