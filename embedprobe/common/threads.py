"""Thread policy: how many torch / BLAS / OpenMP threads a piece of work gets.

On a busy machine, OpenMP threads spin-wait for each other at the end of every parallel
region; on the tiny matrices of probe training (a 256 x 88 batch) that waiting costs far more
than the arithmetic. Seen on 2 cores with other processes running: EmoDB linear probe, 10
folds, 373 s with torch's default threads, 11 s with one thread.

So the rule here is: one thread unless one call's work is big enough to pay for sharing it,
and never more threads than the cores that look free right now.

* :func:`cpu_cores` - cores this process may use: its affinity mask, capped by a cgroup CPU
  quota (containers, cluster jobs), never the machine's total.
* :func:`free_cores` - a cheap estimate of the cores not used by other processes, from the
  kernel's count of runnable tasks (``/proc/loadavg``, a few samples, the median).
* :func:`choose_threads` - the thread count for one call of ``work`` floating-point
  operations, or the user's ``--threads`` when given (validated).
* :func:`limit_threads` - a context manager that sets torch's intra-op threads *and* every
  BLAS / OpenMP pool (threadpoolctl), and restores both afterwards.
* :func:`limit_blas_threads` - the same for the BLAS libraries alone (numpy's OpenBLAS, whose
  float32 sums differ in the last bit between thread counts on some CPUs).

Measured on this project's 2-core AMD EPYC (KVM, no AMX) while it was shared with other
engineers' jobs (5-14 runnable tasks; figures at 3 runnable tasks below), time of one probe call on 1 and 2 threads (best of 7;
the crossover part of ``benchmarks/probe_speed.py`` prints these figures): 2 threads were
slower in 23 of 24 cases, training steps of 0.5-3,400 MFLOP 1.05-25x slower (mostly 3-12x;
linear 256 x 88: 1.1 ms -> 12 ms; MLP 1024 x 1024: 69 ms -> 332 ms), predictions of
0.2-16,000 MFLOP up to 7.7x slower; one prediction (MLP, 300 x 1024, 99 MFLOP) was 4.4x
faster, caught at a moment with a free core. Hence two guards: small calls always run on one thread, and :func:`free_cores` caps the
count on a busy machine.
"""

from __future__ import annotations

import math
import numbers
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedprobe.errors import BadValueError

# One thread per this many floating-point operations of one call. The machine this was written
# on was never quiet, so a quiet crossover could not be measured there. At its quietest (3
# runnable tasks on 2 cores, i.e. 1-2 others), 2 threads against 1 gave: training steps 0.05-
# 0.86x at every size from 0.5 to 3,430 MFLOP (linear 256 x 88: 0.34 -> 2.2 ms; MLP 128x256 on
# 1024 x 4096: 35 -> 76 ms); predictions 0.06-0.5x below 100 MFLOP, 1.17x at 99 MFLOP (MLP,
# 300 x 1024) and 1.22x at 1,650 MFLOP (MLP, 5000 x 1024). So 100 MFLOP per thread (2 threads
# from 200 MFLOP) and only on free cores: every probe of this project's corpora stays on one
# thread unless the machine is idle and one call is large (big predictions, covariance square
# roots of wide layers); rerun the crossover part on an idle machine to refine it.
MIN_FLOPS_PER_THREAD = 100e6

_LOADAVG = Path("/proc/loadavg")


