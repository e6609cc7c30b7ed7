"""One rich progress bar for long work (extraction, probing, bench): count, rate, elapsed and ETA."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


class Progress:
    """Context manager yielding ``tick(info="", advance=1)``; a no-op when disabled or EMBEDPROBE_NO_PROGRESS is set.

    Args:
        enabled: show the bar.
        total: number of steps.
        label: text before the bar.
        completed: steps already done (resumed work).
        ``tick(info, advance)`` advances the bar and shows ``info`` beside it, preceded by the
        rate in steps per second when ``unit`` is given.
        unit: plural noun for the rate column (``"clips"``), or ``None`` for no rate.
        rate_digits: decimals of the rate (2 for slow work, e.g. ``"0.55 clips/s"``).
    """

    def __init__(self, enabled: bool, total: int, label: str, *, completed: int = 0,
                 unit: str | None = None, rate_digits: int = 1):
        self.enabled = enabled and not os.environ.get("EMBEDPROBE_NO_PROGRESS")
        self.total, self.label, self.completed, self.unit = total, label, completed, unit
        self.rate_digits = rate_digits
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[..., None]:
        if not self.enabled:
            return lambda *a, **k: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._p = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                               TimeRemainingColumn())
        self._p.start()
        self._task = self._p.add_task(self.label, total=self.total, completed=self.completed, info="")
        t0, n = time.perf_counter(), [0]

        def tick(info: str = "", advance: int = 1) -> None:
            n[0] += advance
            if self.unit:
                rate = n[0] / max(time.perf_counter() - t0, 1e-9)
                info = f"{rate:.{self.rate_digits}f} {self.unit}/s" + (f", {info}" if info else "")
            self._p.update(self._task, advance=advance, info=info)

        return tick

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()
