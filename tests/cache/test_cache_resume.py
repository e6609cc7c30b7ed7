"""Resume, overwrite, refusal of a cache made with another configuration, background writer."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
from cache_synth import (
    IDENTITY,
    LAYERS,
    PROVENANCE,
    fails,
    frames_of,
    kwargs,
    make_manifest,
    result,
)

from embedprobe.cache import (
    AsyncWriter,
    CacheMismatchError,
    CacheProvenanceWarning,
    CacheWriter,
    ClipResult,
    open_cache,
)
from embedprobe.cache.schema import Header
from embedprobe.errors import BadValueError


def test_resume_skips_done_and_retries_errors(tmp_path):
    m = make_manifest(20)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:6]], [(m.ids[6], "wav/c0006.wav", "decode failed")])
        w.write([result(c) for c in m.ids[7:10]])
    # not finalized: the cache is readable, incomplete
    with open_cache(path) as r:
        assert r.ids == m.ids[:6] + m.ids[7:10] and not r.complete
        assert r.errors == [{"id": m.ids[6], "path": "wav/c0006.wav", "reason": "decode failed"}]
    with CacheWriter(path, **kwargs(m)) as w:
        assert w.done_ids == set(m.ids[:6] + m.ids[7:10])
        assert w.error_ids == {m.ids[6]}
        assert w.pending_ids() == [m.ids[6]] + m.ids[10:]  # failed clips are tried again
        w.write([result(m.ids[0])])  # already done: ignored, the first copy wins
        w.write([result(c) for c in w.pending_ids()])
        w.finalize()
    with open_cache(path) as r:
        assert r.ids == m.ids and r.complete and r.errors == []
        np.testing.assert_array_equal(r.frames("layer_0", [m.ids[6]])[0], frames_of(m.ids[6], "layer_0", 8))
        assert r.info()["n_sessions"] == 2


def test_write_after_finalize_adds_and_refinalizes(tmp_path):
    m = make_manifest(8)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:5]])
        w.finalize()
    with CacheWriter(path, **kwargs(m)) as w:
        assert w.pending_ids() == m.ids[5:]
        w.write([result(c) for c in m.ids[5:]])
        with open_cache(path) as r:  # main + one part, before the second finalize
            assert r.ids == m.ids and r.info()["n_parts"] == 1
        w.finalize()
    with open_cache(path) as r:
        assert r.ids == m.ids and r.complete and r.info()["n_parts"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "c.h5.lock"]


def test_overwrite_starts_over(tmp_path):
    m = make_manifest(6)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids])
        w.finalize()
    other = {**IDENTITY, "extractor": {"name": "toy", "weights_revision": "rev-b"}}
    with CacheWriter(path, **kwargs(m, identity=other), overwrite=True) as w:
        assert not w.done_ids and not path.exists()
        w.write([result(c) for c in m.ids[:2]])
    with open_cache(path) as r:
        assert r.ids == m.ids[:2] and r.identity == other


def test_mismatch_names_every_field_and_the_fix(tmp_path):
    m = make_manifest(6)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:3]])
    other = {**IDENTITY, "extractor": {"name": "toy", "weights_revision": "rev-b"}}
    with pytest.raises(CacheMismatchError) as e:
        CacheWriter(path, **kwargs(m, identity=other, dtype="float16"))
    msg = str(e.value)
    assert "identity.extractor.weights_revision: cache has 'rev-a', this run has 'rev-b'" in msg
    assert "cache.dtype: cache has 'float32', this run has 'float16'" in msg
    assert "--overwrite" in msg and "--out" in msg
    assert {d[0] for d in e.value.diffs} == {"identity.extractor.weights_revision", "cache.dtype"}
    with pytest.raises(CacheMismatchError, match="cache.layers.layer_1"):
        CacheWriter(path, **kwargs(m, layers={"layer_0": 8}))
    with pytest.raises(CacheMismatchError, match="cache.frame_layers"):
        CacheWriter(path, **kwargs(m, frames=False))
    with pytest.raises(CacheMismatchError, match=r"manifest.clips: cache has '6 clips'.*1 new e.g. \['c0006'\]"):
        CacheWriter(path, **kwargs(make_manifest(7)))
    with open_cache(path) as r:  # refusal changed nothing
        assert r.ids == m.ids[:3] and r.dtype == "float32"


def test_package_version_change_is_recorded_not_refused(tmp_path):
    m = make_manifest(4)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:2]])
    newer = {**PROVENANCE, "packages": {"numpy": "2.1", "torch": "2.13.0"}, "code_version": "git:def"}
    with pytest.warns(CacheProvenanceWarning, match=r"provenance.packages.numpy: '2.0' -> '2.1'"):
        w = CacheWriter(path, **kwargs(m, provenance=newer))
    with w:
        w.write([result(c) for c in m.ids[2:]])
        w.finalize()
    with open_cache(path) as r:
        assert r.complete and r.provenance == PROVENANCE  # the first run's provenance
        assert [s["provenance"]["packages"]["numpy"] for s in r.sessions] == ["2.0", "2.1"]


def test_moved_corpus_root_is_not_a_mismatch(tmp_path):
    m = make_manifest(4)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([result(c) for c in m.ids[:2]])
    m.root = "/elsewhere/synth"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with CacheWriter(path, **kwargs(m)) as w:
            assert len(w.done_ids) == 2


def test_async_writer_commits_and_reraises(tmp_path):
    m = make_manifest(30)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w, AsyncWriter(w, max_pending=2) as aw:
        for k in range(0, 30, 4):
            aw.write([result(c) for c in m.ids[k:k + 4]])
        aw.flush()
        assert aw.done_ids == set(m.ids)
        aw.finalize()
    with open_cache(path) as r:
        assert r.complete and r.ids == m.ids
        np.testing.assert_array_equal(r.pooled("layer_1")[-1], frames_of(m.ids[-1], "layer_1", 4).mean(0))
    m2 = make_manifest(3)
    with CacheWriter(tmp_path / "d.h5", **kwargs(m2)) as w:
        aw = AsyncWriter(w)
        aw.write([result(m2.ids[0])])
        bad = result(m2.ids[1], layers={"layer_0": 8})  # lacks layer_1
        aw.write([bad])
        with pytest.raises(BadValueError, match="layer_1"):
            aw.close()
        assert w.done_ids == {m2.ids[0]}


def test_errors_only_batches_and_empty_batches(tmp_path):
    m = make_manifest(3)
    path = tmp_path / "c.h5"
    with CacheWriter(path, **kwargs(m)) as w:
        w.write([])
        w.write([], [(c, f"wav/{c}.wav", "silent") for c in m.ids])
        assert w.error_ids == set(m.ids) and not w.done_ids
        w.finalize()
    with open_cache(path) as r:
        assert r.complete and r.n_clips == 0 and len(r.errors) == 3
        assert r.pooled("layer_0").shape == (0, LAYERS["layer_0"])
        assert not any(fails(c) for c in r.ids)


def test_identity_field_added_later_with_none_is_not_a_mismatch():
    from embedprobe.cache.identity import diff

    assert diff({"a": 1}, {"a": 1, "augment": None}) == []
    assert diff({"a": 1, "augment": None}, {"a": 1}) == []
    assert diff({"a": 1}, {"a": 1, "augment": {"name": "paper"}}) == [("augment.name", "<absent>", "paper")]
    assert diff({"a": [1]}, {"a": [2]}) == [("a", [1], [2])]


def _drop_chunking(path):
    """Make ``path`` look like a cache written before the identity recorded the chunking rule."""
    from embedprobe.cache.digest import seal

    with h5py.File(path, "r+") as f:
        ident = json.loads(f.attrs["identity"])
        ident.pop("chunking")
        f.attrs["identity"] = json.dumps(ident)
        header = Header(provenance={}, identity=ident, manifest_json="", layers=json.loads(f.attrs["layers"]),
                        frame_layers=tuple(json.loads(f.attrs["frame_layers"])), dtype=str(f.attrs["dtype"]))
        f.attrs["identity_fingerprint"] = header.identity_fingerprint
        seal(f)


@pytest.mark.parametrize("longest_s, resumes", [(3.0, True), (3.5, False)])
def test_cache_from_before_the_chunking_field_resumes_when_no_clip_was_chunked(tmp_path, longest_s, resumes):
    m = make_manifest(8)
    path = tmp_path / "c.h5"
    ident = {"model": "x", "audio": {"max_chunk_s": 3.0},
             "chunking": {"rule": "framed model: ...", "context_s": [1.0, 1.0]}}
    kw = kwargs(m) | {"identity": ident}
    with CacheWriter(path, **kw) as w:
        w.write([ClipResult(r.id, r.content_hash, longest_s if i == 0 else 1.0, r.layers)
                 for i, r in enumerate(result(c) for c in m.ids[:4])])
        w.finalize()
    _drop_chunking(path)
    if not resumes:  # a clip longer than one chunk may have been cut by the older rule
        with pytest.raises(CacheMismatchError, match="chunking"):
            CacheWriter(path, **kw)
        return
    with CacheWriter(path, **kw) as w:
        assert w.pending_ids() == m.ids[4:]
        w.write([result(c) for c in m.ids[4:]])
        w.finalize()
    with open_cache(path) as r:
        assert r.ids == m.ids and r.complete and "chunking" not in r.identity


def test_a_ctrl_c_anywhere_in_an_async_write_leaves_the_writer_usable(tmp_path):
    """A KeyboardInterrupt raised at every line and call inside ``AsyncWriter.write`` (threading
    and queue code included) while the previous batch is still being committed: the caller's
    clean-up writes the batch again, and that write must not wait forever (it did when the Ctrl-C
    landed after a semaphore slot was taken and before the batch was queued); every clip ends up
    committed once."""
    import sys
    import threading
    import time

    m = make_manifest(8)
    first, second = [result(c) for c in m.ids[:4]], [result(c) for c in m.ids[4:]]
    n, injected = 0, True
    while injected:
        n += 1
        path = tmp_path / f"c{n}.h5"
        with CacheWriter(path, **kwargs(m)) as w:
            commit = w.write

            def slow_commit(*a, commit=commit):
                time.sleep(0.03)  # the first batch is still being committed when the second comes
                return commit(*a)

            w.write = slow_commit
            aw = AsyncWriter(w)
            aw.write(first)
            events = 0

            def trace(frame, event, arg, at=n):
                nonlocal events
                events += 1
                if events == at:
                    raise KeyboardInterrupt
                return trace

            injected = False
            sys.settrace(trace)
            try:
                aw.write(second)
            except KeyboardInterrupt:
                injected = True
            finally:
                sys.settrace(None)
            retry = threading.Thread(target=lambda aw=aw: (aw.write(second), aw.close()), daemon=True)
            retry.start()
            retry.join(10)
            assert not retry.is_alive(), f"Ctrl-C at event {n} of write: the clean-up write never returned"
            assert w.done_ids == set(m.ids), n
    assert n > 20  # the interrupt was tried at every point of a write that has many
