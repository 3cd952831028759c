"""``ovbench report STUDY|FILE --format md|latex|csv|html``: tables and plots under ``reports/<study>/``.

Writes ``table.<fmt>`` for each format, ``trials.csv`` (every trial, raw),
plots as PNG + SVG, and prints the first format's table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from ovbench.report import panels, plots, tables
from ovbench.report.frame import open_for_report, study_frame, swept_params
from ovbench.sweep import study as st

EXT = {"md": "md", "latex": "tex", "csv": "csv", "html": "html"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="an ablation file (ablations/X.yaml) or a study name")
    parser.add_argument("--format", nargs="+", default=["md"], choices=sorted(EXT), help="table format(s)")
    parser.add_argument("--storage", help="optuna storage URL (default: the study's SQLite under the work dir)")
    parser.add_argument("--work-dir", help="sweep work dir (default: work_dirs/sweeps/<study>)")
    parser.add_argument("--out", default="reports", help="report root; files go to <out>/<study>/")
    parser.add_argument("--metric", help="metric for plots (default: the study's objective)")
    parser.add_argument("--no-plots", action="store_true")


def build_report(target: str, formats: List[str], out_root: Path, storage: Optional[str] = None,
                 work_dir: Optional[str] = None, metric: Optional[str] = None,
                 plots_on: bool = True) -> Dict[str, str]:
    """Render every format (and plots) for one study; returns {format: text}."""
    study, _ = open_for_report(target, storage, work_dir)
    params = swept_params(study)
    df = study_frame(study)
    table = tables.summarize(df, params)
    metrics = [c for c in table.columns if "/" in c and not c.endswith(":std")]
    out_dir = out_root / study.study_name
    out_dir.mkdir(parents=True, exist_ok=True)
    paper = (study.user_attrs.get("paper") or {}).get("values")
    texts = {}
    head = _header(study, df)
    for fmt in formats:
        text = tables.render(table, metrics, fmt, paper)
        if fmt == "md":
            text = head + "\n" + text + _failures_md(df, params)
        (out_dir / f"table.{EXT[fmt]}").write_text(text)
        texts[fmt] = text
    df.drop(columns=["predictions"], errors="ignore").to_csv(out_dir / "trials.csv", index=False)
    objective = metric or (study.user_attrs.get("spec") or {}).get("objective", [None])[0]
    if plots_on and objective:
        plots.all_plots(table, params, objective, out_dir)
    if plots_on and not df.empty:
        labelled = df.assign(setting=[tables.setting_label(r, params) for r in df.astype(object).to_dict("records")])
        panels.panel(labelled, out_dir)
    return texts


def _header(study, df) -> str:
    desc = study.user_attrs.get("description") or ""
    commits = sorted({str(c) for c in df.get("git_commit", []) if c}) if not df.empty else []
    devices = sorted({str(c) for c in df.get("device", []) if c}) if not df.empty else []
    return (f"# {study.study_name}\n\n{desc}\n\nspec hash `{study.user_attrs.get('spec_hash')}`; "
            f"commit(s) {', '.join(commits) or '-'}; device(s) {', '.join(devices) or '-'}. "
            f"Mean ± std over seeds; best in bold.\n")


def _failures_md(df, params) -> str:
    text = tables.failures(df, params) if not df.empty else ""
    return f"\nFailed trials:\n\n{text}" if text else ""


def run(args: argparse.Namespace) -> int:
    try:
        texts = build_report(args.target, args.format, Path(args.out), args.storage, args.work_dir,
                             args.metric, plots_on=not args.no_plots)
    except KeyError as e:
        print(f"error: study not found in the storage: {e}", file=sys.stderr)
        return 2
    except (st.StudyMismatch, st.StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(texts[args.format[0]])
    return 0
