"""``ovbench report STUDY|FILE --format md|latex|csv|html``: tables and plots under ``reports/<study>/``.

Writes ``table.<fmt>`` for each format (every metric, mean ± 95% CI over seeds),
``summary.md`` (the study's answer in sentences, :mod:`ovbench.report.summary`),
``trials.csv`` (every trial, raw), plots as PNG + SVG and ``report.json`` (which
study and storage it came from); prints a compact table (the objective on each
set, trainable parameters, train time) and says on stderr what it wrote. It refuses to
replace another study's report in the same folder without ``--force``
(:mod:`ovbench.report.manifest`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from ovbench.errors import InputError
from ovbench.report import manifest, panels, plots, summary, tables
from ovbench.report.frame import distinct_values, open_for_report, study_frame, swept_params
from ovbench.sweep.study import display_url

EXT = {"md": "md", "latex": "tex", "csv": "csv", "html": "html"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="an ablation file (ablations/X.yaml) or a study name")
    parser.add_argument("--format", nargs="+", default=["md"], choices=sorted(EXT), help="table format(s)")
    parser.add_argument("--storage", help="optuna storage URL (default: the study's SQLite under the work dir)")
    parser.add_argument("--work-dir", help="sweep work dir (default: work_dirs/sweeps/<study>)")
    parser.add_argument("--out", default="reports", help="report root; files go to <out>/<study>/")
    parser.add_argument("--metric", help="metric for plots (default: the study's objective)")
    parser.add_argument("--reference", help="setting label every row is compared with, paired by seed "
                                            "(e.g. 'q=128'; default: the ablation file's `reference:`)")
    parser.add_argument("--full", action="store_true", help="print the full table, not the compact one")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--force", action="store_true",
                        help="replace a report in <out>/<study>/ that another study or storage wrote")


def build_report(target: str, formats: List[str], out_root: Path, storage: Optional[str] = None,
                 work_dir: Optional[str] = None, metric: Optional[str] = None,
                 plots_on: bool = True, force: bool = False, reference: Optional[str] = None) -> Dict[str, str]:
    """Render every format (and plots, and the summary) for one study; returns {format: text, "compact": text}.

    Raises :class:`~ovbench.report.manifest.ReportOverwrite` (before writing anything) when
    ``<out_root>/<study>/`` holds another study's report and ``force`` is off.
    """
    study, spec_file, url = open_for_report(target, storage, work_dir)
    out_dir = out_root / study.study_name
    source = manifest.ReportManifest(study.study_name, display_url(url))
    replaced = manifest.check_writable(out_dir, source, force)
    spec = study.user_attrs.get("spec") or {}
    objective = tuple(spec["objective"]) if spec.get("objective") else None
    if reference is None:  # the file's `reference:` (a study named without its file: the stored one)
        reference = spec_file.reference if spec_file is not None else study.user_attrs.get("reference")
    params = swept_params(study)
    df = study_frame(study)
    table = tables.summarize(df, params, objective=objective, reference=reference)
    manifest.begin(out_dir, source, replaced)
    texts, written = _write_tables(study, df, table, params, formats, out_dir, objective, reference)
    written += _write_summary(study, df, params, objective, reference, out_dir)
    plot_metric = metric or (objective[0] if objective else None)
    if plots_on and plot_metric:
        paper = (study.user_attrs.get("paper") or {}).get("values")
        written += plots.all_plots(table, params, plot_metric, out_dir, maximize=_maximize(objective, plot_metric),
                                   paper=paper)
    if plots_on and not df.empty:
        labelled = df.assign(setting=tables.trial_labels(df, params))
        written += panels.panel(labelled, out_dir)
    manifest.finish(out_dir, source, written, replaced)
    print(f"report of {source.describe()} -> {out_dir}/: {_summary(written)}", file=sys.stderr)
    return texts


def _maximize(objective: Optional[tuple], metric: str) -> bool:
    return not (objective and metric.split("/")[-1] == objective[0].split("/")[-1] and objective[1] == "minimize")


def _objective_metrics(table, objective: Optional[tuple]) -> List[str]:
    """The objective's metric on every evaluation set (the compact table's columns), objective first."""
    if not objective:
        return [c for c in table.columns if "/" in c and ":" not in c][:3]
    name = objective[0].split("/")[-1]
    same = [c for c in table.columns if "/" in c and ":" not in c and c.split("/")[-1] == name]
    return [objective[0]] + [c for c in same if c != objective[0]]


def _write_tables(study, df, table, params, formats: List[str], out_dir: Path, objective, reference):
    """``table.<fmt>`` per format and ``trials.csv``; returns ({format: text, "compact": text}, [paths])."""
    metrics = [c for c in table.columns if "/" in c and ":" not in c]
    paper = (study.user_attrs.get("paper") or {}).get("values")
    seeds = int(table["n_seeds"].max()) if not table.empty else 0
    image_ci = any((table[c] == "images").any() for c in table.columns if c.endswith(":ci_kind"))
    head = _header(study, df) + "\n" + tables.legend(seeds, reference, objective, image_ci) + "\n"
    texts, written = {}, []
    for fmt in formats:
        text = tables.render(table, metrics, fmt, paper, reference)
        if fmt == "md":
            text = head + "\n" + text + _failures_md(df, params)
        elif fmt == "html":
            text = _html_page(study, head, text)
        written.append(out_dir / f"table.{EXT[fmt]}")
        written[-1].write_text(text)
        texts[fmt] = text
    texts["compact"] = head + "\n" + tables.render(table, _objective_metrics(table, objective), "md", paper,
                                                   reference, compact=True) + _failures_md(df, params)
    written.append(out_dir / "trials.csv")
    df.drop(columns=["predictions"], errors="ignore").to_csv(written[-1], index=False)
    return texts, written


def _write_summary(study, df, params, objective, reference, out_dir: Path) -> List[Path]:
    """``summary.md`` and ``summary.html``: the study's answer in sentences (needs an objective)."""
    if not objective or df.empty:
        return []
    paper = (study.user_attrs.get("paper") or {}).get("values")
    text = summary.summary_markdown(_header(study, df), df, tables.trial_labels(df, params), objective,
                                    reference, paper)
    md, page = out_dir / "summary.md", out_dir / "summary.html"
    md.write_text(text)
    page.write_text(_html_page(study, "", _markdown_to_html(text)))
    return [md, page]


