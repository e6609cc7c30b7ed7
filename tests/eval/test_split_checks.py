"""Splits that say when they cannot measure: each degenerate case gives its sentence, in the
library, the CLI and the bench, and no numpy RuntimeWarning reaches the user."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embedprobe.bench.config import parse_config
from embedprobe.bench.runner import run_bench
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.eval.split_checks import DegenerateSplitError, check_folds, check_part, check_run
from embedprobe.pipeline.extract import ExtractConfig, extract
from embedprobe.pipeline.probe import ProbeConfig, SplitWarning, load_corpus, probe
from embedprobe.report.markdown import write_report

Row = dict[str, str]
FAST = {"probe": "linear", "seeds": (0,), "n_bootstrap": 20, "max_folds": 1}


# -- pure checks ---------------------------------------------------------------------------------
def test_each_part_names_the_missing_and_single_classes() -> None:
    (missing,) = check_part("c", "speaker/03", "test", np.array([0, 0, 1, 1, 2, 2]), [0, 1, 2, 3])
    assert missing.stops and missing.kind == "missing-class"
    assert "test part of fold 'speaker/03' of corpus 'c' has no clip of sad" in missing.message
    assert "Fix:" in missing.message and "--allow-degenerate" in missing.message
    (single,) = check_part("c", "random", "val", np.array([0, 0, 1, 2, 2, 3, 3]), [0, 1, 2, 3], "random")
    assert not single.stops and "single clip of happy" in single.message
    assert single.record()["stops"] is False and single.record()["fold"] == "random"


def test_confounding_needs_every_known_speaker_on_one_label() -> None:
    y = np.repeat([0, 1, 2], 4)
    parts = {"random": np.array(["train", "train", "test", "test"] * 3)}
    spk = np.repeat(["a", "b", "c"], 4)
    assert [i.kind for i in check_folds("c", y, spk, parts, ["random"])] == ["confounded"]
    mixed = np.roll(spk, 1)
    assert check_folds("c", y, mixed, parts, ["random"]) == []
    unknown = np.array(["unknown"] * 12)  # no speaker ids: nothing to confound
    assert check_folds("c", y, unknown, parts, ["random"]) == []


def test_random_fallback_only_when_nothing_else_was_offered() -> None:
    y = np.array([0, 1] * 6)
    parts = {"random": np.repeat(["train", "val", "test"], 4)}
    spk = np.array(["03", "03", "08", "08"] * 3)
    (issue,) = check_folds("sub", y, spk, parts, ["random"], "random", protocols=["random"])
    assert issue.kind == "random-fallback" and "only 2 speaker(s) with ids" in issue.message
    assert check_folds("sub", y, spk, parts, ["random"], "random", protocols=["speaker", "random"]) == []
    assert check_folds("sub", y, spk, parts, ["random"], "random", protocols=None) == []
    none = check_folds("sub", y, np.array(["unknown"] * 12), parts, ["random"], "random", protocols=["random"])
    assert "clips without speaker ids" in none[0].message


def test_an_empty_val_part_is_allowed_and_test_only_corpora_check_their_pooled_test() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    parts = {"f1": np.array(["train", "train", "train", "train", "test", ""]),
             "f2": np.array(["train", "train", "train", "train", "", "test"])}
    spk = np.array(["a", "b", "a", "b", "c", "c"])
    kinds = [(i.fold, i.kind) for i in check_folds("c", y, spk, parts, ["f1", "f2"])]
    assert ("f1", "missing-class") in kinds and not any(p == "val" for p in kinds)
    pooled = check_folds("c", y, spk, parts, ["f1"], used=(), pooled_test=True)
    assert [(i.fold, i.kind) for i in pooled] == [("all test parts", "few-clips")]


# -- end to end on synthetic manifests -----------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row]]:
    """A synthetic manifest corpus (4 speakers x 4 classes x 3 clips) and its rows."""
    base = tmp_path_factory.mktemp("degen")
    path = write_corpus("manifest", base / "corpus", n_speakers=4, clips_per_class=3, seed=1)
    with path.open(newline="") as f:
        return base, list(csv.DictReader(f))


def _cache(corpus: tuple[Path, list[Row]], name: str, edit: Callable[[Row], Row]) -> Path:
    """Write ``manifest_<name>.csv`` next to the audio with ``edit`` applied to each row; extract it."""
    base, rows = corpus
    out = base / name / "cache"
    if out.exists():
        return out
    rows = [edit(dict(r)) for r in rows]
    path = base / "corpus" / f"manifest_{name}.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    extract(ExtractConfig(model="logmel-128", corpus="manifest", root=str(path), out=str(out)), progress=False)
    return out


def _per_folder(r: Row) -> Row:
    """One folder per speaker and emotion: the speaker column follows the label."""
    return r | {"speaker": f"{r['speaker']}-{r['label']}"}


def _two_speakers(r: Row) -> Row:
    return r | {"speaker": "03" if r["speaker"] in ("spk01", "spk02") else "08"}


def _split(test_unless: str = "", val_keep: str = "") -> Callable[[Row], Row]:
    """spk01 tests, spk02 validates, the rest trains; ``test_unless`` label moves from test to train,
    only the first ``val_keep`` clip stays in val."""
    seen: set[str] = set()

    def edit(r: Row) -> Row:
        split = {"spk01": "test", "spk02": "val"}.get(r["speaker"], "train")
        if split == "test" and r["label"].lower().startswith(test_unless or "-"):
            split = "train"
        if split == "val" and val_keep and r["label"].lower().startswith(val_keep):
            split = "train" if val_keep in seen else "val"
            seen.add(val_keep)
        return r | {"split": split}

    return edit


def _cfg(cache: Path, out: Path, **kw) -> ProbeConfig:
    return ProbeConfig(model="logmel-128", cache_dir=str(cache), train=("manifest",), out=str(out), **FAST | kw)


def test_speaker_per_emotion_folder_stops_with_one_sentence(corpus, tmp_path: Path) -> None:
    cache = _cache(corpus, "perfolder", _per_folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(DegenerateSplitError, match="every speaker carries a single label") as e:
            probe(_cfg(cache, tmp_path / "res"), progress=False)
    assert "corpus 'manifest'" in str(e.value).lower() and "--allow-degenerate" in str(e.value)
    assert not (tmp_path / "res").exists()  # nothing written
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = probe(_cfg(cache, tmp_path / "res", allow_degenerate=True), progress=False)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    rec = json.loads(path.read_text())
    kinds = {i["kind"] for i in rec["split_checks"]}
    assert "confounded" in kinds and all(set(i) >= {"corpus", "fold", "message", "stops"} for i in rec["split_checks"])
    assert rec["config"]["allow_degenerate"] is True


def test_missing_class_without_confounding_stops(corpus, tmp_path: Path) -> None:
    cache = _cache(corpus, "nosad", _split(test_unless="sad"))
    with pytest.raises(DegenerateSplitError, match="test part of fold 'given' of corpus 'manifest' has no clip of sad"):
        probe(_cfg(cache, tmp_path), progress=False)


def test_single_clip_of_a_class_warns_and_is_recorded(corpus, tmp_path: Path) -> None:
    cache = _cache(corpus, "oneangry", _split(val_keep="ang"))
    with pytest.warns(SplitWarning, match="validation part of fold 'given' .* single clip of angry"):
        path = probe(_cfg(cache, tmp_path), progress=False)
    (issue,) = json.loads(path.read_text())["split_checks"]
    assert issue["kind"] == "few-clips" and issue["stops"] is False


def test_random_fallback_is_said_at_probe_time_and_in_the_report(corpus, tmp_path: Path) -> None:
    cache = _cache(corpus, "twospk", _two_speakers)
    data, rec = load_corpus(cache / "manifest__logmel-128.h5", layer=None, pooling="mean", frames=False)
    assert rec["protocol"] == "random" and data.meta["protocols"] == ["random"]
    assert [i.kind for i in check_run({"manifest": data}, [("manifest",)], ["manifest"])
            if i.kind == "random-fallback"] == ["random-fallback"]
    with pytest.warns(SplitWarning) as said:  # this small random split also has single clips of a class
        probe(_cfg(cache, tmp_path), progress=False)
    assert sum("fell back from a speaker-independent split" in str(w.message) for w in said) == 1
    report = write_report(tmp_path).read_text()
    assert "### Split checks" in report and "fell back from a speaker-independent split" in report


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, EMBEDPROBE_NO_PROGRESS="1", COLUMNS="400")
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "embedprobe.cli.main", "probe",
                           "--model", "logmel-128", "--train", "manifest", "--probe", "linear", "--seeds", "1",
                           "--bootstrap", "20", "-q", *args], capture_output=True, text=True, env=env)


def test_cli_refuses_then_allows_a_degenerate_split(corpus, tmp_path: Path) -> None:
    cache = _cache(corpus, "perfolder", _per_folder)
    r = _cli("--cache-dir", str(cache), "--out", str(tmp_path / "res"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1 and "every speaker carries a single label" in r.stderr
    assert not (tmp_path / "res").exists()
    r = _cli("--cache-dir", str(cache), "--out", str(tmp_path / "res"), "--allow-degenerate")
    assert r.returncode == 0, r.stderr
    assert "RuntimeWarning" not in r.stderr and "Mean of empty slice" not in r.stderr
    assert r.stderr.count("every speaker carries a single label") == 1  # said once


def test_cli_says_the_random_fallback_once(corpus, tmp_path: Path) -> None:
    cache = _cache(corpus, "twospk", _two_speakers)
    r = _cli("--cache-dir", str(cache), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("fell back from a speaker-independent split") == 1 and "RuntimeWarning" not in r.stderr


def test_a_degenerate_bench_job_fails_alone(corpus, tmp_path: Path) -> None:
    base, _ = corpus
    _cache(corpus, "perfolder", _per_folder)
    cfg = parse_config({
        "bench": {"name": "degen", "out": str(tmp_path / "out")},
        "extract": {"models": ["logmel-128"], "cache_dir": str(tmp_path / "cache")},
        "corpora": {"a": {"synthetic": "emodb", "n_speakers": 4, "clips_per_class": 3, "seed": 1},
                    "d": {"reader": "manifest", "root": str(base / "corpus" / "manifest_perfolder.csv")}},
        "grid": {"train": ["a", "d"], "test": ["a"], "probes": ["linear"], "seeds": 1},
        "probe": {"max_folds": 1, "n_bootstrap": 0},
    })
    run = run_bench(cfg, progress=False, write=False)
    status = {k: (r.status, r.error or "") for k, r in run.results.items()}
    failed = [e for s, e in status.values() if s == "failed"]
    assert len(failed) == 1 and "every speaker carries a single label" in failed[0], status
    assert sum(s == "done" for s, _ in status.values()) == len(status) - 1
