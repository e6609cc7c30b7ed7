"""``embedprobe report RESULTS_DIR``: a Markdown report with matrices, heatmaps and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from embedprobe.errors import EmbedprobeError
from embedprobe.provenance import atomic_write_text
from embedprobe.report.domain import domain_sections
from embedprobe.report.escape import md, md_code
from embedprobe.report.heatmap import save_heatmap
from embedprobe.report.results import read_results
from embedprobe.report.tables import metric_matrix, relative_from, run_choices, to_markdown

MATRICES = (("auroc", "AUROC"), ("wf1", "wF1"))


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.md`` (and ``figures/*.png``) for every results JSON under ``results_dir``."""
    results_dir = Path(results_dir)
    runs = read_results(results_dir)
    if not runs:
        raise EmbedprobeError(f"No embedprobe results JSON in {results_dir}. Fix: run `embedprobe probe "
                              f"... --out {results_dir}` first.")
    out = Path(out) if out else results_dir / "report.md"
    figs = out.parent / "figures"
    parts = ["# embedprobe report", "",
             f"{len(runs)} run(s) from {md(results_dir)}. Cells read `mean [95% bootstrap interval]`; "
             "the in-domain cell of a corpus follows its own split protocol, named in each run's heading "
             "with the fold aggregation: `mean` averages the folds' scores, `pooled` scores the predictions "
             "of all folds at once (per seed, then the mean over seeds).", ""]
    for path, rec in runs:
        parts += _section(path, rec, figs, out.parent)
    parts += domain_sections(results_dir)
    atomic_write_text(out, "\n".join(parts) + "\n")
    return out


def _section(path: Path, rec: dict[str, Any], figs: Path, base: Path) -> list[str]:
    cfg = rec["config"]
    stem = path.stem
    lines = [f"## {md(cfg['model'])} · {md(cfg['probe'])} probe · trained on "
             f"{md(', '.join(rec['resolved']['train_sets'][0]))} · {md(run_choices(rec))}",
             "",
             f"- results: {md(path.name)}; seeds {md(rec['seeds'])}; layer "
             f"{md(next(iter(rec['caches'].values()))['layer'])}; pooling {md(cfg.get('pooling'))}; "
             f"frames {md(cfg.get('frames'))}; scrambled {md(', '.join(cfg.get('scramble') or []) or 'none')}",
             f"- code {md(rec.get('code_version'))}; torch {md(rec['versions'].get('torch'))}; "
             f"{rec.get('seconds', 0):.0f} s",
             ""]
    lines += ["| corpus | protocol | folds | 4-class clips | cache fingerprint |", "|---|---|---|---|---|"]
    for name, c in rec["caches"].items():
        lines.append(f"| {md(name)} | {md(c['protocol'])} | {len(c['folds'])} | {c['n_4class']} "
                     f"| {md_code(c['fingerprint'])} |")
    lines.append("")
    lines += _split_checks(rec)
    mats = [metric_matrix(rec["cells"], m, title) for m, title in MATRICES]
    mats.append(relative_from(rec, "wf1"))
    for key, m in zip(("auroc", "wf1", "relative-wf1"), mats, strict=False):
        png = save_heatmap(m, figs / f"{stem}__{key}.png")
        lines += [f"### {md(m.title)}", "", to_markdown(m), "",
                  f"![{md(m.title)}]({quote(png.relative_to(base).as_posix())})", ""]
    lines += _last20(rec)
    if rec.get("fragmentation"):
        lines += ["### Label scrambling: fragmentation summary", "",
                  "A joint score close to the alone score means the probe keeps corpora apart "
                  "instead of learning shared emotion features (paper, Fig. 3).", "",
                  "| scrambled corpus | joint training | joint wF1 | alone wF1 | Δ wF1 | joint AUROC | alone AUROC |",
                  "|---|---|---|---|---|---|---|"]
        for r in rec["fragmentation"]:
            lines.append(f"| {md(r['corpus'])} | {md(r['joint_train'])} | {_f(r['joint_wf1'])} | {_f(r['alone_wf1'])} "
                         f"| {_f(r['delta_wf1'], True)} | {_f(r['joint_auroc'])} | {_f(r['alone_auroc'])} |")
        lines.append("")
    return lines


def _split_checks(rec: dict[str, Any]) -> list[str]:
    """The split problems found before training (results written before the checks have none)."""
    issues = rec.get("split_checks") or []
    if not issues:
        return []
    lines = ["### Split checks", "",
             "Problems found in the folds before training; a run with a stopping problem ran only with "
             "`--allow-degenerate`, and its affected cells do not measure what they seem to.", ""]
    for i in issues:
        mark = "**stops without --allow-degenerate**" if i.get("stops") else "warning"
        lines.append(f"- {mark} ({md(i.get('kind'))}): {md(i.get('message'))}")
    return lines + [""]


def _last20(rec: dict[str, Any]) -> list[str]:
    lines = ["### Every cell", "",
             "| train | test | n | AUROC | ACC | uACC | F1 | wF1 | AvPrec | wF1 last-20% (std) | wF1 over seeds (std) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in rec["cells"]:
        m = c["metrics"]
        s = m["wf1"].get("seeds", {})
        miss = f" (missing {md(', '.join(c['missing_classes']))})" if c.get("missing_classes") else ""
        lines.append(
            f"| {md(c['train'])} | {md(c['test'])}{miss} | {c['n_test']} | "
            + " | ".join(_f(m[k]["mean"]) for k in ("auroc", "acc", "uacc", "f1", "wf1", "avprec"))
            + f" | {_f(m['wf1'].get('last20_mean'))} ({_f(m['wf1'].get('last20_std'), d=3)})"
            + f" | {_f(s.get('mean'))} ({_f(s.get('std'), d=3)}) |")
    return lines + [""]


def _f(v: Any, signed: bool = False, d: int = 2) -> str:
    if v is None:
        return "–"
    return f"{v:+.{d}f}" if signed else f"{v:.{d}f}"
