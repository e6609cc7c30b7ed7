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
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from embedprobe.errors import BadValueError, MissingDependencyError

ENGINES = ("local", "ray")


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a ``BadValueError`` naming them."""
    if engine not in ENGINES:
        raise BadValueError("--engine", engine, ENGINES, fix="local runs on this machine, ray on a Ray cluster.")
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
    # Ray's own warnings (token authentication, resource hints) are not for embedprobe's users;
    # what goes wrong reaches them as embedprobe's one-sentence errors
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": True, "logging_level": "error"}
    if address:
        kwargs["address"] = address
        _check_reachable(ray, address)  # ray.init would retry an unreachable address for minutes
    elif num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise _unreachable(address, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def lost_worker_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors for a task whose worker was lost (process killed, node gone, out of memory).

    The task's work is not done and can be sent again; an error raised by the task's own code
    (``ray.exceptions.RayTaskError``) is not one of these.
    """
    ex = require_ray().exceptions
    return (ex.RayActorError, ex.WorkerCrashedError, ex.NodeDiedError, ex.ObjectLostError,
            ex.LocalRayletDiedError, ex.OutOfMemoryError)


def node_fits(resources: Mapping[str, float], need: Mapping[str, float]) -> bool:
    """Whether a node with ``resources`` (Ray's ``{"CPU": 8, "GPU": 1, ...}``) can hold ``need``.

    Example:
        >>> node_fits({"CPU": 8.0, "GPU": 1.0}, {"CPU": 4, "GPU": 0.5})
        True
        >>> node_fits({"CPU": 8.0}, {"CPU": 1, "GPU": 1})
        False
    """
    return all(resources.get(key, 0.0) >= amount for key, amount in need.items() if amount)


def _unreachable(address: str | None, why: str) -> BadValueError:
    where = f"at {address!r}" if address else "on this machine"
    return BadValueError("--address", address or "(none)", None,
                         fix=f"No Ray cluster could be used {where} ({why}); start one with `ray start "
                             "--head` (then --address auto) or leave --address out to start one here.")


def _check_reachable(ray: Any, address: str, timeout_s: float = 5.0) -> None:
    """Refuse at once a ``HOST:PORT`` (or ``auto``) address where nothing listens."""
    if address.startswith("ray://"):
        return  # a Ray Client address: ray.init reports it itself
    try:
        from ray._private.services import canonicalize_bootstrap_address

        resolved = canonicalize_bootstrap_address(address)
    except ConnectionError as e:
        raise _unreachable(address, str(e).strip().splitlines()[0]) from None
    except (ImportError, AttributeError, ValueError):
        resolved = address if address != "auto" else None  # a Ray without that helper: let ray.init try
    if not resolved:
        if address == "auto":
            raise _unreachable(address, "no running cluster was found on this machine")
        return
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise _unreachable(address, f"{resolved}: {e.strerror or e}" if isinstance(e, OSError) else str(e)) from None