def cpu_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _cgroup_quota() -> float | None:
    """CPUs granted by ``/sys/fs/cgroup/cpu.max`` (``"200000 100000"`` -> 2.0), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _runnable() -> int | None:
    """Runnable tasks on the machine now (4th field of ``/proc/loadavg``), None where unknown."""
    try:
        return int(_LOADAVG.read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def free_cores(cores: int | None = None, *, samples: int = 5, interval: float = 0.002) -> float:
    """Estimate of this process's cores not taken by others (0 .. ``cores``).

    The kernel's count of runnable tasks is sampled ``samples`` times (``interval`` s apart)
    and the median taken; one task is this process. Others' share of the machine is scaled to
    this process's cores (a container's ``/proc/loadavg`` counts the whole host). Where
    ``/proc/loadavg`` is missing, the 1-minute load average stands in.

    Checked against ``/proc/stat`` idle time over 100 ms windows on the shared 2-core machine:
    both said "no free core" in 20 of 20 samples at 5-9 runnable tasks. The median of a few
    samples is used because one reading jumps by 1-2 tasks between calls.
    """
    cores = cpu_cores() if cores is None else cores
    counts = []
    for i in range(samples):
        r = _runnable()
        if r is None:
            break
        counts.append(r)
        if i + 1 < samples:
            time.sleep(interval)
    if counts:
        others = max(0.0, statistics.median(counts) - 1.0)
    else:
        try:
            others = max(0.0, os.getloadavg()[0] - 1.0)
        except (AttributeError, OSError):
            return float(cores)
    total = os.cpu_count() or cores
    return max(0.0, cores * (1.0 - others / total))


def check_threads(threads: int | None, what: str = "--threads") -> int | None:
    """``threads`` if it is ``None`` or an integer >= 1, else a BadValueError."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise BadValueError(what, threads, None, fix=f"Use a whole number of threads >= 1 (this process "
                            f"may use {cpu_cores()} cores), or leave it out to let embedprobe choose.")
    return int(threads)


def choose_threads(work: float, *, requested: int | None = None, cores: int | None = None,
                   free: float | None = None) -> int:
    """Threads for calls of ``work`` floating-point operations each.

    Args:
        work: floating-point operations of one call (one training step, one prediction...).
        requested: the user's ``--threads``: returned as is once validated.
        cores: cores of this process (default :func:`cpu_cores`).
        free: free cores (default :func:`free_cores`, read only when ``work`` could use > 1).

    Returns:
        1 for work under ``2 * MIN_FLOPS_PER_THREAD``; else one thread per
        ``MIN_FLOPS_PER_THREAD``, at most ``cores`` and at most the free cores (at least 1).
    """
    if requested is not None:
        return check_threads(requested)
    by_work = int(work // MIN_FLOPS_PER_THREAD) if work > 0 else 1
    cores = cpu_cores() if cores is None else cores
    n = max(1, min(by_work, cores))
    if n == 1:
        return 1
    free = free_cores(cores) if free is None else free
    return max(1, min(n, int(free + 1e-9)))


_controller: tuple[int, Any] | None = None


def _threadpools() -> Any:
    """threadpoolctl's controller of the loaded BLAS / OpenMP libraries.

    Finding them scans the process's shared libraries (~5 ms, as long as a small probe's whole
    prediction), so the controller is kept and found again only once more modules are imported
    (native libraries arrive with extension modules).
    """
    global _controller
    from threadpoolctl import ThreadpoolController

    n = len(sys.modules)
    if _controller is None or _controller[0] != n:
        _controller = (n, ThreadpoolController())
    return _controller[1]


@contextmanager
def limit_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads and BLAS / OpenMP threads.

    torch is set only if it is already imported (this never imports it); every BLAS and
    OpenMP library loaded in the process (numpy's OpenBLAS, torch's OpenMP) is limited
    through threadpoolctl. Both are restored on exit, also after an exception.

    Example:
        >>> with limit_threads(1) as n:
        ...     n
        1
    """
    threads = check_threads(threads, "threads")
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None and before != threads:
            torch.set_num_threads(threads)
        with _threadpools().limit(limits=threads):
            yield threads
    finally:
        if torch is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def limit_blas_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` threads in every loaded BLAS library (numpy's OpenBLAS);
    torch's intra-op threads and OpenMP pools are left as they are. Restored on exit.

    Example:
        >>> with limit_blas_threads(1) as n:
        ...     n
        1
    """
    threads = check_threads(threads, "threads")
    with _threadpools().limit(limits=threads, user_api="blas"):
        yield threads


def describe(requested: int | None = None) -> dict:
    """A provenance record of the thread situation: requested, cores, free cores now."""
    cores = cpu_cores()
    return {"requested": requested, "cores": cores, "free_cores_at_start": round(free_cores(cores), 2),
            "os_cpu_count": os.cpu_count()}
