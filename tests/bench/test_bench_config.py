"""Bench configs: grid expansion, job ids and fingerprints, and errors that name the bad key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from embedprobe.bench import expand, job_fingerprint, load_config, parse_config, plan_summary
from embedprobe.bench.grid import resolve_layers
from embedprobe.errors import BadValueError, EmbedprobeError

REPO = Path(__file__).resolve().parents[2]

BASE = {
    "bench": {"name": "t", "out": "out/t", "jobs": 2},
    "extract": {"models": ["logmel-128"]},
    "corpora": {"msp": {"synthetic": "msp-podcast"}, "iemocap": {"root": "/data/IEMOCAP"},
                "crema": {"root": "/data/CREMA-D", "reader": "crema-d"}},
    "grid": {"train": ["msp", "iemocap", "msp+iemocap"], "test": ["all"], "probes": ["linear", "mlp"],
             "seeds": 2, "scramble": [[], ["iemocap"]],
             "scramble_train": {"iemocap": ["msp", "msp+iemocap"]}},
    "probe": {"max_folds": 2, "n_bootstrap": 100, "mlp": {"hidden": [64]}},
}


def cfg_with(**changes: dict) -> dict:
    raw = copy.deepcopy(BASE)
    for section, values in changes.items():
        raw.setdefault(section, {}).update(values)
    return raw


def test_grid_expands_into_training_set_jobs_with_baselines() -> None:
    cfg = parse_config(BASE)
    assert cfg.grid.seeds == (0, 1) and cfg.grid.test == ("msp", "iemocap", "crema")
    assert cfg.corpus("msp").reader == "msp-podcast" and cfg.corpus("crema").reader == "crema-d"
    jobs = expand(cfg)
    linear = [j for j in jobs if j.probe == "linear"]
    clean = [(j.train, j.role) for j in linear if not j.scramble]
    # the grid's training sets, then a baseline for the test corpus never trained alone
    assert clean == [(("msp",), "grid"), (("iemocap",), "grid"), (("msp", "iemocap"), "grid"),
                     (("crema",), "baseline")]
    scr = [j.train for j in linear if j.scramble]
    # scramble_train restricts the training sets; "iemocap alone" is implied by every scrambled run
    assert scr == [("msp",), ("msp", "iemocap"), ("crema",)]
    assert len(jobs) == 2 * (4 + 3) and len({j.id for j in jobs}) == len(jobs)
    j = jobs[0]
    assert j.tests == ("msp", "iemocap", "crema") and j.seeds == (0, 1) and j.layer == "default"
    assert j.id == "logmel-128__default__linear__aug0__clean__train-msp"
    mlp = next(x for x in jobs if x.probe == "mlp" and x.scramble)
    assert mlp.id == "logmel-128__default__mlp__aug0__scr-iemocap__train-msp"


def test_layers_resolve_against_the_caches() -> None:
    have = ["layer0", "layer1", "layer2"]
    assert resolve_layers(("default",), have, "m") == ["layer2"]
    assert resolve_layers(("all", "layer1"), have, "m") == have
    with pytest.raises(BadValueError, match="layer7.*layer0"):
        resolve_layers(("layer7",), have, "m")
    cfg = parse_config(cfg_with(grid={"layers": ["default", "layer0"]}))
    ids = {j.layer for j in expand(cfg, {"logmel-128": have})}
    assert ids == {"layer2", "layer0"}
    # a cache whose last layer is a clip-level head (w2v2-msp-dim's adv): default is its default layer
    assert resolve_layers(("default",), [*have, "adv"], "m", "layer2") == ["layer2"]
    assert {j.layer for j in expand(cfg, {"logmel-128": [*have, "adv"]}, {"logmel-128": "layer2"})} == {"layer2", "layer0"}


def test_job_fingerprint_follows_what_changes_the_numbers() -> None:
    a = parse_config(BASE)
    j = expand(a)[0]
    assert job_fingerprint(a, j) == job_fingerprint(parse_config(BASE), j)
    moved = parse_config(cfg_with(bench={"out": "elsewhere"}, extract={"cache_dir": "/other/cache"}))
    assert job_fingerprint(moved, j) == job_fingerprint(a, j)  # paths do not change results
    for change in ({"probe": {"n_bootstrap": 200}}, {"probe": {"params": {"lr": 0.01}}},
                   {"corpora": {"msp": {"synthetic": "msp-podcast", "seed": 3}}}):
        other = parse_config(cfg_with(**change))
        assert job_fingerprint(other, j) != job_fingerprint(a, j), change
    seeds = parse_config(cfg_with(grid={"seeds": [0, 1, 2]}))
    assert job_fingerprint(seeds, expand(seeds)[0]) != job_fingerprint(a, j)


@pytest.mark.parametrize("changes, match", [
    ({"grid": {"seed": 3}}, r"\[grid\]: bad key 'seed', expected one of \[.*'seeds'.*Did you mean 'seeds'"),
    ({"bench": {"jobz": 2}}, r"'jobz', expected one of \['engine', 'jobs', 'name', 'out'\]"),
    ({"extrakt": {}}, r"'extrakt'.*'extract'"),
    ({"grid": {"probes": ["cosine"]}}, r"'cosine', expected one of \['linear', 'logreg', 'mlp', 'svm'\]"),
    ({"grid": {"train": ["msp+voxceleb"]}}, r"'voxceleb', expected one of \['crema', 'iemocap', 'msp'\]"),
    ({"grid": {"augment_rates": [0, 20]}}, r"augment_rates.*\[0, 1\]"),
    ({"grid": {"seeds": "two"}}, r"seeds.*count"),
    ({"grid": {"scramble": [["ravdess"]]}}, r"'ravdess'"),
    ({"probe": {"params": {"learning_rate": 0.1}}}, r"'learning_rate'.*'lr'"),
    ({"probe": {"linear": {"hidden": [8]}}}, r"'hidden'"),
    ({"probe": {"params": {"random_state": 1}}}, r"random_state.*\[grid\] seeds"),
    ({"probe": {"pooling": "max"}}, r"'max', expected one of \['mean', 'meanstd'\]"),
    ({"probe": {"frames": True}}, r"frames = true"),
    ({"extract": {"models": ["wavlm-huge"]}}, r"'wavlm-huge'.*wavlm-large"),
    ({"extract": {"dtyp": "float16"}}, r"'dtyp'.*'dtype'"),
    ({"bench": {"jobs": 0}}, r"jobs.*>= 1"),
    ({"report": {"statistic": "median"}}, r"'median'.*'last20_mean'"),
    ({"domain": {"max_clips": 5}}, r"'max_clips'"),
    ({"extract": {"augment": "paper"}}, r"\[extract\]: bad key 'augment'.*\[extract.augmented\]"),
    ({"extract": {"engine": "ray"}}, r"\[extract\]: bad key 'engine'"),  # the bench's own: [bench] engine
    ({"extract": {"augmented": {"augment": "paper", "copiez": 2}}}, r"'copiez'.*'copies'"),
    ({"extract": {"augmented": {"copies": 2}}}, r"augment None.*\"paper\""),
])
def test_config_errors_name_the_key_and_the_allowed_values(changes: dict, match: str) -> None:
    with pytest.raises(BadValueError, match=match):
        parse_config(cfg_with(**changes))


def test_corpus_table_errors() -> None:
    raw = cfg_with()
    raw["corpora"]["x"] = {"root": "/a", "synthetic": "emodb"}
    with pytest.raises(BadValueError, match="either root"):
        parse_config(raw)
    raw["corpora"]["x"] = {"root": "/a"}  # 'x' is no reader name
    with pytest.raises(BadValueError, match="reader = NAME"):
        parse_config(raw)
    raw["corpora"]["x"] = {"synthetic": "voxceleb"}
    with pytest.raises(BadValueError, match="'voxceleb'.*'iemocap'"):
        parse_config(raw)


def test_load_config_file_and_overrides(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\ntrain = 1\n")
    with pytest.raises(EmbedprobeError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(BadValueError, match="bench config file"):
        load_config(tmp_path / "missing.toml")
    cfg = load_config(REPO / "benchmarks/configs/emodb_synthetic.toml",
                      overrides=["grid.seeds=3", "corpora.emodb.root=/x/emodb", "probe.n_bootstrap=10"],
                      models=["egemaps"], jobs=1, out=str(tmp_path / "o"))
    assert cfg.grid.seeds == (0, 1, 2) and cfg.corpus("emodb").root == "/x/emodb"
    assert cfg.extract.models == ("egemaps",) and cfg.jobs == 1 and cfg.probe.n_bootstrap == 10
    assert cfg.extract.cache_dir == str(tmp_path / "o" / "cache")
    with pytest.raises(BadValueError, match="override"):
        load_config(REPO / "benchmarks/configs/emodb_synthetic.toml", overrides=["grid.seeds"])


def test_paper_config_expands_to_the_figure_grid() -> None:
    cfg = load_config(REPO / "benchmarks/configs/paper_fig2_fig3.toml", models=["wavlm-large"])
    jobs = expand(cfg)
    assert cfg.grid.augment_rates == (0.0, 0.2, 0.5, 0.7, 1.0)
    clean = {j.train for j in jobs if not j.scramble}
    assert clean == {("msp-podcast",), ("iemocap",), ("msp-podcast", "iemocap"),
                     ("msp-podcast", "crema-d"), ("msp-podcast", "iemocap", "crema-d"), ("crema-d",)}
    scrambled = {j.train for j in jobs if j.scramble}
    assert scrambled == {("msp-podcast",), ("msp-podcast", "iemocap"), ("crema-d",)}
    assert len(jobs) == 5 * (6 + 3)


def test_augmentation_rates_run_with_augmented_caches(tmp_path: Path) -> None:
    from embedprobe.bench import grid

    raw = cfg_with(bench={"out": str(tmp_path)}, grid={"augment_rates": [0, 0.5]},
                   extract={"augmented": {"augment": "paper", "copies": 2}})
    cfg = parse_config(raw)
    half = [j for j in expand(cfg) if j.augment_rate == 0.5]
    assert half and all("__aug50__" in j.id for j in half)
    pc = grid.probe_config(cfg, half[0], tmp_path)  # the probe command mixes augmented copies in
    assert pc.augment_rate == 0.5 and pc.augment == "paper"
    assert all(r["state"] == "to run" for r in plan_summary(cfg)["jobs"])
    assert job_fingerprint(cfg, half[0]) != job_fingerprint(
        parse_config(cfg_with(bench={"out": str(tmp_path)}, grid={"augment_rates": [0, 0.5]},
                              extract={"augmented": {"augment": "paper", "copies": 3}})), half[0])