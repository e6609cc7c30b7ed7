"""Where caches live: ``<cache_dir>/<corpus>__<model>[__<tag>...].h5`` (one place for the rule)."""

from __future__ import annotations

from pathlib import Path


def safe_model(model: str) -> str:
    """A model name usable in a file name (``hf:org/name`` -> ``hf_org_name``)."""
    return model.replace("/", "_").replace(":", "_")


def cache_file(cache_dir: str | Path, corpus: str, model: str, *tags: str) -> Path:
    """The cache file of ``corpus`` embedded by ``model``, with optional name tags."""
    name = "__".join([corpus, safe_model(model), *(t for t in tags if t)])
    return Path(cache_dir) / f"{name}.h5"
