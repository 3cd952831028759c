"""Tables a paper prints: one row per setting, mean ± 95% CI over seeds, best marked, cost columns."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from ovbench.errors import InputError
from ovbench.report import stats
from ovbench.report.frame import COST_COLS, metric_columns
from ovbench.sweep.labels import setting_label

DEFAULT_METRICS = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "PQ")
TABLE_COST = ("trainable_params", "trainable_params_free", "train_time_s", "s_per_iter", "peak_mem_mb")


def summarize(df: pd.DataFrame, params: Sequence[str], metrics: Optional[Sequence[str]] = None,
              objective: Optional[Tuple[str, str]] = None, reference: Optional[str] = None) -> pd.DataFrame:
    """Group COMPLETE trials by setting: the table every format renders.

    Columns: ``setting``, the params, ``<key>`` mean over seeds for every metric and cost,
    ``<metric>:std``, ``<key>:ci`` (95% CI half-width, :data:`stats.CI_METHOD`),
    ``<metric>:mark`` (``best`` / ``tied`` / empty, direction-aware: the objective's direction
    for metrics of the objective's name, higher-is-better for the other accuracy metrics), and
    with a ``reference`` setting, for the objective's metric on each set,
    ``<metric>:diff`` / ``:diff_ci`` / ``:p`` (paired by seed, Holm-corrected across rows).
    """
    done = df[df["state"] == "COMPLETE"].copy()
    if done.empty:
        return pd.DataFrame()
    metrics = list(metrics or [c for c in metric_columns(done) if c.split("/")[-1] in DEFAULT_METRICS])
    if objective and objective[0] in done.columns and objective[0] not in metrics:
        metrics.insert(0, objective[0])
    cost = [c for c in COST_COLS if c in done.columns]
    done["setting"] = trial_labels(done, params)
    grouped = done.groupby("setting", sort=False)
    table = pd.concat([grouped[list(params)].first(), grouped[metrics + cost].mean(),
                       grouped[metrics].std(ddof=1).add_suffix(":std")], axis=1).reset_index()
    table["n_seeds"] = grouped.size().values
    for p in params:  # a list-valued setting shows (and groups in plots) as its text
        table[p] = table[p].map(lambda v: str(v) if isinstance(v, (list, dict)) else v)
    _restore_param_types(table, params)
    seeds = stats.per_seed(done, list(done["setting"]), metrics + cost)
    _add_uncertainty(table, seeds, metrics, cost, objective)
    _add_image_bootstrap(table, done, metrics)
    if reference is not None:
        _add_reference(table, seeds, reference, [m for m in metrics if objective and _same_name(m, objective[0])])
    return table


def trial_labels(df: pd.DataFrame, params: Sequence[str]) -> List[str]:
    """Each trial's setting label, as the table's rows are labelled (``default`` without params)."""
    if not params:
        return ["default"] * len(df)
    keys = df[list(params)].copy()
    for p in params:  # lists are unhashable; group by their text
        keys[p] = keys[p].map(lambda v: str(v) if isinstance(v, (list, dict)) else v)
    grouped = keys.groupby(list(params), sort=False, dropna=False)
    firsts = grouped.head(1).reset_index(drop=True)
    _restore_param_types(firsts, params)
    names = [setting_label(r, params) for r in firsts.astype(object).to_dict("records")]
    return [names[g] for g in grouped.ngroup()]


def _restore_param_types(table: pd.DataFrame, params: Sequence[str]) -> None:
    """Undo pandas' upcasts: integral floats print as ints again, and a missing value (the ``null`` option
    of a space, e.g. ``model.train_classes: [null, 32]``) as ``None``, as the ablation file and the run's
    log name it, not ``nan``."""
    for p in params:
        missing = table[p].isna()
        col = pd.to_numeric(table[p], errors="coerce")
        if not (col.notna() | missing).all() or pd.api.types.is_bool_dtype(table[p]):
            continue  # text or booleans: nothing was upcast
        known = col[~missing]
        integral = bool((known == known.round()).all())
        if missing.any():
            table[p] = pd.Series([None if m else (int(v) if integral else float(v)) for v, m in zip(col, missing)],
                                 index=table.index, dtype=object)
        else:
            table[p] = col.astype("int64") if integral else col


def _same_name(metric: str, objective: str) -> bool:
    """``synth_small/mIoU_unseen`` is the objective ``synth_large/mIoU_unseen`` on another set."""
    return metric.split("/")[-1] == objective.split("/")[-1]


def _column(seeds: stats.PerSeed, label: str, key: str) -> Dict[int, float]:
    return seeds.get(label, {}).get(key, {})


def _add_uncertainty(table: pd.DataFrame, seeds: stats.PerSeed, metrics: Sequence[str], cost: Sequence[str],
                     objective: Optional[Tuple[str, str]]) -> None:
    labels = list(table["setting"])
    for key in list(metrics) + list(cost):
        table[f"{key}:ci"] = [stats.mean_ci(list(_column(seeds, lab, key).values())).half_width for lab in labels]
    for m in metrics:
        maximize = not (objective and _same_name(m, objective[0]) and objective[1] == "minimize")
        marks = stats.best_group({lab: _column(seeds, lab, m) for lab in labels}, maximize)
        table[f"{m}:mark"] = [marks.get(lab, "") for lab in labels]


def _add_image_bootstrap(table: pd.DataFrame, done: pd.DataFrame, metrics: Sequence[str]) -> None:
    """For a setting with one seed, ``<metric>:ci`` becomes the 95% percentile interval's half-width of
    a bootstrap over the evaluation images of its trial (``image_stats.npz``; :data:`stats.BOOTSTRAP_METHOD`),
    and ``<metric>:ci_kind`` says ``images``: the figure's sampling noise, never to be read as seed noise."""
    single = {lab: rows.iloc[0] for lab, rows in done.groupby("setting", sort=False) if len(rows) == 1}
    if not single or "work_dir" not in done:
        return
    for m in metrics:
        kinds, cis = [], []
        for lab, ci in zip(table["setting"], table[f"{m}:ci"]):
            half = stats.image_bootstrap_half_width(single[lab].get("work_dir"), m) if lab in single else math.nan
            kinds.append("images" if stats.finite(half) else "seeds" if stats.finite(ci) else "")
            cis.append(half if stats.finite(half) else ci)
        table[f"{m}:ci"], table[f"{m}:ci_kind"] = cis, kinds


