"""Joining or starting the Ray cluster that ``--engine ray`` runs on.

Ray is the optional ``embedprobe[ray]`` extra; nothing here imports it at module level, so the
local engine (the default) never loads Ray.

Example:
    >>> ENGINES
    ('local', 'ray')
    >>> check_engine("local")
    'local'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from embedprobe.errors import BadValueError, MissingDependencyError

ENGINES = ("local", "ray")


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a ``BadValueError`` naming them."""
    if engine not in ENGINES:
        raise BadValueError("--engine", engine, ENGINES)
    return engine


def require_ray(what: str = "--engine ray") -> Any:
    """The ``ray`` module, or one sentence with the exact pip command when it is not installed."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", what) from None
    return ray


@contextlib.contextmanager
def connected(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Use the Ray cluster at ``address`` (``auto``, ``host:port``, ``ray://...``) for the block.

    With no address, join the cluster this process is already connected to, else start a
    local one (``num_cpus`` caps it). A cluster started or joined here is disconnected on
    exit; one that was already connected is left as it was.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": True, "logging_level": "warning"}
    if address:
        kwargs["address"] = address
    elif num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(**kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()
