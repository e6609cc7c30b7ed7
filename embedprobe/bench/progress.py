"""One progress view over a bench: a bar per phase (weighted by estimated cost, with ETA) and a
row per running task. A no-op when disabled or when ``EMBEDPROBE_NO_PROGRESS`` is set."""

from __future__ import annotations

import os
from typing import Any


class GridProgress:
    """Context manager with ``phase``, ``started`` and ``finished`` calls (see ``bench.runner``)."""

    def __init__(self, enabled: bool, name: str):
        self.enabled = enabled and not os.environ.get("EMBEDPROBE_NO_PROGRESS")
        self.name = name
        self._p: Any = None
        self._main: Any = None
        self._rows: dict[str, Any] = {}
        self._cost: dict[str, float] = {}
        self._counts = {"total": 0, "done": 0, "skipped": 0, "failed": 0}

    def __enter__(self) -> GridProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                               TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                               TextColumn("{task.fields[eta]}"), TimeRemainingColumn())
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            for row in self._rows.values():
                self._p.remove_task(row)
            self._rows.clear()
            self._p.stop()

    @property
    def console(self) -> Any:
        return self._p.console if self._p is not None else None

    def phase(self, phase: str, tasks: list[tuple[str, float]], done_before: int = 0) -> None:
        """Start a phase of ``tasks`` (key, relative cost); ``done_before`` were skipped."""
        self._cost = {k: max(c, 1e-6) for k, c in tasks}
        self._counts = {"total": len(tasks) + done_before, "done": done_before, "skipped": done_before,
                        "failed": 0}
        if self._p is None:
            return
        if self._main is not None:
            self._p.update(self._main, eta="")
        self._main = self._p.add_task(f"[bold]{self.name}[/] {phase}", total=sum(self._cost.values()),
                                      info=self._info(), eta="ETA")

    def started(self, key: str) -> None:
        if self._p is None or key in self._rows:
            return
        self._rows[key] = self._p.add_task(f"  [dim]{key}[/]", total=None, info="running", eta="")

    def finished(self, key: str, status: str) -> None:
        self._counts["done"] += 1
        self._counts["failed"] += status == "failed"
        if self._p is None:
            return
        row = self._rows.pop(key, None)
        if row is not None:
            self._p.remove_task(row)
        self._p.update(self._main, advance=self._cost.get(key, 0.0), info=self._info())

    def _info(self) -> str:
        c = self._counts
        extra = [f"{c['skipped']} skipped"] if c["skipped"] else []
        extra += [f"[red]{c['failed']} failed[/]"] if c["failed"] else []
        return f"{c['done']}/{c['total']}" + (f" ({', '.join(extra)})" if extra else "")
