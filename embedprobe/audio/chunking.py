"""Long clips in pieces that add up to the whole: context windows, owned frames, the tail rule.

A clip longer than a chunk is cut into *spans* of ``chunk`` samples; a last piece shorter
than ``merge`` samples (half a chunk, or the model's shortest input if longer) joins the
previous span, so spans are 0.5-1.5 chunks long and no audio is ever dropped.

Framed models (``spec.hop_s`` set). Each span is embedded inside a *window* that adds
``left``/``right`` samples of context (the model's ``Extractor.chunk_context_s``) and starts
on a multiple of the hop, so the window's frame ``j`` is the clip's frame ``j + start // hop``
(a model that embeds long input as independent blocks, ``Extractor.chunk_block_s``, gets
spans of whole blocks and windows that start on a block).
A span keeps the frames whose nominal centre ``(g + 1/2) * hop`` lies inside it, and the last
span keeps every frame to the end. The kept frames are therefore exactly the clip's frames
``0 .. n_frames(N) - 1``, in order, each once: no drift, no extra frame per chunk, no lost
tail. Where the context covers the model's receptive field the frames equal the one-piece
run's (up to float rounding); where it cannot (global attention, an LSTM, whole-input
normalisation) they are close, and ``benchmarks/chunk_agreement.py`` measures how close.

A model that normalises its whole input (``Extractor.uses_clip_stats``: wav2vec2-style
``do_normalize``, GE2E's volume gain) gets the whole clip's :class:`ClipStats` with every
window of a long clip (``Extractor.embed_part``), computed in a first pass over the samples.

Clip-level models (``hop_s`` ``None``, one vector per input): each span is embedded alone
(no context) and the span vectors are averaged weighted by span length; see
:data:`CLIP_LEVEL_RULE`.

Example:
    >>> plan = ChunkPlan(chunk=10, left=2, right=3, hop=4, merge=5)
    >>> [(w.start, w.own_start, w.own_stop, len(w.wav)) for w in plan.windows([np.zeros(23)])]
    [(0, 0, 10, 13), (8, 10, 23, 15)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

CLIP_LEVEL_RULE = (
    "clip-level model: a clip longer than one chunk is embedded span by span (a last piece "
    "under half a chunk joins the previous span); mean = span vectors averaged by span length, "
    "std = 0 as for a clip embedded whole; clips/n_frames = number of spans (1 = embedded whole)"
)
FRAMED_RULE = (
    "framed model: each chunk is embedded with context (left, right seconds) in a window that "
    "starts on a hop multiple and keeps the frames whose centre lies in the chunk; the last "
    "piece under half a chunk joins the previous chunk; frames = the whole clip's n_frames"
)


def describe(ext) -> dict:
    """How ``ext`` (an ``Extractor``) embeds long clips, for the cache identity.

    Which clips were chunked follows from their stored duration (1.5 chunks or longer) and,
    for clip-level models, from ``clips/n_frames`` (the number of spans averaged).
    """
    if ext.spec.hop_s is None:
        return {"rule": CLIP_LEVEL_RULE, "context_s": None}
    return {"rule": FRAMED_RULE, "context_s": [float(c) for c in ext.chunk_context_s],
            "block_s": ext.chunk_block_s, "whole_clip_normalisation": bool(ext.uses_clip_stats)}


@dataclass(frozen=True)
class ClipStats:
    """Whole-clip sample statistics for models that normalise their input (``uses_clip_stats``).

    Example:
        >>> ClipStats.of([np.array([1.0, -1.0]), np.array([1.0, 3.0])])
        ClipStats(n=4, mean=1.0, var=2.0, rms=1.7320508075688772)
    """

    n: int
    mean: float
    var: float
    rms: float

    @classmethod
    def of(cls, pieces: Iterable[np.ndarray]) -> ClipStats:
        n, total, squares = 0, 0.0, 0.0
        for p in pieces:
            p = np.asarray(p, dtype=np.float64)
            n, total, squares = n + p.size, total + float(p.sum()), squares + float(np.dot(p, p))
        if n == 0:
            raise ValueError("no samples")
        mean, power = total / n, squares / n
        return cls(n, mean, max(power - mean * mean, 0.0), float(np.sqrt(power)))


@dataclass(frozen=True)
class Window:
    """One piece of a clip to embed.

    Attributes:
        wav: the window's samples, clip samples ``start .. start + len(wav)``.
        start: clip sample of ``wav[0]`` (a multiple of the plan's hop).
        own_start: first clip sample of the span this window stands for.
        own_stop: end of that span (the clip's length for the last window).
        last: the clip's last window.
    """

    wav: np.ndarray
    start: int
    own_start: int
    own_stop: int
    last: bool


@dataclass(frozen=True)
class ChunkPlan:
    """How one model's clips are cut (all lengths in samples at the model's rate).

    Attributes:
        chunk: span length.
        left: context before each span.
        right: context after each span (and the last window is longer than ``left + right``
            and than ``align``).
        hop: the model's frame hop (1 for clip-level models).
        merge: a last piece shorter than this joins the previous span.
        align: window starts are multiples of it (a multiple of ``hop``; 0 = ``hop``).
    """

    chunk: int
    left: int = 0
    right: int = 0
    hop: int = 1
    merge: int = 0
    align: int = 0

    def __post_init__(self) -> None:
        if self.chunk < 1 or self.hop < 1 or min(self.left, self.right, self.merge) < 0 or self.align % self.hop:
            raise ValueError(f"bad chunk plan {self}")
        if not self.align:
            object.__setattr__(self, "align", self.hop)

    @classmethod
    def for_extractor(cls, ext, chunk_samples: int) -> ChunkPlan:
        """The plan of ``ext`` (an ``Extractor``) for spans of ``chunk_samples``."""
        spec = ext.spec
        sr = spec.sample_rate
        merge = max(chunk_samples // 2, math.ceil(spec.min_duration_s * sr))
        if spec.hop_s is None:
            return cls(chunk=chunk_samples, merge=merge)
        left, right = ext.chunk_context_s
        hop = max(1, round(spec.hop_s * sr))
        align = hop
        if ext.chunk_block_s:  # the model embeds independent blocks: spans and windows follow them
            align = round(ext.chunk_block_s * sr)
            chunk_samples = max(1, round(chunk_samples / align)) * align
            merge = max(chunk_samples // 2, math.ceil(spec.min_duration_s * sr))
        return cls(chunk=chunk_samples, left=math.ceil(left * sr), right=math.ceil(right * sr),
                   hop=hop, merge=merge, align=align)

    def frames_before(self, x: int) -> int:
        """How many frames have their nominal centre ``(g + 1/2) * hop`` before clip sample ``x``."""
        return max(0, -((self.hop - 2 * x) // (2 * self.hop)))

    def owned(self, win: Window) -> tuple[int, int | None]:
        """The slice ``[lo, hi)`` of ``win``'s frames its span keeps (``hi`` ``None``: to the end)."""
        first = win.start // self.hop
        lo = self.frames_before(win.own_start) - first
        return lo, None if win.last else self.frames_before(win.own_stop) - first

    def windows(self, pieces: Iterable[np.ndarray]) -> Iterator[Window]:
        """Cut a clip given as consecutive 1-D ``pieces`` into windows (memory: about one window).

        A clip no longer than ``chunk + merge`` samples is one window: the clip itself.
        """
        it = iter(pieces)
        buf, buf_start, done = np.zeros(0, np.float32), 0, False
        s = 0
        while True:
            need = s + self.chunk + max(self.right, self.merge)
            parts = [buf]
            have = buf_start + len(buf)
            while not done and have < need:
                p = next(it, None)
                if p is None:
                    done = True
                else:
                    parts.append(np.asarray(p, dtype=np.float32))
                    have += len(parts[-1])
            if len(parts) > 1:
                buf = np.concatenate(parts)
            end = buf_start + len(buf)
            last = done and end - s < self.chunk + self.merge
            e = end if last else s + self.chunk
            w0 = s - self.left
            if last:  # full context, and more than one block (a block model splits it as the whole)
                w0 = min(w0, end - max(self.left + self.right, self.align + 1))
            w0 = max(0, w0 // self.align * self.align)
            w1 = end if last else min(end, e + self.right)
            yield Window(buf[w0 - buf_start:w1 - buf_start], w0, s, e, last)
            if last:
                return
            # the samples the next window may start at: its left context, or (the last window)
            # full context and more than one block before the clip's end, which is past e
            lowest = min(e - self.left - self.right, e + 1 - max(self.left + self.right, self.align + 1))
            keep = max(0, lowest // self.align * self.align)
            buf, buf_start, s = buf[keep - buf_start:], keep, e
