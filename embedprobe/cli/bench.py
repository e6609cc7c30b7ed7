"""``embedprobe bench CONFIG.toml``: run (or resume) a grid of probing runs and write its report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from embedprobe.bench import load_config, plan_summary, run_bench
from embedprobe.cli.common import console, friendly, out
from embedprobe.common.raycluster import check_engine


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def bench(
        config: Path = typer.Argument(..., help="Bench config (TOML), e.g. benchmarks/configs/emodb_synthetic.toml."),
        model: list[str] = typer.Option(None, "--model", "-m", help="Extractor(s) to run, replacing extract.models of the config; repeatable."),
        jobs: int = typer.Option(None, "--jobs", "-j", help="Parallel worker processes (default: bench.jobs of the config)."),
        out_dir: Path = typer.Option(None, "--out", "-o", help="Output folder (default: bench.out of the config)."),
        set_: list[str] = typer.Option(None, "--set", help="Override a config value: TABLE.KEY=VALUE (TOML), repeatable."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs and what is already finished; run nothing."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress view."),
        allow_incomplete: bool = typer.Option(False, "--allow-incomplete",
                                              help="Probe caches that miss clips (same as --set probe.allow_incomplete=true)."),
        engine: str = typer.Option(None, "--engine", help="Where tasks run: local (a process pool of --jobs) or ray "
                                   "(default: bench.engine of the config, else local). Needs pip install 'embedprobe[ray]'."),
        address: str = typer.Option(None, "--address", help="Ray cluster to join: auto or HOST:6379 "
                                    "(default: ray.address of the config, else Ray's own choice on this machine)."),
        cpus_per_task: int = typer.Option(None, "--cpus-per-task", help="Ray: CPUs (and torch threads) of each task "
                                          "(default: ray.cpus_per_task, else 1)."),
        gpus_per_extract: float = typer.Option(None, "--gpus-per-extract", help="Ray: GPUs of each extraction task, "
                                               "fractions share a GPU (default: 1 when extract.device is cuda, else 0)."),
    ) -> None:
        """Run a grid (extractors x layers x training sets x probes x rates x scrambling), skipping finished jobs.

        Writes OUT/report.html (self-contained), OUT/bench.csv and OUT/bench.json. Killed or
        interrupted? Run the same command again: finished jobs are kept. With --engine ray the
        extractions and jobs are Ray tasks on a cluster (README, "Running on a cluster").
        """
        if engine is not None:
            check_engine(engine)
        overrides = [*(set_ or []), *(["probe.allow_incomplete=true"] if allow_incomplete else [])]
        cfg = load_config(config, overrides=overrides, models=model or None,
                          out=str(out_dir) if out_dir else None, jobs=jobs, engine=engine, address=address,
                          cpus_per_task=cpus_per_task, gpus_per_extract=gpus_per_extract)
        if dry_run:
            plan = plan_summary(cfg)
            for row in plan["jobs"]:
                note = f"  ({row['note']})" if row["note"] else ""
                out.print(escape(f"{row['state']:>13}  {row['id']}{note}"))
            states = [r["state"] for r in plan["jobs"]]
            out.print(f"{plan['n_jobs']} jobs: " + ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)))
            return
        try:
            run = run_bench(cfg, progress=not quiet, on_event=None if quiet else console.print)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: finished jobs are kept; run the same command to resume.")
            raise typer.Exit(130) from None
        n = len(run.jobs)
        console.print(f"[green]bench {escape(cfg.name)}[/]: {n} jobs, {run.count('done')} run, {run.count('skipped')} "
                      f"skipped (finished before), {run.count('failed')} failed, "
                      f"{run.count('unsupported') + run.count('blocked')} not runnable; {run.seconds:.0f} s")
        console.print(escape(f"report: {run.report}\ncsv:    {run.csv}\njson:   {run.json}"))
        if run.count("failed") or any(t.status == "failed" for t in run.extractions):
            raise typer.Exit(1)
