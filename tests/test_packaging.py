"""The build settings put every module and data file of embedprobe/ into the sdist and the wheel.

A fast check of the settings (no build); ``scripts/wheel_check.sh`` (run by ``.ci/run``) builds
both, installs the wheel outside the checkout and runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def test_package_discovery_finds_every_subpackage():
    setuptools = pytest.importorskip("setuptools")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(setuptools.find_namespace_packages(str(REPO), **config["packages"]["find"]))
    wanted = {p.parent.relative_to(REPO).as_posix().replace("/", ".")
              for p in (REPO / "embedprobe").rglob("*.py") if "__pycache__" not in p.parts}
    assert wanted <= found, f"packages.find misses {sorted(wanted - found)}"
    assert all(name == "embedprobe" or name.startswith("embedprobe.") for name in found)
    assert config.get("include-package-data", True), "data files under embedprobe/ would not ship"


def test_manifest_grafts_the_package_and_what_the_wheel_check_needs():
    lines = [line.split() for line in (REPO / "MANIFEST.in").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    grafted = {line[1] for line in lines if line[0] == "graft"}
    assert {"embedprobe", "tests", "constraints"} <= grafted
