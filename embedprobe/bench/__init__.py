"""``embedprobe bench``: a grid of probing runs from one TOML config, resumable, in parallel,
with one HTML report.

Example:
    >>> from embedprobe.bench import load_config, run_bench   # doctest: +SKIP
    >>> run = run_bench(load_config("benchmarks/configs/emodb_synthetic.toml"))  # doctest: +SKIP
    >>> run.report  # doctest: +SKIP
    PosixPath('out/bench/emodb-synthetic/report.html')

Modules: ``config`` (TOML -> ``spec`` frozen dataclasses, each table checked in ``sections``),
``grid`` (jobs, ids, fingerprints), ``runner`` (corpora, caches, resume) on ``executor``
(process pool) or ``ray_executor`` (Ray tasks, ``engine = "ray"``), ``progress`` (the progress view), ``collect`` (summary, CSV, JSON) with
``numbers`` (every number the report shows that no results file holds; older ``bench.json``
upgraded on read), ``extras`` (acoustics and domain-gap sections, composed with the probe jobs).
"""

from embedprobe.bench.config import BenchConfig, load_config, parse_config
from embedprobe.bench.grid import Job, expand, job_fingerprint
from embedprobe.bench.runner import BenchRun, plan_summary, run_bench

__all__ = ["BenchConfig", "BenchRun", "Job", "expand", "job_fingerprint", "load_config", "parse_config",
           "plan_summary", "run_bench"]
