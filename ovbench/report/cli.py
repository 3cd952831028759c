"""``ovbench report STUDY|FILE --format md|latex|csv|html``: tables and plots under ``reports/<study>/``.

Writes ``table.<fmt>`` for each format, ``trials.csv`` (every trial, raw),
plots as PNG + SVG and ``report.json`` (which study and storage it came from),
prints the first format's table, and says on stderr what it wrote. It refuses to
replace another study's report in the same folder without ``--force``
(:mod:`ovbench.report.manifest`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from ovbench.errors import InputError
from ovbench.report import manifest, panels, plots, tables
from ovbench.report.frame import open_for_report, study_frame, swept_params
from ovbench.sweep.study import display_url

EXT = {"md": "md", "latex": "tex", "csv": "csv", "html": "html"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="an ablation file (ablations/X.yaml) or a study name")
    parser.add_argument("--format", nargs="+", default=["md"], choices=sorted(EXT), help="table format(s)")
    parser.add_argument("--storage", help="optuna storage URL (default: the study's SQLite under the work dir)")
    parser.add_argument("--work-dir", help="sweep work dir (default: work_dirs/sweeps/<study>)")
    parser.add_argument("--out", default="reports", help="report root; files go to <out>/<study>/")
    parser.add_argument("--metric", help="metric for plots (default: the study's objective)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--force", action="store_true",
                        help="replace a report in <out>/<study>/ that another study or storage wrote")


def build_report(target: str, formats: List[str], out_root: Path, storage: Optional[str] = None,
                 work_dir: Optional[str] = None, metric: Optional[str] = None,
                 plots_on: bool = True, force: bool = False) -> Dict[str, str]:
    """Render every format (and plots) for one study; returns {format: text}.

    Raises :class:`~ovbench.report.manifest.ReportOverwrite` (before writing anything) when
    ``<out_root>/<study>/`` holds another study's report and ``force`` is off.
    """
    study, _, url = open_for_report(target, storage, work_dir)
    out_dir = out_root / study.study_name
    source = manifest.ReportManifest(study.study_name, display_url(url))
    replaced = manifest.check_writable(out_dir, source, force)
    params = swept_params(study)
    df = study_frame(study)
    table = tables.summarize(df, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts, written = _write_tables(study, df, table, params, formats, out_dir)
    objective = metric or (study.user_attrs.get("spec") or {}).get("objective", [None])[0]
    if plots_on and objective:
        written += plots.all_plots(table, params, objective, out_dir)
    if plots_on and not df.empty:
        labelled = df.assign(setting=[tables.setting_label(r, params) for r in df.astype(object).to_dict("records")])
        written += panels.panel(labelled, out_dir)
    manifest.finish(out_dir, source, written, replaced)
    print(f"report of {source.describe()} -> {out_dir}/: {_summary(written)}", file=sys.stderr)
    return texts


def _write_tables(study, df, table, params, formats: List[str], out_dir: Path):
    """``table.<fmt>`` per format and ``trials.csv``; returns ({format: text}, [paths written])."""
    metrics = [c for c in table.columns if "/" in c and not c.endswith(":std")]
    paper = (study.user_attrs.get("paper") or {}).get("values")
    head = _header(study, df)
    texts, written = {}, []
    for fmt in formats:
        text = tables.render(table, metrics, fmt, paper)
        if fmt == "md":
            text = head + "\n" + text + _failures_md(df, params)
        written.append(out_dir / f"table.{EXT[fmt]}")
        written[-1].write_text(text)
        texts[fmt] = text
    written.append(out_dir / "trials.csv")
    df.drop(columns=["predictions"], errors="ignore").to_csv(written[-1], index=False)
    return texts, written


def _summary(written: List[Path]) -> str:
    """'table.md, trials.csv, 8 plot files, 3 panels' -- the names a user looks for, counts for the rest."""
    names = [p.name for p in written]
    plots_n = sum(1 for n in names if "_vs_" in n)
    panels_n = sum(1 for n in names if n.startswith("panel_"))
    shown = [n for n in names if "_vs_" not in n and not n.startswith("panel_")]
    return ", ".join(shown + ([f"{plots_n} plot files"] if plots_n else []) + ([f"{panels_n} panels"] if panels_n else []))


def _header(study, df) -> str:
    desc = study.user_attrs.get("description") or ""
    commits = _distinct(df, "git_commit")
    devices = _distinct(df, "device")
    return (f"# {study.study_name}\n\n{desc}\n\nspec hash `{study.user_attrs.get('spec_hash')}`; "
            f"commit(s) {', '.join(commits) or '-'}; device(s) {', '.join(devices) or '-'}. "
            f"Mean ± std over seeds; best in bold.\n")


def _distinct(df, column: str) -> List[str]:
    """The distinct non-empty values of a column (a failed trial has none: NaN in the frame, never "nan")."""
    if df.empty or column not in df:
        return []
    return sorted({str(v) for v in df[column].dropna() if str(v)})


def _failures_md(df, params) -> str:
    text = tables.failures(df, params) if not df.empty else ""
    return f"\nFailed trials:\n\n{text}" if text else ""


def run(args: argparse.Namespace) -> int:
    try:
        texts = build_report(args.target, args.format, Path(args.out), args.storage, args.work_dir,
                             args.metric, plots_on=not args.no_plots, force=args.force)
    except InputError as e:  # a bad file, a missing storage or study, a changed file
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(texts[args.format[0]])
    return 0
