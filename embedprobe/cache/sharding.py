"""Which clips belong to shard ``k`` of ``N``: a stable hash of the clip id, modulo ``N``.

The assignment depends only on the clip id and ``N`` (not on the Python process, the manifest
order or the machine), so ``N`` workers started anywhere agree on it without talking.

Example:
    >>> from embedprobe.cache.sharding import shard_ids
    >>> ids = [f"clip{i}" for i in range(10)]
    >>> sorted(shard_ids(ids, 0, 2) + shard_ids(ids, 1, 2)) == sorted(ids)
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from embedprobe.errors import BadValueError


def check_shard(shard: int | None, n_shards: int | None) -> None:
    """Both or neither; ``0 <= shard < n_shards``."""
    if (shard is None) != (n_shards is None):
        raise BadValueError("shard / n_shards pair", (shard, n_shards), None,
                            "give both shard K and n_shards N (on the command line: --shard K/N), or neither")
    if n_shards is not None:
        if not isinstance(n_shards, int) or n_shards < 1:
            raise BadValueError("n_shards", n_shards, None, "use a positive int")
        if not isinstance(shard, int) or not 0 <= shard < n_shards:
            raise BadValueError("shard", shard, range(n_shards), f"shards are numbered 0..{n_shards - 1}")


def shard_of(clip_id: str, n_shards: int) -> int:
    """The shard (``0..n_shards-1``) that ``clip_id`` belongs to."""
    h = hashlib.blake2b(clip_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") % n_shards


def shard_ids(ids: Iterable[str], shard: int, n_shards: int) -> list[str]:
    """The ids of ``ids`` (order kept) that belong to shard ``shard`` of ``n_shards``."""
    check_shard(shard, n_shards)
    return [i for i in ids if shard_of(i, n_shards) == shard]


def shard_tag(shard: int | None, n_shards: int | None) -> str:
    """``"all"`` for an unsharded writer, else ``"s<k>of<N>"`` (used in part and lock names)."""
    return "all" if shard is None else f"s{shard}of{n_shards}"
