"""Named corpora (``--name``): checks, cache names, EmoDB halves, two manifests in one matrix."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedprobe.cache import open_cache
from embedprobe.cache.naming import cache_file
from embedprobe.cli.main import app
from embedprobe.corpora import CORPORA, Manifest, scan
from embedprobe.corpora.common import check_corpus_name
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.errors import BadValueError
from embedprobe.pipeline.extract import ExtractConfig, extract
from embedprobe.pipeline.probe import ProbeConfig, available_corpora, probe

WOMEN, MEN = ("08", "09", "13", "14", "16"), ("03", "10", "11", "12", "15")


@pytest.mark.parametrize("bad", ["a/b", "../up", ".hidden", "-dash", "two words", "a__b", "emodb", ""])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(BadValueError, match="name"):
        check_corpus_name(CORPORA.get("manifest"), bad)


def test_fixed_corpus_refuses_a_name_in_one_sentence(synth: dict[str, Path]) -> None:
    with pytest.raises(BadValueError, match=r"ravdess reads one fixed corpus.*drop --name"):
        scan("ravdess", synth["ravdess"], corpus_name="my-ravdess")
    with pytest.raises(BadValueError, match=r"only for a subset chosen with --option gender"):
        scan("emodb", synth["emodb"], corpus_name="emodb-all")
    assert scan("emodb", synth["emodb"], corpus_name="emodb").corpus == "emodb"  # its own name is fine


def test_named_manifest_keeps_its_reader(synth: dict[str, Path]) -> None:
    plain = scan("manifest", synth["manifest"])
    named = scan("manifest", synth["manifest"], corpus_name="mine")
    assert (plain.corpus, plain.reader_name) == ("manifest", "manifest")
    assert (named.corpus, named.reader, named.reader_name) == ("mine", "manifest", "manifest")
    assert "reader" not in plain.header()  # unnamed manifests serialise as before names existed
    back = Manifest.from_json(named.to_json())
    assert (back.corpus, back.reader) == ("mine", "manifest")
    old = json.loads(plain.to_json())
    assert Manifest.from_json(json.dumps(old)).reader == ""  # a manifest stored by older code opens


def test_unnamed_cache_keeps_the_old_file_name(tmp_path: Path) -> None:
    """The naming rule caches written before names existed rely on: ``<reader>__<model>.h5``."""
    cfg = ExtractConfig(model="logmel-128", corpus="manifest", root="x", out=str(tmp_path))
    assert cfg.cache_path() == cache_file(tmp_path, "manifest", "logmel-128") == tmp_path / "manifest__logmel-128.h5"
    named = ExtractConfig(model="logmel-128", corpus="manifest", root="x", out=str(tmp_path), name="mine")
    assert named.cache_path() == tmp_path / "mine__logmel-128.h5" and named.corpus_name == "mine"


def test_emodb_halves_are_speaker_independent(synth: dict[str, Path]) -> None:
    for gender, speakers in (("f", WOMEN), ("m", MEN)):
        m = scan("emodb", synth["emodb"], gender=gender, corpus_name=f"emodb-{gender}")
        assert {c.speaker for c in m.clips} == set(speakers) and m.reader == "emodb"
        assert m.folds() == [f"speaker/{s}" for s in sorted(speakers)]
        for fold in m.folds():
            test = {c.speaker for c in m.part(fold, "test")}
            val = {c.speaker for c in m.part(fold, "val")}
            train = {c.speaker for c in m.part(fold, "train")}
            assert len(test) == len(val) == 1 and len(train) == 3 and not (test | val) & train
    with pytest.raises(BadValueError, match="gender"):
        scan("emodb", synth["emodb"], gender="x")


def test_two_named_manifests_in_one_matrix(tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    for name, seed in (("alpha", 1), ("beta", 2)):
        root = write_corpus("manifest", tmp_path / name, n_speakers=6, clips_per_class=2, seed=seed,
                            duration_s=(0.4, 0.6))
        s = extract(ExtractConfig(model="logmel-128", corpus="manifest", root=str(root), out=str(caches),
                                  name=name, workers=1), progress=False)
        assert s.cache.name == f"{name}__logmel-128.h5" and s.complete
        with open_cache(s.cache) as r:
            assert r.manifest.corpus == name and r.manifest.reader == "manifest"
    assert available_corpora(caches, "logmel-128") == ["alpha", "beta"]
    path = probe(ProbeConfig(model="logmel-128", cache_dir=str(caches), train=("alpha", "beta"),
                             test=("alpha", "beta"), probe="linear", seeds=(0,), n_bootstrap=0,
                             max_folds=1, out=str(tmp_path / "results")), progress=False)
    rec = json.loads(path.read_text())
    cells = {(c["train"], c["test"]) for c in rec["cells"]}
    assert cells == {(a, b) for a in ("alpha", "beta") for b in ("alpha", "beta")}
    assert set(rec["caches"]) == {"alpha", "beta"}


@pytest.mark.parametrize(("args", "needle"), [
    (["--corpus", "ravdess", "--name", "mine"], "ravdess reads one fixed corpus"),
    (["--corpus", "manifest", "--name", "a/b"], "corpus name (--name) 'a/b'"),
    (["--corpus", "manifest", "--name", "a__b"], "'__' separates the corpus from the model"),
])
def test_cli_refuses_bad_names_in_one_sentence(args: list[str], needle: str, synth: dict[str, Path],
                                               tmp_path: Path) -> None:
    corpus = args[1]
    res = CliRunner().invoke(app, ["extract", "--model", "logmel-128", "--root", str(synth[corpus]),
                                   "--out", str(tmp_path), *args], terminal_width=200)
    flat = " ".join(res.output.split())
    assert res.exit_code == 2 and flat.count("error:") == 1 and needle in flat, flat
    assert not list(tmp_path.iterdir())  # nothing written


def test_cache_written_before_names_resumes_unchanged(tmp_path: Path) -> None:
    """EmoDB's new ``gender`` option (None) leaves a cache of the old code comparable: resuming adds nothing."""
    legacy = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_0c4168f" / "cache"
    shutil.copytree(legacy, tmp_path / "cache")
    root = write_corpus("emodb", tmp_path / "emodb", n_speakers=4, clips_per_class=2, extra_per_speaker=0)
    with open_cache(tmp_path / "cache" / "emodb__logmel-128.h5") as r:
        assert (r.manifest.corpus, r.manifest.reader_name) == ("emodb", "emodb")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other package versions than 0c4168f's: a recorded warning
        s = extract(ExtractConfig(model="logmel-128", corpus="emodb", root=str(root), out=str(tmp_path / "cache"),
                                  dtype="float16", workers=1), progress=False)
    assert s.n_new == 0 and s.complete and s.cache.name == "emodb__logmel-128.h5"


def test_list_corpora_says_which_readers_take_a_name() -> None:
    named = {row["name"]: row["named"] for row in CORPORA.rows()}
    assert named["manifest"] == named["emobox"] == "yes" and named["ravdess"] == "no"
    assert named["emodb"] == "with --option gender"
