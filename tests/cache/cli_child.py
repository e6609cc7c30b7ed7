"""Runs the `embedprobe` command in this process with a slowed-down final merge, for the
Ctrl-C test: the merge copies in 64 KB blocks, 20 ms each, and creates the file named by
$EMBEDPROBE_TEST_MARK when it starts copying (compactions during the run are left as they are).

Usage: python cli_child.py extract ARGS...
"""

from __future__ import annotations

import os
import time

import embedprobe.cache.interrupts as interrupts
import embedprobe.cache.rangeio as rangeio
import embedprobe.cache.snapshot as snapshot

rangeio.SPAN_BYTES = 64 << 10
_check, _consolidate = interrupts.check_interrupt, snapshot._consolidate
_merging = []


def _slow_check() -> None:
    if _merging:
        if not os.path.exists(os.environ["EMBEDPROBE_TEST_MARK"]):
            open(os.environ["EMBEDPROBE_TEST_MARK"], "w").close()
        time.sleep(0.02)
    _check()


def _marked_consolidate(*args, **kwargs):
    _merging.append(True)
    try:
        return _consolidate(*args, **kwargs)
    finally:
        _merging.clear()


interrupts.check_interrupt = _slow_check
snapshot._consolidate = _marked_consolidate

if __name__ == "__main__":
    from embedprobe.cli.main import main

    main()