def _add_reference(table: pd.DataFrame, seeds: stats.PerSeed, reference: str, metrics: Sequence[str]) -> None:
    labels = list(table["setting"])
    if reference not in labels:
        raise InputError(f"reference setting {reference!r} is not a setting of this study; its settings: "
                         + "; ".join(labels))
    for m in metrics:
        diffs = [stats.paired_difference(_column(seeds, lab, m), _column(seeds, reference, m))
                 if lab != reference else None for lab in labels]
        adjusted = stats.holm([d.p if d else math.nan for d in diffs])
        table[f"{m}:diff"] = [d.mean if d else math.nan for d in diffs]
        table[f"{m}:diff_ci"] = [d.half_width if d else math.nan for d in diffs]
        table[f"{m}:p"] = adjusted


def fmt_num(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int, float)) and abs(v) >= 1e4:  # counts (parameters, FLOPs): 74.8k, 1.23M
        return f"{v / 1e6:.3g}M" if abs(v) >= 1e6 else f"{v / 1e3:.3g}k"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


MARKS = {
    "md": {"best": "**{}**", "tied": "_{}_"},
    "latex": {"best": "\\textbf{{{}}}", "tied": "\\textit{{{}}}"},
    "html": {"best": "<b>{}</b>", "tied": "<i>{}</i>"},
}
PM = {"md": " ± ", "html": " ± ", "latex": " $\\pm$ "}
#: after a cell whose ± is the image bootstrap of one seed
IMAGES_MARK = {"md": " †", "html": " †", "latex": "$^\\dagger$"}


def metric_cell(r: Any, m: str, fmt: str) -> str:
    """``mean ± CI`` of metric ``m`` in row ``r``, marked best (bold) or tied with the best (italic)."""
    cell = stats.fmt_pm(r[m], r.get(f"{m}:ci", math.nan), pm=PM[fmt])
    if r.get(f"{m}:ci_kind") == "images":
        cell += IMAGES_MARK[fmt]
    mark = r.get(f"{m}:mark") or ""
    return MARKS[fmt][mark].format(cell) if mark else cell


def diff_cell(r: Any, m: str, fmt: str) -> str:
    """``+1.23 ± 0.45 (p=0.02)``: the row's paired difference from the reference ('ref' on its own row)."""
    d = r.get(f"{m}:diff", math.nan)
    if not isinstance(d, float) or math.isnan(d):
        return "ref" if f"{m}:diff" in r else "-"
    half = r.get(f"{m}:diff_ci", math.nan)
    text = f"{d:+.2f}" + (f"{PM[fmt]}{half:.2f}" if isinstance(half, float) and math.isfinite(half) else "")
    return f"{text} ({stats.fmt_p(r.get(f'{m}:p'))})"


