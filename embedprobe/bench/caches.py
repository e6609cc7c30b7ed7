"""Corpora and caches of a bench: synthetic corpora, extraction configs, alias links, cache facts.

A corpus whose config key is not its reader's name (``synth-iemocap`` read by ``iemocap``)
is extracted into ``<cache_dir>/<key>/`` (the cache file is named after the reader, as
``extraction`` names it) and linked as ``<cache_dir>/<key>__<model>.h5``, the name
``probing`` looks up; a corpus whose key is its reader's name is extracted straight into
``<cache_dir>``, so existing caches made by ``embedprobe extract --out CACHE_DIR`` are reused.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedprobe.bench.checks import ConfigError
from embedprobe.bench.config import BenchConfig
from embedprobe.cache import open_cache
from embedprobe.cache.naming import cache_file
from embedprobe.corpora.synthetic import write_corpus
from embedprobe.errors import BadValueError, CacheError, EmbedprobeError
from embedprobe.pipeline.extract_config import ExtractConfig
from embedprobe.provenance import atomic_write_json, to_jsonable


@dataclass(frozen=True)
class CacheInfo:
    """What the bench needs to know of one cache: fingerprint, layers, size, folds, completeness."""

    path: str
    fingerprint: str
    layers: list[str]
    n_labelled: int
    n_folds: int
    n_pending: int = 0  # manifest clips neither stored nor failed
    n_manifest: int = 0
    default_layer: str | None = None  # the cache's default layer (CacheReader.default_layer)



def corpus_roots(cfg: BenchConfig) -> dict[str, Path]:
    """Each corpus key -> the path to scan; synthetic corpora are written first (once)."""
    roots = {}
    for c in cfg.corpora:
        if c.synthetic is None:
            roots[c.key] = Path(c.root).expanduser()
            continue
        folder = Path(cfg.out) / "synthetic" / c.key
        params = {"layout": c.synthetic, **{k: to_jsonable(v) for k, v in c.synth.items()}}
        marker = folder / ".embedprobe-synthetic.json"
        try:
            done = json.loads(marker.read_text())
        except (OSError, ValueError):
            done = None
        if done is None or done.get("params") != params:
            shutil.rmtree(folder, ignore_errors=True)
            path = write_corpus(c.synthetic, folder, **c.synth)
            done = {"params": params, "path": os.path.relpath(path, folder)}
            atomic_write_json(marker, done)
        roots[c.key] = folder / done["path"]
    return roots


def cache_path(cfg: BenchConfig, key: str, model: str) -> Path:
    """Where ``probing`` finds the cache of corpus ``key`` for ``model``."""
    return cache_file(cfg.extract.cache_dir, key, model)


def extract_config(cfg: BenchConfig, key: str, model: str, root: Path, augmented: bool = False) -> Any:
    c = cfg.corpus(key)
    out = Path(cfg.extract.cache_dir)
    if c.reader != key:
        out = out / key
    extra = dict(cfg.extract.augmented) if augmented else {}
    return ExtractConfig(model=model, corpus=c.reader, root=str(root), out=str(out),
                         corpus_options=dict(c.options), weights=cfg.extract.weights.get(model),
                         **cfg.extract.params, **extra)


def link_alias(cfg: BenchConfig, key: str, model: str) -> None:
    """Link ``<cache_dir>/<key>__<model>*.h5`` to the caches of an aliased corpus's subfolder."""
    c = cfg.corpus(key)
    if c.reader == key:
        return
    top = Path(cfg.extract.cache_dir)
    prefix = cache_file(".", c.reader, model).stem
    for f in sorted((top / key).glob(f"{prefix}*.h5")):
        link = top / (key + f.name[len(c.reader):])
        target = Path(key) / f.name
        if link.is_symlink():
            if Path(os.readlink(link)) == target:
                continue
            link.unlink()
        elif link.exists():
            raise CacheError(f"{link} is a file, but the bench keeps the caches of corpus {key!r} (read "
                             f"by {c.reader!r}) in {top / key} and links them there. Fix: move that "
                             "file away or use another [extract] cache_dir.")
        link.symlink_to(target)


def cache_info(cfg: BenchConfig, key: str, model: str) -> CacheInfo:
    path = cache_path(cfg, key, model)
    with open_cache(path) as r:
        m = r.manifest
        proto = cfg.corpus(key).protocol or m.default_protocol
        have = set(r.ids)
        n = sum(1 for c in m.clips if c.label is not None and c.id in have)
        try:
            folds = m.with_protocol(proto).folds(proto)
        except BadValueError as e:  # a protocol the corpus does not offer: name the config key
            raise ConfigError(f"{cfg.source} [corpora.{key}]", "protocol", proto, fix=str(e)) from None
        return CacheInfo(str(path), r.fingerprint, list(r.layers), n, len(folds), r.n_pending, len(m),
                         r.default_layer)



def common_layers(model: str, infos: dict[tuple[str, str], CacheInfo]) -> list[str]:
    lists = [i.layers for (m, _), i in infos.items() if m == model]
    return [layer for layer in lists[0] if all(layer in ls for ls in lists)] if lists else []


def default_layers(infos: dict[tuple[str, str], CacheInfo]) -> dict[str, str]:
    """model -> the layer ``default`` means for it (its caches' default layer)."""
    return {m: i.default_layer for (m, _), i in infos.items() if i.default_layer}


#: ExtractConfig fields that do not change what a cache holds (paths, speed, device, threads: the
#: Ray engine sets them per task). A changed `weights` path goes to `extract`, which compares the
#: checkpoint revisions.
_NOT_IDENTITY = ("root", "out", "device", "batch_size", "workers", "procs", "threads", "overwrite",
                 "shard", "n_shards")


def is_finished(ecfg: Any) -> bool:
    """The cache of ``ecfg`` exists, is complete and was made with the same identity settings.

    Then the bench does not call ``extract`` at all (which would re-scan the corpus and record
    a new session in the cache); anything else goes to ``extract``, which resumes, or refuses a
    cache made with other settings naming the differing fields.
    """
    path = ecfg.cache_path()
    if not path.exists():
        return False
    try:
        with open_cache(path) as r:
            if not r.complete:
                return False
            stored = (r.provenance or {}).get("config", {})
    except (EmbedprobeError, OSError):
        return False
    mine = to_jsonable(ecfg)
    return all(stored.get(k) == v for k, v in mine.items() if k not in _NOT_IDENTITY)
