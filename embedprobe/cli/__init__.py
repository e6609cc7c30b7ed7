"""Thin typer commands: parse -> config -> one library call -> print.

Ctrl-C in the first moment of start-up (while Python imports the commands) ends with one
"interrupted" line and exit code 130, not a traceback: nothing has been written yet. Commands
hand SIGINT back to Python (``KeyboardInterrupt``) with ``python_handles_sigint()``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _interrupted_at_start(signum: int, frame: object) -> None:
    os.write(2, b"interrupted during start-up (nothing was written): re-run the same command to resume\n")
    os._exit(130)


def python_handles_sigint() -> None:
    """From here on Ctrl-C raises ``KeyboardInterrupt`` (each command reports it itself)."""
    if signal.getsignal(signal.SIGINT) is _interrupted_at_start:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# Only when this process is the embedprobe command (the console script, or `python -m
# embedprobe.cli.main` while it is being imported), never when a program imports the package.
if (os.path.basename(sys.argv[0]) == "embedprobe" or sys.argv[0] == "-m") \
        and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _interrupted_at_start)