def render(table: pd.DataFrame, metrics: Sequence[str], fmt: str, paper: Optional[Dict[str, Any]] = None,
           reference: Optional[str] = None, compact: bool = False) -> str:
    """The table as ``md`` | ``latex`` | ``html`` | ``csv``, metric cells as mean ± 95% CI.

    ``compact`` keeps the objective's metric on each set (``metrics`` should be those), trainable
    parameters and training time: what a terminal shows; the files hold the full table.
    """
    if table.empty:
        return "(no completed trials)\n"
    if fmt == "csv":
        return table.to_csv(index=False)
    rows = []
    for _, r in table.iterrows():
        row = {"setting": r["setting"] + (" (ref)" if r["setting"] == reference else "")}
        for m in metrics:
            if m in table:
                row[m] = metric_cell(r, m, fmt)
                if f"{m}:diff" in table:
                    row[f"Δ {m}"] = "ref" if r["setting"] == reference else diff_cell(r, m, fmt)
        if not compact:
            paper_row = (paper or {}).get(r["setting"]) or {}
            for m, v in paper_row.items():
                row[f"paper {m}"] = fmt_num(v)
        for c in (COMPACT_COST if compact else TABLE_COST):
            if c in table:
                row[c] = _cost_cell(r, c, fmt)
        row["seeds"] = int(r["n_seeds"])
        rows.append(row)
    out = pd.DataFrame(rows).astype(object).fillna("-")  # paper figures exist for some rows only
    if fmt == "md":
        return _markdown(out)
    if fmt == "latex":
        return _latex(out)
    return _html(out)


COMPACT_COST = ("trainable_params", "train_time_s")


def _cost_cell(r: Any, c: str, fmt: str) -> str:
    """Counts as 74.8k; times and memory as mean ± CI (they vary between seeds and machines)."""
    if c in ("trainable_params", "trainable_params_free"):
        return fmt_num(int(round(r[c])) if stats.finite(r[c]) else r[c])
    digits = 3 if c == "s_per_iter" else 1
    return stats.fmt_pm(r[c], r.get(f"{c}:ci", math.nan), digits, PM[fmt])


def legend(seeds: int, reference: Optional[str], objective: Optional[Tuple[str, str]],
           image_ci: bool = False) -> str:
    """The sentence under every table saying what its numbers and marks mean (``image_ci``: some cells
    carry one seed's image bootstrap)."""
    if seeds > 1:
        text = f"Cells: mean ± {stats.CI_METHOD}."
    elif image_ci:
        text = (f"Cells: one seed per setting; † ± is the {stats.BOOTSTRAP_METHOD}: how much the figure moves "
                "on another draw of images, not between seeds or machines, so compare nothing here across machines.")
    else:
        text = "Cells: one seed per setting, so no uncertainty is shown; compare nothing here across machines."
    direction = f" ({objective[1]} for {objective[0].split('/')[-1]}, higher is better otherwise)" if objective else ""
    text += f" Bold: the best mean{direction}"
    text += (f"; italic: not distinguishable from the best (paired t over seeds, p ≥ {stats.ALPHA}, uncorrected)."
             if seeds > 1 else ".")
    if reference:
        text += f" Δ: difference from the reference setting {reference!r}, {stats.PAIRED_METHOD}."
    return text


def _markdown(df: pd.DataFrame) -> str:
    """GitHub markdown without the optional ``tabulate`` dependency."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _latex(df: pd.DataFrame) -> str:
    """booktabs rules inside a ``table`` float, as papers typeset ablation tables."""
    cols = list(df.columns)
    esc = lambda v: str(v).replace("_", "\\_").replace("%", "\\%").replace("Δ", "$\\Delta$")  # noqa: E731
    lines = ["\\begin{table}[t]", "\\centering", "\\small",
             "\\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", "\\toprule",
             " & ".join(esc(c) for c in cols) + " \\\\", "\\midrule"]
    lines += [" & ".join(esc(r[c]) for c in cols) + " \\\\" for _, r in df.iterrows()]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _without_set(column: str) -> str:
    """``Δ synth_large/mIoU_unseen`` -> ``Δ mIoU_unseen`` (the set is the column group's title)."""
    prefix, _, key = column.rpartition(" ")
    name = key.split("/", 1)[1] if "/" in key else key
    return f"{prefix} {name}" if prefix else name


def _html(df: pd.DataFrame) -> str:
    """A table fragment with one header group per evaluation set (``<set>/<metric>`` columns)."""
    from html import escape

    cols = list(df.columns)
    groups = [c.split(" ")[-1].split("/")[0] if "/" in c else "" for c in cols]
    top, i = [], 0
    while i < len(cols):
        j = i
        while j < len(cols) and groups[j] == groups[i]:
            j += 1
        top.append(f'<th colspan="{j - i}">{escape(groups[i])}</th>')
        i = j
    sub = [escape(_without_set(c)) for c in cols]
    body = "".join("<tr>" + "".join(f"<td>{r[c]}</td>" for c in cols) + "</tr>\n" for _, r in df.iterrows())
    return ('<table class="ovbench">\n<thead>\n<tr>' + "".join(top) + "</tr>\n<tr>"
            + "".join(f"<th>{c}</th>" for c in sub) + "</tr>\n</thead>\n<tbody>\n" + body + "</tbody>\n</table>\n")


def failures(df: pd.DataFrame, params: Sequence[str]) -> str:
    """One line per failed trial (setting, seed, reason) so a report never hides a failure."""
    bad = df[df["state"] == "FAIL"]
    return "".join(f"- trial {int(r['number'])} ({setting_label(r, params)}, seed {r['seed']}): {r['error']}\n"
                   for r in bad.astype(object).to_dict("records"))
