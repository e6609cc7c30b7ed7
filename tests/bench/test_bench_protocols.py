"""Bench configs say a corpus's split protocol and the fold aggregation, as `embedprobe probe` does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from embedprobe.bench import expand, job_fingerprint, load_config, parse_config, run_bench
from embedprobe.bench.checks import ConfigError
from embedprobe.bench.grid import probe_config

RAW = {
    "extract": {"models": ["logmel-128"]},
    "corpora": {"emo": {"synthetic": "emodb", "protocol": "loso"}},
    "grid": {"train": ["emo"]},
    "probe": {"aggregate": "pooled"},
}

TINY = """
[bench]
name = "loso"
out = "{out}"
[extract]
models = ["logmel-128"]
cache_dir = "{cache}"
[corpora.a]
synthetic = "emodb"
n_speakers = 4
clips_per_class = 3
seed = 1
protocol = "{protocol}"
[grid]
train = ["a"]
probes = ["linear"]
seeds = 2
[probe]
n_bootstrap = 20
aggregate = "pooled"
[probe.linear]
max_steps = 60
min_steps = 0
eval_every = 20
"""


def test_protocol_and_aggregate_reach_the_probe_config_and_the_fingerprint() -> None:
    cfg = parse_config(RAW)
    assert cfg.probe.aggregate == "pooled" and cfg.corpus("emo").protocol == "loso"
    job = expand(cfg)[0]
    pc = probe_config(cfg, job, "out")
    assert pc.aggregate == "pooled" and pc.protocols == {"emo": "loso"} and pc.allow_degenerate is False
    mean = parse_config({**RAW, "probe": {}})
    assert mean.probe.aggregate == "mean" and probe_config(mean, expand(mean)[0], "out").aggregate == "mean"
    # the aggregation decides the numbers, so a changed one re-runs the job
    assert job_fingerprint(cfg, job) != job_fingerprint(mean, expand(mean)[0])
    loose = parse_config({**RAW, "probe": {"allow_degenerate": True}})
    assert probe_config(loose, expand(loose)[0], "out").allow_degenerate is True


@pytest.mark.parametrize(("section", "values", "match"), [
    ("probe", {"aggregate": "pool"}, r"\[probe\]: bad aggregate 'pool', expected one of \['mean', 'pooled'\]"),
    ("probe", {"aggregate": 1}, r"\[probe\]: bad aggregate 1. Give a string"),
    ("probe", {"allow_degenerate": "yes"}, r"\[probe\]: bad allow_degenerate 'yes'. Give true or false"),
    ("probe", {"aggregated": "pooled"}, r"bad key 'aggregated'.*Did you mean 'aggregate'"),
    ("corpora", {"emo": {"synthetic": "emodb", "protocol": "../x"}}, r"\[corpora.emo\]: bad protocol '../x'.*loso"),
    ("corpora", {"emo": {"synthetic": "emodb", "protocol": ["loso"]}}, r"\[corpora.emo\]: bad protocol"),
])
def test_bad_protocol_or_aggregate_names_the_file_table_and_key(section: str, values: dict, match: str) -> None:
    raw = {**RAW, section: values}
    with pytest.raises(ConfigError, match=match):
        parse_config(raw, source="b.toml")


def _write(folder: Path, protocol: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "loso.toml"
    path.write_text(TINY.format(out=folder / "out", cache=folder / "cache", protocol=protocol))
    return path


def test_loso_pooled_bench_records_both_choices(tmp_path: Path) -> None:
    run = run_bench(load_config(_write(tmp_path, "loso")), progress=False, write=True)
    assert run.count("done") == 1 and run.count("failed") == 0
    rec = json.loads(Path(run.results[run.jobs[0].id].path).read_text())
    assert rec["config"]["aggregate"] == "pooled" and rec["config"]["protocols"] == {"a": "loso"}
    assert rec["resolved"]["aggregate"] == "pooled" and rec["resolved"]["protocols"] == {"a": "loso"}
    cell = rec["cells"][0]
    assert cell["protocol"] == "loso" and cell["aggregate"] == "pooled" and cell["n_folds"] == 4
    assert run.caches[("logmel-128", "a")].n_folds == 4  # one fold per speaker
    rows = list(csv.DictReader((run.out / "bench.csv").open()))
    assert rows and {(r["protocol"], r["aggregate"]) for r in rows} == {("loso", "pooled")}
    assert "protocol a=loso · aggregate pooled" in (run.out / "report.html").read_text()


def test_a_protocol_the_corpus_lacks_names_the_config_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"loso.toml \[corpora.a\]: bad protocol 'session'.*'speaker'"):
        run_bench(load_config(_write(tmp_path, "session")), progress=False, write=False)
