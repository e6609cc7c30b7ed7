"""Every CLI default is read from the config it fills (``cli.common.default``), and ``--help`` shows it."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from embedprobe.cli import common
from embedprobe.cli.common import CACHE_DIR, default
from embedprobe.cli.main import app
from embedprobe.eval.runner import MatrixSpec
from embedprobe.pipeline.acoustics import profile
from embedprobe.pipeline.domain import domain_gap_for
from embedprobe.pipeline.extract_config import ExtractConfig
from embedprobe.pipeline.probe import ProbeConfig

# command -> {option parameter: the library default it must equal}
EXPECTED = {
    "probe": {"probe_name": ProbeConfig.probe, "pooling": ProbeConfig.pooling, "frames": ProbeConfig.frames,
              "seeds": len(ProbeConfig.seeds), "test": ",".join(ProbeConfig.test), "bootstrap": ProbeConfig.n_bootstrap,
              "augment_rate": ProbeConfig.augment_rate, "augment": ProbeConfig.augment,
              "augment_seed": ProbeConfig.augment_seed, "no_baselines": not ProbeConfig.baselines,
              "tune": ProbeConfig.tune, "out": Path(ProbeConfig.out), "cache_dir": CACHE_DIR,
              "allow_incomplete": ProbeConfig.allow_incomplete},
    "extract": {"device": ExtractConfig.device, "precision": ExtractConfig.precision,
                "batch_size": ExtractConfig.batch_size,
                "chunk": ExtractConfig.chunk_s, "copies": ExtractConfig.copies,
                "augment_seed": ExtractConfig.augment_seed, "frames": ExtractConfig.frames,
                "float16": ExtractConfig.dtype == "float16", "trust_pickle": ExtractConfig.trust_pickle,
                "overwrite": ExtractConfig.overwrite, "out": CACHE_DIR},
    "domain": {"probe": default(domain_gap_for, "probe"), "shrinkage": default(domain_gap_for, "shrinkage"),
               "seed": default(domain_gap_for, "seed"), "out_dir": Path(default(domain_gap_for, "out")),
               "allow_incomplete": default(domain_gap_for, "allow_incomplete"), "cache_dir": CACHE_DIR},
    "acoustics": {"copies": default(profile, "copies"), "seed": default(profile, "seed"),
                  "subset_seed": default(profile, "subset_seed"),
                  "labelled_only": default(profile, "labelled_only"), "overwrite": default(profile, "overwrite")},
}


def _params(command: str) -> dict:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_cli_defaults_are_the_library_defaults(command):
    params = _params(command)
    for name, want in EXPECTED[command].items():
        got = params[name].default
        assert type(got) is type(want) and got == want, (command, name, got, want)


def test_extract_workers_default_is_the_librarys_or_the_clusters():
    """--workers: unset means ExtractConfig's decoding threads locally, the cluster's choice on Ray."""
    assert _params("extract")["workers"].default is None
    text = " ".join(CliRunner().invoke(app, ["extract", "--help"], terminal_width=200).output.split())
    assert f"Decoding threads (default {ExtractConfig.workers})" in text


def test_the_probe_defaults_are_the_matrix_runners():
    assert (ProbeConfig.probe, ProbeConfig.seeds, ProbeConfig.n_bootstrap) == (
        MatrixSpec.probe, MatrixSpec.seeds, MatrixSpec.n_bootstrap)


def test_help_shows_the_defaults():
    text = CliRunner().invoke(app, ["probe", "--help"], terminal_width=200).output
    assert f"[default: {ProbeConfig.probe}]" in text and f"[default: {ProbeConfig.n_bootstrap}]" in text


def test_default_refuses_unknown_names_and_required_fields():
    with pytest.raises(KeyError, match="no field"):
        default(ProbeConfig, "nope")
    with pytest.raises(KeyError, match="no default"):
        default(ProbeConfig, "model")
    with pytest.raises(KeyError, match="no default"):
        default(domain_gap_for, "model")


def test_default_docstring_examples_run():
    res = doctest.testmod(common)
    assert res.attempted >= 3 and res.failed == 0
