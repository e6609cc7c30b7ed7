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
import math
import os
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

    With no address: the cluster this process is already connected to, else the one
    ``RAY_ADDRESS`` names (as under ``ray job submit``), else the one ``ray start`` runs on this
    machine, else a new one here (``num_cpus`` caps it). An address where nothing answers is one
    sentence at once (``ray.init`` would retry it for minutes); so is ``RAY_ADDRESS``, while a
    ``ray start`` cluster that has gone away is passed over. A cluster started or joined here is
    disconnected on exit; one that was already connected is left as it was.
    """
    ray = require_ray()
    if address:
        _check_reachable(address)  # even when already connected: a wrong --address is refused
    if ray.is_initialized():
        yield ray
        return
    # Ray's own warnings (token authentication, resource hints) are not for embedprobe's users;
    # what goes wrong reaches them as embedprobe's one-sentence errors
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": True, "logging_level": "error"}
    named = address or os.environ.get("RAY_ADDRESS")
    if named:
        if not address:
            _check_reachable(named)
        if address:
            kwargs["address"] = address
    else:
        recorded = _recorded_address()
        if recorded and _not_listening(recorded) is None:
            kwargs["address"] = recorded
        else:
            kwargs["address"] = "local"
            if num_cpus is not None:
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


def alive_nodes(ray: Any) -> list[dict[str, float]]:
    """The resources (``{"CPU": 8.0, "GPU": 1.0, ...}``) of every live node of the connected cluster."""
    return [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]


def fits(resources: Mapping[str, float], need: Mapping[str, float]) -> int:
    """How many tasks or actors needing ``need`` fit in ``resources`` at once.

    Example:
        >>> fits({"CPU": 8.0, "GPU": 1.0}, {"CPU": 2, "GPU": 0.5}), fits({"CPU": 8.0}, {"CPU": 3, "GPU": 0})
        (2, 2)
    """
    return min(math.floor(resources.get(key, 0.0) / amount) for key, amount in need.items() if amount)


def _unreachable(address: str | None, why: str) -> BadValueError:
    where = f"at {address!r}" if address else "on this machine"
    return BadValueError("--address", address or "(none)", None,
                         fix=f"No Ray cluster could be used {where} ({why}); start one with `ray start "
                             "--head` (then --address auto) or leave --address out to start one here.")


def _recorded_address() -> str | None:
    """The address of the last ``ray start`` on this machine, if Ray recorded one."""
    try:
        from ray._private.utils import read_ray_address

        return read_ray_address() or None
    except Exception:  # noqa: BLE001 - a Ray without that helper: start a cluster here
        return None


def _not_listening(host_port: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing answers at ``HOST:PORT`` (``None`` if something does)."""
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except ValueError as e:
        return str(e)
    except OSError as e:
        return f"{host_port}: {e.strerror or e}"


def _check_reachable(address: str) -> None:
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
    why = _not_listening(resolved)
    if why is not None:
        raise _unreachable(address, why)