def _markdown_to_html(text: str) -> str:
    """The summary's small markdown subset (headings, bullets, bold) as HTML, without a markdown package."""
    import html
    import re

    out = []
    for line in text.splitlines():
        esc = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(line))
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{esc[level:].strip()}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<li>{esc[2:]}</li>")
        elif line.strip():
            out.append(f"<p>{esc}</p>")
    return "\n".join(out)


HTML_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:100%}"
              "table.ovbench{border-collapse:collapse;font-size:13px}"
              ".wrap{overflow:auto;max-height:85vh}"
              "table.ovbench th{position:sticky;top:0;background:#eee}"
              "table.ovbench thead tr:nth-child(2) th{top:1.6em}"
              "table.ovbench td,table.ovbench th{border:1px solid #ccc;padding:2px 6px;white-space:nowrap}")


def _html_page(study, head_md: str, body_html: str) -> str:
    """A standalone page: title, description and provenance as in the md, the table scrolling under a sticky header."""
    import html

    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in head_md.split("\n\n")[1:] if p.strip())
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(study.study_name)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>\n<h1>{html.escape(study.study_name)}</h1>\n{paragraphs}\n"
            f"<div class='wrap'>\n{body_html}</div>\n</body></html>\n")


def _summary(written: List[Path]) -> str:
    """'table.md, trials.csv, 8 plot files, 3 panels' -- the names a user looks for, counts for the rest."""
    names = [p.name for p in written]
    plots_n = sum(1 for n in names if "_vs_" in n)
    panels_n = sum(1 for n in names if n.startswith("panel_"))
    shown = [n for n in names if "_vs_" not in n and not n.startswith("panel_")]
    return ", ".join(shown + ([f"{plots_n} plot files"] if plots_n else []) + ([f"{panels_n} panel{'s' * (panels_n != 1)}"] if panels_n else []))


def _header(study, df) -> str:
    desc = study.user_attrs.get("description") or ""
    commits = distinct_values(df, "git_commit")
    devices = distinct_values(df, "device")
    benchmarks = distinct_values(df, "benchmark")
    return (f"# {study.study_name}\n\n{desc}\n\nspec hash `{study.user_attrs.get('spec_hash')}`; "
            + (f"benchmark {', '.join(benchmarks)}; " if benchmarks else "")
            + f"commit(s) {', '.join(commits) or '-'}; device(s) {', '.join(devices) or '-'}.\n"
            + (MIXED_DEVICES.format(n=len(devices)) if len(devices) > 1 else ""))


# Why: on CPU a seed's numbers change with the processor and the thread count (issue 19), so a paired
# difference across two machine lines mixes that change into the seed's.
MIXED_DEVICES = ("\nWarning: the trials ran on {n} different machine lines: a seed's figures on one are not its figures "
                 "on another, so paired differences between rows from different machines include that change.\n")


def _failures_md(df, params) -> str:
    text = tables.failures(df, params) if not df.empty else ""
    return f"\nFailed trials:\n\n{text}" if text else ""


def run(args: argparse.Namespace) -> int:
    try:
        texts = build_report(args.target, args.format, Path(args.out), args.storage, args.work_dir,
                             args.metric, plots_on=not args.no_plots, force=args.force,
                             reference=args.reference)
    except InputError as e:  # a bad file, a missing storage or study, a changed file
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(texts[args.format[0]] if args.full else texts["compact"])
    return 0
