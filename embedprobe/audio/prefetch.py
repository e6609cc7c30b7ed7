"""Decoded items for the pipeline: one file or segment at a time, or many in background threads.

Files are opened by :mod:`embedprobe.audio.decode`; this module turns them into
:class:`Decoded` items (the chunks, the notes, a content hash) and prefetches them in threads
while the caller computes, in input order, a bad file becoming an ``AudioError`` in its place.

Example:
    >>> import numpy as np, soundfile as sf
    >>> sf.write("tone.wav", 0.1 * np.sin(2 * np.pi * 220 * np.arange(8000) / 8000), 8000)
    >>> for i, item in decode_iter(["tone.wav", "gone.wav"], AudioConfig(sample_rate=16000)):
    ...     print(i, item.reason if isinstance(item, AudioError) else item.wav().shape)
    0 (16000,)
    1 file not found (check the corpus root and the manifest path)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from embedprobe.audio.decode import (
    AudioConfig,
    AudioInfo,
    AudioStream,
    Item,
    PathLike,
    content_hash,
)
from embedprobe.errors import AudioError, BadValueError


@dataclass
class Decoded:
    """One decoded item from :func:`decode_iter`.

    ``chunks`` is a tuple of arrays (decoded in the background), or, for files longer than
    ``max_eager_s``, the :class:`AudioStream` itself, which decodes lazily in the consumer's
    thread when iterated (and can then raise :class:`AudioError`).
    """

    path: str
    info: AudioInfo
    notes: tuple[str, ...]
    chunks: tuple[np.ndarray, ...] | AudioStream
    start_s: float = 0.0
    end_s: float | None = None
    lazy: bool = field(default=False)
    content_hash: str = ""

    def wav(self) -> np.ndarray:
        """All chunks as one array (decodes a lazy item fully)."""
        parts = list(self.chunks)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def decode(
    item: Item, cfg: AudioConfig | None = None, *, max_eager_s: float = float("inf")
) -> Decoded:
    """Decode one path or ``(path, start_s, end_s)`` segment into a :class:`Decoded`."""
    path, start_s, end_s = _split_item(item)
    stream = AudioStream(path, cfg, start_s=start_s, end_s=end_s)
    digest = content_hash(path)
    if stream.duration_s > max_eager_s:
        return Decoded(
            str(path), stream.info, tuple(stream.notes), stream, start_s, end_s, lazy=True,
            content_hash=digest,
        )
    chunks = tuple(stream)
    return Decoded(
        str(path), stream.info, tuple(stream.notes), chunks, start_s, end_s, content_hash=digest
    )


def _split_item(item: Item) -> tuple[PathLike, float, float | None]:
    if isinstance(item, tuple):
        path, start_s, end_s = item
        return path, float(start_s), None if end_s is None else float(end_s)
    return item, 0.0, None


def decode_or_error(item: Item, cfg: AudioConfig, max_eager_s: float) -> Decoded | AudioError:
    """``item`` decoded with ``cfg``, or the ``AudioError`` that says why not (never raises)."""
    try:
        return decode(item, cfg, max_eager_s=max_eager_s)
    except AudioError as e:
        return e
    except Exception as e:  # noqa: BLE001 - one bad file must not stop a run
        return AudioError(
            _split_item(item)[0], f"unexpected decoding error {type(e).__name__}: {e}"
        )


def decode_iter(
    items: Iterable[Item],
    cfg: AudioConfig | None = None,
    *,
    workers: int = 2,
    prefetch: int = 4,
    max_eager_s: float = 600.0,
) -> Iterator[tuple[int, Decoded | AudioError]]:
    """Decode files in background threads while the caller computes, in input order.

    Yields ``(index, Decoded)`` or ``(index, AudioError)`` for every item, in order; a bad
    file never stops the iteration. At most ``workers + prefetch`` items are decoded ahead,
    and files longer than ``max_eager_s`` are handed over lazily (see :class:`Decoded`), so
    memory stays bounded. libsndfile and soxr release the GIL, so threads overlap with
    torch compute. Closing the iterator early cancels the pending work.

    Args:
        items: paths, or ``(path, start_s, end_s)`` segments.
        cfg: the audio configuration.
        workers: decoding threads (0 = decode in the caller's thread, no prefetch).
        prefetch: items decoded ahead beyond those being decoded.
        max_eager_s: longer files are streamed lazily by the consumer.
    """
    cfg = cfg or AudioConfig()
    if workers < 0 or prefetch < 0:
        raise BadValueError("workers/prefetch", (workers, prefetch), fix="Use integers >= 0.")
    if workers == 0:
        for i, item in enumerate(items):
            yield i, decode_or_error(item, cfg, max_eager_s)
        return
    ahead = workers + prefetch
    it = enumerate(items)
    queue: deque[tuple[int, Future]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embedprobe-decode")
    try:
        for i, item in it:
            queue.append((i, pool.submit(decode_or_error, item, cfg, max_eager_s)))
            if len(queue) >= ahead:
                break
        while queue:
            i, fut = queue.popleft()
            result = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt[0], pool.submit(decode_or_error, nxt[1], cfg, max_eager_s)))
            yield i, result
    finally:
        for _, fut in queue:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
