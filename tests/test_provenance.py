"""The shared artifact helpers of :mod:`embedprobe.provenance` (JSON-safe values, atomic writes,
the artifact header), plus its docstring examples."""

from __future__ import annotations

import dataclasses
import doctest
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from embedprobe import provenance
from embedprobe.provenance import (
    artifact_header,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    fingerprint,
    json_safe,
    json_text,
    to_jsonable,
)


def test_docstring_examples_run():
    result = doctest.testmod(provenance, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 7 and result.failed == 0


@dataclasses.dataclass(frozen=True)
class _Cfg:
    probe: str = "mlp"
    seeds: tuple[int, ...] = (0, 1)
    out: Path = Path("results")


def test_json_safe_handles_every_kind_of_value():
    obj = {"cfg": _Cfg(), "nan": float("nan"), "inf": -np.inf, "f32": np.float32(0.25), "i64": np.int64(7),
           "arr": np.array([[1.0, np.nan], [2.0, 3.0]]), "zero_d": np.array(4.5), 3: (True, None, "x"),
           "bool": np.bool_(True)}
    out = json_safe(obj)
    assert out == {"cfg": {"probe": "mlp", "seeds": [0, 1], "out": "results"}, "nan": None, "inf": None,
                   "f32": 0.25, "i64": 7, "arr": [[1.0, None], [2.0, 3.0]], "zero_d": 4.5,
                   "3": [True, None, "x"], "bool": True}
    json.dumps(out, allow_nan=False)  # strict JSON
    assert type(out["i64"]) is int and type(out["f32"]) is float


def test_json_text_is_strict_and_unknown_types_become_strings():
    class Thing:
        def __str__(self) -> str:
            return "thing"

    text = json_text({"a": [float("nan"), 1.5], "b": Thing()}, indent=None)
    assert text == '{"a": [null, 1.5], "b": "thing"}'


def test_fingerprints_do_not_change():
    # json_safe is for writing; fingerprints keep going through to_jsonable (old caches must match)
    assert to_jsonable({"x": (1, 2), "p": Path("a")}) == {"x": [1, 2], "p": "a"}
    assert fingerprint({"probe": "mlp", "seeds": [0, 1]}) == fingerprint({"seeds": (0, 1), "probe": "mlp"})


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "deep" / "r.json"
    assert atomic_write_json(path, {"v": 1}) == path
    atomic_write_json(path, {"v": float("inf")})
    assert json.loads(path.read_text()) == {"v": None}
    atomic_write_text(tmp_path / "r.csv", "a,b\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "r.csv", "r.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "r.json", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk gone")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_the_written_file_has_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = atomic_write_text(tmp_path / "r.txt", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_artifact_header_fields_and_order():
    t0 = time.perf_counter()
    head = artifact_header("embedprobe.probe", 3, _Cfg(), started=t0)
    assert list(head) == ["format", "kind", "config", "versions", "code_version", "created_unix", "seconds"]
    assert head["format"] == 3 and head["kind"] == "embedprobe.probe"
    assert head["config"] == {"probe": "mlp", "seeds": [0, 1], "out": "results"}
    assert head["versions"]["python"] and head["code_version"]
    assert 0 <= head["seconds"] < 60 and abs(head["created_unix"] - time.time()) < 60
    assert artifact_header("k", 1, None)["config"] is None  # an explicit None is a config
    assert "seconds" not in artifact_header("k", 1)
    assert artifact_header("k", 1, seconds=2.00049)["seconds"] == 2.0
